"""Write a trained model as ONNX or a ``torch.export`` program, with its crop settings beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.utils.model import reparameterize_model

from landmark_lab.errors import ConfigError
from landmark_lab.transforms.flip import model_mirror_shift
from landmark_lab.utils.io import atomic_path, write_text_atomic

FORMATS = ("onnx", "torch_export")


def export_info(model: Any) -> dict[str, Any]:
    """What a deployed model needs besides its weights: the crop, input, outputs and label convention."""
    crop = dict(model.hparams.crop or {})
    return {
        "format_version": 1,
        "crop": crop,
        "input": {"name": "image", "shape": ["batch", 3, model.input_size, model.input_size],
                  "layout": "RGB, float32, 0..255 (normalisation is inside the model)"},
        "outputs": {"landmarks": "(batch, 68, 2) crop pixels, pixel-centre (first pixel's centre is 0,0), x right",
                    "score": "(batch,) heatmap-peak confidence in [0, 1]; NaN for the regression head"},
        "convention": "2d (real, annotated outline; the label adapter's output) in the 68-point iBUG order",
        "head": dict(model.hparams.head).get("name", "regression"),
        "backbone": dict(model.hparams.backbone).get("name"),
        # a flip average un-mirrors x -> (S - 1) - x + 2 * mirror_shift * (crop pixels per image pixel)
        "mirror_shift": model_mirror_shift(model),
    }


SUFFIXES = {"onnx": ".onnx", "torch_export": ".pt2"}


def export_target(out: str | Path | None, fmt: str, run_dir: Path | None, overwrite: bool = False) -> Path:
    """Where ``export`` writes: ``out`` (a file with the format's suffix, or an existing folder to write
    ``model<suffix>`` in), else the run folder. An existing file (or its ``.json`` side file) is refused unless
    ``overwrite``: export never replaces what a user already has."""
    suffix = SUFFIXES[fmt]
    target = Path(str(out)).expanduser() if out else run_dir / f"model{suffix}"
    if target.is_dir():
        target = target / f"model{suffix}"
    if target.suffix != suffix:
        raise ConfigError(f"out={str(out)!r}: format={fmt} writes a {suffix} file; name it so (out=model{suffix}) or "
                          f"choose the format that writes {target.suffix or 'files without a suffix'}.")
    existing = [p for p in (target, target.with_name(target.name + ".json")) if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"out={str(out or target)!r}: {existing[0]} exists; refusing to replace it. Choose another "
                          "name, or pass overwrite=true to replace it (and its .json side file).")
    if not target.parent.is_dir():
        raise ConfigError(f"out={str(out)!r}: the folder {target.parent} does not exist; create it first.")
    return target


def export_model(model: Any, out: str | Path, fmt: str = "onnx", opset: int = 17) -> tuple[Path, Path]:
    """Export ``model`` (a LandmarkModule) to ``out``; returns (model file, JSON side file). Written atomically."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not valid; use one of {list(FORMATS)}.")
    out = Path(out)
    # re-parameterisable backbones (RepVGG-style: MobileOne, RepViT, RepGhost, FastViT) fold their training-time
    # branches into single convolutions for inference: the file holds the deployed graph (a copy; the model is kept)
    net = reparameterize_model(model.inference_net().cpu().eval())
    size = int(model.input_size)
    example = torch.rand(2, 3, size, size) * 255
    info = export_info(model)
    if fmt == "onnx":
        try:
            import onnx
        except ImportError:
            raise ConfigError('ONNX export needs the onnx package: pip install -e ".[predict]"') from None
        with atomic_path(out) as tmp:
            torch.onnx.export(net, (example,), str(tmp), dynamo=False, input_names=["image"],
                              output_names=["landmarks", "score"], opset_version=int(opset),
                              dynamic_axes={"image": {0: "batch"}, "landmarks": {0: "batch"}, "score": {0: "batch"}})
            proto = onnx.load(str(tmp))
            entry = proto.metadata_props.add()
            entry.key, entry.value = "landmark_lab", json.dumps(info)
            onnx.save(proto, str(tmp))
    else:
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        with atomic_path(out) as tmp:
            torch.export.save(program, str(tmp))
    side = out.with_name(out.name + ".json")
    write_text_atomic(side, json.dumps(info, indent=2) + "\n")
    return out, side


def parity(model: Any, path: str | Path, crops: np.ndarray) -> float:
    """Largest difference (crop pixels) between the eager model and the exported file on ``crops``."""
    net = model.inference_net().cpu().eval()
    with torch.no_grad():
        eager = net(torch.from_numpy(crops))[0].numpy()
    if str(path).endswith(".onnx"):
        from landmark_lab.inference.predictor import Predictor

        exported = Predictor.from_onnx(path).runner(crops)[0]
    else:
        program = torch.export.load(str(path))
        with torch.no_grad():
            exported = program.module()(torch.from_numpy(crops))[0].numpy()
    return float(np.abs(eager - exported).max())
