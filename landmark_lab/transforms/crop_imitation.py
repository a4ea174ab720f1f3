"""Crop imitation (the study's fix for the framing part of the visual gap).

Synthetic renders frame a face the renderer's way (e.g. centred, square, a fixed share of the
image); real photos and their crops frame it another (size, position, width/height vary). A face's
*framing* is measured from its labels and image size: landmark-box side / longer image side, box
centre offset from the image centre (per longer side), aspect (width / height) and the longer side in
pixels. :class:`CropImitation` measures a real pool, then re-crops each synthetic training image to a
framing drawn from it (at the real photo's pixel size), so the distributions match.

The effect depends on the crop the model sees: with ``data.transform.crop.box=landmarks`` every face is
re-framed around its labels anyway and only resolution is left to imitate; with ``box=image`` (photos
used as they come, as with pre-cropped data or a detector) the whole framing gap reaches the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from landmark_lab.data.sample import Sample
from landmark_lab.errors import DataError


@dataclass
class Framing:
    """Per-face framing, one row per face."""

    face_frac: np.ndarray  # (N,) landmark-box side / longer image side
    offset: np.ndarray  # (N, 2) (box centre - image centre) / longer image side
    image_wh: np.ndarray  # (N, 2) image width, height in pixels

    def __len__(self) -> int:
        return len(self.face_frac)

    @property
    def aspect(self) -> np.ndarray:
        return self.image_wh[:, 0] / self.image_wh[:, 1]

    @property
    def long_px(self) -> np.ndarray:
        return self.image_wh.max(1)

    def columns(self) -> dict[str, np.ndarray]:
        """Named 1-D columns, for plots and statistics."""
        return {"face size / image side": self.face_frac, "face offset x": self.offset[:, 0],
                "face offset y": self.offset[:, 1], "aspect (w/h)": self.aspect,
                "image width (px)": self.image_wh[:, 0], "image height (px)": self.image_wh[:, 1]}


def measure(landmarks: np.ndarray, image_wh: np.ndarray) -> Framing:
    """Framing of faces with (N, 68, 2) ``landmarks`` in images of (N, 2) (width, height)."""
    lo, hi = landmarks.min(1), landmarks.max(1)
    wh = np.asarray(image_wh, dtype=np.float64)
    long = wh.max(1)
    centre = 0.5 * (lo + hi)
    img_centre = (wh - 1.0) / 2.0
    return Framing(np.maximum((hi - lo).max(1), 1.0) / long, (centre - img_centre) / long[:, None], wh)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image size ({exc}).") from None


def measure_sources(sources: Sequence, items: Sequence) -> Framing:
    """Framing of ``items`` (``Item`` of ``sources``; a mirrored copy frames like its original)."""
    items = list(items)
    if not items:
        raise DataError("no faces to measure the framing of.")
    lms = np.stack([sources[it.source].landmarks[it.index] for it in items]).astype(np.float64)
    wh = np.array([image_size(sources[it.source].images[it.index]) for it in items], dtype=np.float64)
    return measure(lms, wh)


class CropImitation:
    """Re-crops synthetic faces with framings drawn from a real pool's :class:`Framing`."""

    def __init__(self, target: Framing, resolution: bool = True, smooth: bool = True) -> None:
        if len(target) == 0:
            raise DataError("crop imitation needs at least one real face to measure.")
        self.target = target
        self.resolution = resolution
        # Draws are a smoothed bootstrap (a kernel density estimate) of the measured framings, so 50 real
        # faces give a continuous distribution rather than 50 repeated framings. Silverman's robust
        # bandwidth (min of std and IQR/1.34) keeps sharp peaks sharp, e.g. datasets cropped at exactly 2x the box.
        cols = np.c_[np.log(target.face_frac), target.offset, np.log(target.aspect), np.log(target.long_px)]
        q75, q25 = np.percentile(cols, [75, 25], axis=0)
        spread = np.minimum(cols.std(0), (q75 - q25) / 1.34)
        self.bandwidth = 0.9 * spread * len(target) ** (-1 / 5) if smooth and len(target) > 1 else np.zeros(5)

    def draw(self, rng: np.random.Generator) -> tuple[float, np.ndarray, float, float]:
        """(face fraction, offset, aspect, longer side in px) of a random real face, smoothed."""
        k = int(rng.integers(len(self.target)))
        e = rng.normal(0.0, 1.0, 5) * self.bandwidth
        t = self.target
        return (float(t.face_frac[k] * np.exp(e[0])), t.offset[k] + e[1:3], float(t.aspect[k] * np.exp(e[3])),
                float(t.long_px[k] * np.exp(e[4])))

    def geometry(self, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
        """2x3 matrix from the original image to a re-framed one drawn from the real framings, and its (width, height)."""
        face_frac, offset, aspect, long_px = self.draw(rng)
        lo, hi = landmarks.min(0), landmarks.max(0)
        side = max(float((hi - lo).max()), 1.0)
        long = side / face_frac
        w, h = long * min(1.0, aspect), long * min(1.0, 1.0 / aspect)
        # The real photo's pixel size (up-sampling adds no detail, but the frame then matches in pixels too).
        f = long_px / long if self.resolution else 1.0
        out_w, out_h = max(1, round(w * f)), max(1, round(h * f))
        centre = 0.5 * (lo + hi) - offset * long  # the new image centre, original pixels
        matrix = np.array([[f, 0.0, (out_w - 1) / 2.0 - f * centre[0]], [0.0, f, (out_h - 1) / 2.0 - f * centre[1]]])
        return matrix, (out_w, out_h)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """``sample`` re-framed like a random real face (borders replicated where the frame leaves the image)."""
        matrix, (w, h) = self.geometry(sample.landmarks.astype(np.float64), rng)
        interp = cv2.INTER_AREA if matrix[0, 0] < 0.98 else cv2.INTER_LINEAR
        if matrix[0, 0] < 0.98:  # anti-alias: shrink first, then place
            image = cv2.resize(sample.image, None, fx=matrix[0, 0], fy=matrix[0, 0], interpolation=interp)
            fx, fy = image.shape[1] / sample.image.shape[1], image.shape[0] / sample.image.shape[0]
            to_small = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
            placed = (np.vstack([matrix, [0.0, 0.0, 1.0]]) @ np.linalg.inv(to_small))[:2]
        else:
            image, placed = sample.image, matrix
        out = cv2.warpAffine(image, placed, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        pts = sample.landmarks.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
        return Sample(out, pts.astype(np.float32), sample.domain, sample.convention, sample.id, sample.visibility,
                      {**sample.meta, "reframe": matrix})

    def imitated(self, landmarks: np.ndarray, seed: int = 0) -> Framing:
        """The framing (N, 68, 2) synthetic ``landmarks`` get under this imitation (measured on its crops)."""
        rng = np.random.default_rng(seed)
        pts, whs = [], []
        for lm in landmarks.astype(np.float64):
            matrix, wh = self.geometry(lm, rng)
            pts.append(lm @ matrix[:, :2].T + matrix[:, 2])
            whs.append(wh)
        return measure(np.stack(pts), np.array(whs, dtype=np.float64))
