"""The two procedural domains: clean renders with projected labels vs photo-like crops with clicked labels.

``synthetic``: a clean render framed the renderer's way (head centred, whole head in a square
image) labelled with projected 3D points ("3d" convention: the far jaw runs through the cheek).

``real``: framed like a 300-W crop (2x the landmark box, jittered, non-square), photographic
degradations (exposure, colour cast, blur, sensor noise, JPEG), labelled the way an annotator
clicks ("2d" convention: outer jaw points on the visible outline) plus annotator noise that is
larger on ambiguous points (jaw, brow ends, nose bridge).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from landmark_lab.data.procedural.head import (
    MARCHING_JAW,
    Camera,
    HeadParams,
    facing,
    landmarks_3d,
    outline_jaw,
    rotation,
)
from landmark_lab.data.procedural.render import Look, render

DOMAINS = ("synthetic", "real")

# Annotator noise std per landmark, as a fraction of the inter-ocular distance.
ANNOTATOR_STD = np.full(68, 0.012)
ANNOTATOR_STD[0:17] = 0.03
ANNOTATOR_STD[[0, 1, 15, 16]] = 0.04
ANNOTATOR_STD[[17, 21, 22, 26]] = 0.025
ANNOTATOR_STD[27:30] = 0.025


@dataclass
class Face:
    """One generated face: image, its label in the domain's convention and everything known about it."""

    image: np.ndarray  # RGB uint8
    landmarks: np.ndarray  # (68, 2) label in the domain's convention
    convention: str  # "3d" or "2d"
    lm_3d: np.ndarray  # projected 3D points, noise-free
    lm_2d: np.ndarray  # outline (annotator) convention, noise-free
    visibility: np.ndarray  # (68,) 1 where the surface at the point faces the camera
    pose: np.ndarray  # yaw, pitch, roll in degrees
    jpeg_quality: int | None = None
    extra: dict = field(default_factory=dict)


def _sample_pose(rng: np.random.Generator) -> np.ndarray:
    yaw = float(np.clip(rng.normal(0, 22), -60, 60))
    pitch = float(np.clip(rng.normal(0, 10), -25, 25))
    roll = float(np.clip(rng.normal(0, 8), -20, 20))
    return np.array([yaw, pitch, roll])


def _labels(params: HeadParams, cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts, uv = landmarks_3d(params)
    lm3d, _ = cam.project(pts)
    vis = (facing(params, cam, uv[:, 0], uv[:, 1]) > 0).astype(np.float32)
    lm2d = lm3d.copy()
    lm2d[MARCHING_JAW] = outline_jaw(params, cam, uv)
    return lm3d, lm2d, vis


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32) / 255.0
    x = np.clip(x * rng.uniform(0.6, 1.3) * rng.uniform(0.9, 1.1, 3), 0, 1) ** rng.uniform(0.8, 1.25)
    if rng.random() < 0.6:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.1))
    x = x + rng.normal(0, rng.uniform(0.004, 0.025), x.shape).astype(np.float32)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def generate_face(domain: str, seed: int, size: int = 128) -> Face:
    """Generate one face of ``domain`` ("synthetic" or "real"), deterministic in ``seed``.

    ``size`` is the synthetic image side; real-like crops are sized like 300-W crops of faces of
    roughly ``0.4..0.7 * size`` pixels.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown procedural domain {domain!r}; expected one of {DOMAINS}")
    rng = np.random.default_rng(seed)
    params = HeadParams.sample(rng)
    look = Look.sample(rng)
    pose = _sample_pose(rng)
    rot = rotation(*pose)
    distance = rng.uniform(5.0, 8.0)
    if domain == "synthetic":
        frac = rng.uniform(0.5, 0.62)  # head height / image height
        focal = frac * size * distance / (2.0 * params.radii[1])
        cam = Camera(focal, size / 2.0, size / 2.0, distance, rot)
        lm3d, lm2d, vis = _labels(params, cam)
        image = render(params, cam, look, lm3d, vis, (size, size), rng)
        return Face(image, lm3d.astype(np.float32), "3d", lm3d, lm2d, vis, pose)

    # Real-like: choose the face size, then crop 2x the (annotated) landmark box as 300-W crops do.
    cam = Camera(1.0, 0.0, 0.0, distance, rot)
    _, lm2d, _ = _labels(params, cam)
    box = np.ptp(lm2d, axis=0)
    face_px = rng.uniform(0.4, 0.7) * size
    cam.focal = face_px / max(box)
    centre = 0.5 * (lm2d.min(0) + lm2d.max(0)) * cam.focal
    side = 2.0 * face_px
    w = int(round(side * rng.uniform(0.85, 1.15)))
    h = int(round(side * rng.uniform(0.85, 1.15)))
    jitter = rng.normal(0.0, 0.06, 2) * face_px
    cam.cx = w / 2.0 - centre[0] + jitter[0]
    cam.cy = h / 2.0 - centre[1] + jitter[1]
    lm3d, lm2d, vis = _labels(params, cam)
    image = _degrade(render(params, cam, look, lm3d, vis, (h, w), rng), rng)
    iod = float(np.linalg.norm(lm2d[45] - lm2d[36]))
    noisy = lm2d + rng.normal(0.0, 1.0, (68, 2)) * (ANNOTATOR_STD * iod)[:, None]
    quality = int(rng.integers(35, 92))
    return Face(image, noisy.astype(np.float32), "2d", lm3d, lm2d, vis, pose, jpeg_quality=quality)
