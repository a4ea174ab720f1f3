"""Evaluate a checkpoint (or dlib's predictor, ``peer=dlib``) on the real test split of any data config
(``evaluate_checkpoint(cfg)``; the command is :mod:`landmark_lab.cli.evaluate`).

    python -m landmark_lab.evaluate ckpt_path=RUN/checkpoints/finetune/best.ckpt \\
        data=300w data.root=/path/to/300w data.split=common [eval.box=landmarks|detector] [eval.flip=true]
    python -m landmark_lab.evaluate peer=dlib data=300w data.split=[lfpw/trainset] eval.box=detector

The crop settings are read from the checkpoint, so evaluation crops faces as training did.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from landmark_lab.cli.app import run_app
from landmark_lab.cli.checks import check_eval_config
from landmark_lab.datamodules.sources import FaceDataset, open_sources, prepare
from landmark_lab.datamodules.splits import expand, groups_of
from landmark_lab.errors import DataError
from landmark_lab.evaluation.core import NME_CONVENTION, evaluate, evaluate_images, offset_line, summary_line
from landmark_lab.evaluation.figures import evaluation_figures
from landmark_lab.models.checkpoint import load_checkpoint
from landmark_lab.transforms.pipeline import FaceTransform
from landmark_lab.utils.device import device as resolve_device
from landmark_lab.utils.run import run_dir_of, start_run_dir, write_json


def _model_and_predictor(cfg: DictConfig, device: str) -> tuple[Any, Any, str]:
    """(model or None, image-level predictor or None, what is evaluated) for ``ckpt_path`` or ``peer``."""
    protocol = cfg.eval.box
    if cfg.get("peer"):
        from landmark_lab.inference.dlib_peer import DlibPeer

        return None, DlibPeer(), "dlib's 68-point predictor (shape_predictor_68_face_landmarks.dat)"
    model = load_checkpoint(cfg.ckpt_path)  # read (pickle-free) and checked before the run folder is touched
    if protocol == "landmarks":
        return model, None, str(cfg.ckpt_path)
    from landmark_lab.inference.detectors import DlibDetector
    from landmark_lab.inference.predictor import Predictor

    return model, Predictor.from_model(model, device, DlibDetector(), source=str(cfg.ckpt_path)), str(cfg.ckpt_path)


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` (or ``cfg.peer``) on ``cfg.data``'s real test split; returns the metrics."""
    t0 = time.perf_counter()
    check_eval_config(cfg)
    device = resolve_device(cfg.get("device", "auto"), "device")
    model, predictor, what = _model_and_predictor(cfg, device)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    prepare(data["real"], "real")
    sources = open_sources(data["real"], "real", "test")  # every test file checked before anything is written
    run_dir = run_dir_of(cfg)
    start_run_dir(run_dir, cfg, overwrite=bool(cfg.get("overwrite", False)))
    items = expand(groups_of([len(s) for s in sources]), bool(data.get("mirror_test", False)))
    crop = dict((model.hparams.crop if model is not None else None) or data["transform"]["crop"])
    ds = FaceDataset(sources, items, FaceTransform(crop, train=False))
    flip, box = bool(cfg.eval.flip), str(cfg.eval.box)
    protocol: dict[str, Any] = {"box": box, "flip": flip, "evaluated": what}
    if predictor is None:  # the training crop around the labelled face: the fast batched path
        loader = torch.utils.data.DataLoader(ds, batch_size=int(data.get("eval_batch_size", 64)),
                                             num_workers=int(data.get("num_workers", 0)))
        result = evaluate(model, loader, device=device, flip=flip)
    else:
        result, info = evaluate_images(predictor, ds, box=box, flip=flip)
        protocol.update(info)
    if not math.isfinite(result.metrics["nme_io"]):  # (an ONNX or peer model; checkpoints are checked on load)
        raise DataError(f"{cfg.get('ckpt_path') or cfg.get('peer')}: the predictions on the test faces are not finite "
                        "(NaN or inf); nothing was written. The model diverged or the file is damaged.")
    notes = []
    if cfg.get("peer") == "dlib":
        from landmark_lab.inference.dlib_peer import NOTE, TRAINED_ON

        seen = [str(s.folder) for s in sources if any(str(s.folder).rstrip("/").endswith(t) for t in TRAINED_ON)]
        notes.append(NOTE + (f" These test folders were in its training set: {seen}." if seen else ""))
    payload = {
        "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()) if model is not None else None,
        "peer": cfg.get("peer"),
        "protocol": protocol,
        "notes": notes,
        "test_folders": [str(s.folder) for s in sources],
        "test": result.as_json(),
        "crop": crop,
        "timing": {"total_seconds": round(time.perf_counter() - t0, 1)},
        "nme_convention": NME_CONVENTION,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json(run_dir / "metrics.json", payload)
    evaluation_figures(result, run_dir, f"evaluation: {cfg.get('peer') or 'model'}, {box} boxes")
    m = result.metrics
    misses = f", {protocol['misses']} of {protocol['faces']} faces missed by the detector" if "misses" in protocol else ""
    print(f"\n[landmark_lab] evaluate {cfg.get('peer') or 'model'} ({box} boxes{', flip-averaged' if flip else ''}) "
          f"on {int(m['count'])} faces{misses}: {summary_line(m, result.without_adapter)}"
          + (f"\n[landmark_lab] {offset_line(result.offset)}" if result.offset else "")
          + "".join(f"\n[landmark_lab] note: {n}" for n in notes)
          + f"\n[landmark_lab] results: {run_dir / 'metrics.json'}")
    return m


def main() -> None:
    run_app("evaluate", evaluate_checkpoint)


if __name__ == "__main__":
    main()
