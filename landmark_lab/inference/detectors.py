"""Face detectors for :class:`~landmark_lab.inference.predictor.Predictor` and ``evaluate eval.box=detector``.

``dlib``: dlib's HOG frontal-face detector (the ``dlib-bin`` wheel; no model file). ``boxes``: boxes per image
from a CSV/JSON table. ``none``: no detector, the whole image is the face (pre-cropped photos).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from landmark_lab.errors import ConfigError, DataError

Box = tuple[float, float, float, float]
DETECTORS = ("dlib", "boxes", "none")
_EXTRA = 'pip install -e ".[predict]"'


def import_dlib() -> Any:
    """The ``dlib`` module, or a clear error saying how to get it."""
    try:
        import dlib
    except ImportError:
        raise ConfigError(f"dlib is not installed; it comes with the predict extra: {_EXTRA} (the dlib-bin wheel).") from None
    return dlib


class DlibDetector:
    """dlib's HOG frontal-face detector; ``upsample`` doubles the image that many times (finds smaller faces)."""

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = int(upsample)
        self.detector = import_dlib().get_frontal_face_detector()

    def __call__(self, image: np.ndarray) -> list[Box]:
        """Boxes (x0, y0, x1, y1) in pixel-centre coordinates, largest first."""
        rects = self.detector(np.ascontiguousarray(image), self.upsample)
        boxes = [(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())) for r in rects]
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def read_box_table(path: str | Path) -> dict[str, list[Box]]:
    """Boxes per image name from a CSV (``image,x0,y0,x1,y1``, one row per face) or a JSON
    (``{"NAME.jpg": [[x0, y0, x1, y1], ...]}``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"boxes={str(path)!r}: box table not found.")
    out: dict[str, list[Box]] = {}
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError('expected {"NAME.jpg": [[x0, y0, x1, y1], ...]}')
            for name, boxes in data.items():
                arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if boxes else np.zeros((0, 4))
                out[str(name)] = [tuple(map(float, b)) for b in arr]
        elif path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            if not rows or rows[0][:5] != ["image", "x0", "y0", "x1", "y1"]:
                raise ValueError("expected the header image,x0,y0,x1,y1")
            for i, row in enumerate(rows[1:], start=2):
                if len(row) < 5:
                    raise ValueError(f"line {i} has {len(row)} columns, expected 5")
                out.setdefault(row[0], []).append(tuple(float(v) for v in row[1:5]))
        else:
            raise ValueError("a box table is .csv or .json")
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read boxes ({exc}).") from None
    for name, boxes in out.items():
        for b in boxes:
            if not all(math.isfinite(v) for v in b):
                raise DataError(f"{path}: box {list(b)} of {name!r} is not finite (nan or inf).")
            if not (b[2] > b[0] and b[3] > b[1]):
                raise DataError(f"{path}: box {list(b)} of {name!r} is empty (x1 <= x0 or y1 <= y0).")
    # Rows may name an image by a path ('photos/a.jpg'): matched by the file name, as the images are.
    by_name: dict[str, list[Box]] = {}
    for name, boxes in out.items():
        by_name.setdefault(Path(name).name, []).extend(boxes)
    return by_name


def boxes_in_image(boxes: list[Box], width: int, height: int) -> tuple[list[Box], list[Box]]:
    """(boxes that overlap the ``width`` x ``height`` image, boxes that lie wholly outside it)."""
    inside, outside = [], []
    for b in boxes:
        (inside if b[0] < width and b[1] < height and b[2] > 0 and b[3] > 0 else outside).append(b)
    return inside, outside


def build_detector(name: str, upsample: int = 1) -> DlibDetector | None:
    """The detector called ``name`` (``dlib``), or None (``none``/``boxes``: boxes come from elsewhere)."""
    if name not in DETECTORS:
        raise ConfigError(f"detector={name!r} is not valid; use one of {list(DETECTORS)}.")
    return DlibDetector(upsample) if name == "dlib" else None


def dlib_model_file() -> Path:
    """dlib's 68-point predictor file from the ``face-recognition-models`` wheel (found without its helper,
    which needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"dlib's 68-point model comes with the face-recognition-models package: {_EXTRA}.")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed face-recognition-models package; reinstall it.")
    return path
