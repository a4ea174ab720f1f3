"""Landmarks on photos: ``python -m landmark_lab.predict ckpt_path=... input=PHOTO_OR_DIR [out_dir=...] [detector=...]``.

Every face the detector finds (or the boxes given, or the whole image) gets 68 points in the photo's own
pixels. Writes ``predictions.json``, drawn images and optionally 300-W ``.pts`` files; an unreadable image is
listed under ``skipped`` and the rest of the folder goes on.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

from landmark_lab.data.folder import IMAGE_EXTENSIONS, read_image
from landmark_lab.data.pts import write_pts
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.inference.detectors import DETECTORS, build_detector, read_box_table
from landmark_lab.inference.predictor import FacePrediction, Predictor
from landmark_lab.utils.checks import check_checkpoint_path, choice, integer, required
from landmark_lab.utils.run import run_dir_of, write_json


def list_images(path: Path) -> list[Path]:
    """An image file, or the images of a folder (sorted, not recursive)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise ConfigError(f"input={str(path)!r}: no image ({', '.join(IMAGE_EXTENSIONS)}) in this folder.")
        return images
    raise ConfigError(f"input={str(path)!r}: no such file or folder.")


# What a command's own run folder holds before it writes anything: its config record, its log, its lock.
_RUN_RECORD = (".hydra", "run.lock")


def prepare_out_dir(out: Path, overwrite: bool) -> Path:
    """The folder ``predict`` writes into, made if missing. One that already holds files (earlier predictions,
    photos) is refused unless ``overwrite``; then its contents move to ``backup_<time>/`` inside it first."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir={str(out)!r} is a file, not a folder; choose a folder for the predictions.")
    held = [p for p in out.iterdir() if p.name not in _RUN_RECORD and p.suffix != ".log"] if out.is_dir() else []
    if held and not overwrite:
        raise ConfigError(f"out_dir={str(out)!r} already holds {len(held)} file(s) or folder(s) (e.g. {held[0].name}); "
                          "refusing to write over them. Choose an empty or new folder, or pass overwrite=true to move "
                          "them to a backup_<time>/ folder inside it first.")
    if held:
        backup = out / time.strftime("backup_%Y%m%d-%H%M%S")
        backup.mkdir()
        for p in held:
            if not p.name.startswith("backup_"):
                shutil.move(str(p), backup / p.name)
    out.mkdir(parents=True, exist_ok=True)
    return out


def output_stems(images: list[Path]) -> dict[Path, str]:
    """The name each image's outputs take: its stem, or its whole name where two inputs share a stem
    (``face.jpg`` and ``face.png`` write ``face.jpg.jpg`` and ``face.png.jpg``, never one file)."""
    counts: dict[str, int] = {}
    for p in images:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return {p: p.stem if counts[p.stem] == 1 else p.name for p in images}


def draw_faces(image: np.ndarray, faces: list[FacePrediction]) -> np.ndarray:
    """The photo (BGR, for cv2.imwrite) with each face's box and 68 points."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    r = max(1, round(max(image.shape[:2]) / 300))
    for f in faces:
        x0, y0, x1, y1 = (round(v) for v in f.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 160, 0), r)
        for x, y in f.landmarks:
            cv2.circle(out, (round(float(x)), round(float(y))), r + 1, (0, 0, 255), -1, lineType=cv2.LINE_AA)
    return out


def predict_photos(cfg: DictConfig) -> dict[str, Any]:
    """Predict every image of ``cfg.input``; returns what ``predictions.json`` holds."""
    t0 = time.perf_counter()
    check_checkpoint_path(cfg)
    required(cfg, "input", "PHOTO_OR_FOLDER")
    detector_name = choice(cfg, "detector", DETECTORS)
    integer(cfg, "refine", low=0)
    images = list_images(Path(str(cfg.input)).expanduser())
    table = None
    if detector_name == "boxes":
        if not cfg.get("boxes"):
            raise ConfigError("detector=boxes needs boxes=PATH (a CSV image,x0,y0,x1,y1 or a JSON of boxes per image).")
        table = read_box_table(cfg.boxes)
    detector = build_detector(detector_name, int(cfg.get("upsample", 1)))
    out = prepare_out_dir(Path(str(cfg.out_dir)).expanduser() if cfg.get("out_dir") else run_dir_of(cfg),
                          bool(cfg.get("overwrite", False)))
    predictor = Predictor.load(cfg.ckpt_path, str(cfg.get("device", "auto")), detector, int(cfg.refine))
    stems = output_stems(images)
    results: dict[str, Any] = {}
    skipped: list[dict[str, str]] = []
    for path in tqdm(images, desc="predicting", unit="image", disable=len(images) < 2):
        try:
            image = read_image(path)
        except DataError as exc:
            skipped.append({"image": str(path), "reason": str(exc)})
            continue
        boxes = None
        if table is not None:
            boxes = table.get(path.name, [])
        faces = predictor.predict(image, boxes=boxes, flip=bool(cfg.flip))
        results[path.name] = {"size": [int(image.shape[1]), int(image.shape[0])], "faces": [f.as_json() for f in faces]}
        if cfg.get("draw", True):
            (out / "drawn").mkdir(exist_ok=True)
            cv2.imwrite(str(out / "drawn" / f"{stems[path]}.jpg"), draw_faces(image, faces))
        if cfg.get("write_pts", False):
            (out / "pts").mkdir(exist_ok=True)
            for k, f in enumerate(faces):
                write_pts(out / "pts" / f"{stems[path]}_{k}.pts", f.landmarks)
    payload = {
        "model": str(cfg.ckpt_path), "detector": detector_name, "flip": bool(cfg.flip), "refine": int(cfg.refine),
        "coordinates": "image pixels, 0-based pixel centres (the .pts files are 1-based, as 300-W)",
        "images": results, "skipped": skipped, "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out / "predictions.json", payload)
    n_faces = sum(len(r["faces"]) for r in results.values())
    print(f"[landmark_lab] {n_faces} face(s) in {len(results)} image(s)"
          + (f"; {len(skipped)} unreadable image(s) skipped (listed in predictions.json)" if skipped else "")
          + f"\n[landmark_lab] results: {out / 'predictions.json'}")
    return payload
