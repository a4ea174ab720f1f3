"""What ``predict`` (:mod:`landmark_lab.cli.predict`) needs around each photo: which files are images, sizes it
refuses, an output folder that never loses what it held, output names, the drawing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from landmark_lab.data.folder import IMAGE_EXTENSIONS
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.inference.predictor import FacePrediction
from landmark_lab.utils.drawing import draw_points
from landmark_lab.utils.run import LOCK_FILE, move_to_backup

# Photos outside these sizes are refused before decoding: a 1x1 image yields garbage points, a 50000x50000 PNG
# exhausts memory (OpenCV aborts the whole folder).
MIN_SIDE, MAX_PIXELS = 16, 100_000_000


def check_photo_size(path: Path) -> None:
    """Refuse (a :class:`DataError` naming the file) an image too small to hold a face or too large to decode."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise DataError(f"{path}: more than {MAX_PIXELS // 1_000_000} megapixels; scale it down first.") from None
    except Exception:  # unreadable: read_image names the problem
        return
    if min(w, h) < MIN_SIDE:
        raise DataError(f"{path}: {w}x{h} pixels, too small to hold a face (at least {MIN_SIDE} px a side).")
    if w * h > MAX_PIXELS:
        raise DataError(f"{path}: {w}x{h} pixels, more than {MAX_PIXELS // 1_000_000} megapixels; scale it down first.")


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
_RUN_RECORD = (".hydra", LOCK_FILE)


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
        move_to_backup(out, held)
    out.mkdir(parents=True, exist_ok=True)
    return out


def output_stems(images: list[Path]) -> dict[Path, str]:
    """The name each image's outputs take: its stem, or its whole name where two inputs share a stem
    (``face.jpg`` and ``face.png`` write ``face.jpg.jpg`` and ``face.png.jpg``, never one file)."""
    counts = Counter(p.stem for p in images)
    return {p: p.stem if counts[p.stem] == 1 else p.name for p in images}


def draw_faces(image: np.ndarray, faces: list[FacePrediction]) -> np.ndarray:
    """The photo (BGR, for cv2.imwrite) with each face's box and 68 points."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    r = max(1, round(max(image.shape[:2]) / 300))
    for f in faces:
        x0, y0, x1, y1 = (round(v) for v in f.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 160, 0), r)
        draw_points(out, f.landmarks, (0, 0, 255), r + 1)
    return out
