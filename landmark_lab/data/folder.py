"""A lazy reader of a folder of ``NAME.{jpg,png}`` + ``NAME.pts`` pairs: the 300-W file layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from landmark_lab.data.pts import read_pts
from landmark_lab.data.sample import Sample
from landmark_lab.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8, with a clear error for missing, corrupt or odd files."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DataError(f"{path}: image file not found.")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DataError(f"{path}: cannot decode image (corrupt or not an image). Replace or remove it.")
    if img.dtype == np.uint16:
        img = (img / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {img.dtype}; expected 8- or 16-bit.")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise DataError(f"{path}: unsupported channel count {img.shape[2]}.")
    return img


class PtsFolder:
    """Image + ``.pts`` pairs of one folder (not recursive), indexed once, images decoded per item.

    Landmark files are parsed at construction so a malformed ``.pts`` fails before training starts.
    """

    def __init__(self, folder: str | Path, domain: str, convention: str, name: str | None = None) -> None:
        self.folder = Path(folder)
        self.domain = domain
        self.convention = convention
        self.name = name or self.folder.name
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: folder not found.")
        images = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        self.images: list[Path] = []
        landmarks = []
        for img in images:
            pts = img.with_suffix(".pts")
            if not pts.is_file():
                continue  # 300-W ships some images without annotation; they are not faces to use
            self.images.append(img)
            landmarks.append(read_pts(pts))
        if not self.images:
            raise DataError(
                f"{self.folder}: no image with a matching .pts file found "
                f"(looked for NAME{{{','.join(IMAGE_EXTENSIONS)}}} + NAME.pts)."
            )
        self.landmarks = np.stack(landmarks)
        self.ids = [f"{self.name}/{p.stem}" for p in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Sample:
        """Decode sample ``index``."""
        return Sample(
            image=read_image(self.images[index]),
            landmarks=self.landmarks[index].copy(),
            domain=self.domain,
            convention=self.convention,
            id=self.ids[index],
        )
