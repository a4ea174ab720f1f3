"""Export a trained model: ``python -m landmark_lab.export ckpt_path=... format=onnx|torch_export [out=...]``.

Writes the plain network (normalisation, backbone, head, label adapter; dynamic batch) and a JSON side file
with the crop settings and landmark convention (also stored as ONNX metadata). ``Predictor.from_onnx`` runs it.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from landmark_lab.evaluate import load_checkpoint
from landmark_lab.inference.export import FORMATS, export_model, parity
from landmark_lab.train import run_dir_of
from landmark_lab.utils.cli import guarded
from landmark_lab.utils.config_check import check_checkpoint_path, choice


def run(cfg: DictConfig) -> Path:
    """Export ``cfg.ckpt_path``; returns the written file."""
    check_checkpoint_path(cfg)
    fmt = choice(cfg, "format", FORMATS)
    model = load_checkpoint(cfg.ckpt_path)
    out = Path(cfg.out) if cfg.get("out") else run_dir_of(cfg) / ("model.onnx" if fmt == "onnx" else "model.pt2")
    path, side = export_model(model, out, fmt, int(cfg.get("opset", 17)))
    line = f"[landmark_lab] exported {cfg.ckpt_path} -> {path} ({fmt}); crop settings in {side}"
    if cfg.get("check", True):
        size = int(model.input_size)
        crops = np.random.default_rng(0).uniform(0, 255, (4, 3, size, size)).astype(np.float32)
        line += f"\n[landmark_lab] exported vs eager on 4 random crops: max difference {parity(model, path, crops):.2e} crop px"
    print(line)
    return path


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; user errors are printed as one clear line and exit with status 2."""
    guarded(run, cfg)


if __name__ == "__main__":
    main()
