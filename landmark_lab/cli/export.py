"""``python -m landmark_lab.export ckpt_path=CKPT format=onnx|torch_export [out=...] [quantize=int8]``: a deployable
model, its crop settings beside it (:mod:`landmark_lab.inference.export`; int8: :mod:`landmark_lab.inference.quantize`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from landmark_lab.cli.app import run_app
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.inference.export import FORMATS, export_info, export_model, export_target, parity
from landmark_lab.inference.quantize import quantize_checked
from landmark_lab.models.checkpoint import load_checkpoint
from landmark_lab.utils.checks import check_checkpoint_path, choice, integer, number
from landmark_lab.utils.io import atomic_path, write_text_atomic
from landmark_lab.utils.run import run_dir_of


def export_checkpoint(cfg: Any) -> Path:
    """``export``: write ``cfg.ckpt_path`` as ``cfg.format`` to ``cfg.out`` (default: the run folder) and print
    the largest difference from the eager model on random crops; returns the written file."""
    check_checkpoint_path(cfg)
    fmt = choice(cfg, "format", FORMATS)
    opset = integer(cfg, "opset", low=7)
    quantize = choice(cfg, "quantize", ["none", "int8"], default="none")
    if quantize == "int8":
        if fmt != "onnx":
            raise ConfigError(f"quantize=int8 writes an ONNX model; use format=onnx (got format={fmt}).")
        integer(cfg, "calibration_faces", low=1)
        integer(cfg, "check_faces", low=1)
        number(cfg, "max_nme_change", low=0)
    out = export_target(cfg.get("out"), fmt, None if cfg.get("out") else run_dir_of(cfg), bool(cfg.get("overwrite", False)))
    model = load_checkpoint(cfg.ckpt_path)
    quantized = None
    if quantize == "int8":
        # The fp32 model is a step on the way (in a temporary folder); a refused int8 model leaves nothing at out.
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            fp32, _ = export_model(model, Path(tmp) / "fp32.onnx", fmt, opset)
            with atomic_path(out) as int8_tmp:
                quantized = quantize_checked(model, fp32, int8_tmp, cfg)
        path, side = out, out.with_name(out.name + ".json")
        write_text_atomic(side, json.dumps({**export_info(model), "quantized": quantized}, indent=2) + "\n")
    else:
        path, side = export_model(model, out, fmt, opset)
    line = f"[landmark_lab] exported {cfg.ckpt_path} -> {path} ({fmt}{', int8' if quantized else ''}); crop settings in {side}"
    if quantized:
        q = quantized
        line += (f"\n[landmark_lab] int8 vs fp32 on {q['check_faces']} held-out test faces: NME io {q['nme_io_fp32']:.2f} % -> "
                 f"{q['nme_io_int8']:.2f} % ({q['nme_change']:+.2f} points; allowed {q['max_nme_change']:g}); one thread, "
                 f"batch 1: {q['ms_fp32']:.2f} ms -> {q['ms_int8']:.2f} ms ({q['speedup']:.2f}x); calibrated on "
                 f"{q['calibration_faces']} training faces")
    if cfg.get("check", True):
        size = int(model.input_size)
        crops = np.random.default_rng(0).uniform(0, 255, (4, 3, size, size)).astype(np.float32)
        diff = parity(model, path, crops)
        if not np.isfinite(diff):
            raise DataError(f"{path}: the exported model's output is not finite on random crops (NaN or inf); do not use "
                            "this file. Export again, or report the model and format that give it.")
        line += f"\n[landmark_lab] exported vs eager on 4 random crops: max difference {diff:.2e} crop px"
    print(line)
    return path


def main() -> None:
    run_app("export", export_checkpoint)


if __name__ == "__main__":
    main()
