"""Landmark-exact geometry: square crops around a box, and the horizontal flip with the 68-point permutation.

Coordinates are pixel-centre based (the first pixel's centre is (0, 0)), the convention OpenCV's
``warpAffine`` uses, so a point and the pixel under it move together.
"""

from __future__ import annotations

from typing import TypeVar

import cv2
import numpy as np
import torch

from landmark_lab.landmarks import flip_landmarks

T = TypeVar("T", np.ndarray, torch.Tensor)


def crop_matrix(
    box: tuple[float, float, float, float],
    out_size: int,
    scale: float = 1.25,
    shift: tuple[float, float] = (0.0, 0.0),
    zoom: float = 1.0,
) -> np.ndarray:
    """2x3 affine mapping a square of side ``scale * max(w, h) * zoom`` centred on ``box`` to ``out_size``.

    ``shift`` moves the crop centre by that fraction of the box side (jitter).
    """
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1.0) * scale * zoom
    cx = 0.5 * (x0 + x1) + shift[0] * side
    cy = 0.5 * (y0 + y1) + shift[1] * side
    s = out_size / side
    c = (out_size - 1) / 2.0
    return np.array([[s, 0.0, c - s * cx], [0.0, s, c - s * cy]], dtype=np.float64)


def warp(image: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 2x3 affine to an image (border replicated) and to its (N, 2) landmarks."""
    out = cv2.warpAffine(image, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts = landmarks.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return out, pts.astype(np.float32)


def hflip(image: np.ndarray, landmarks: np.ndarray, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its 68 landmarks, swapping left/right indices (``shift``: the label set's mirror shift
    in this image's pixels, see :func:`~landmark_lab.landmarks.flip_landmarks`)."""
    return (np.ascontiguousarray(image[:, ::-1]),
            flip_landmarks(landmarks, image.shape[1], shift).astype(np.float32))


def crop_scale(matrices: T) -> T:
    """Crop pixels per image pixel of 2x3 crop matrices ((..., 2, 3), numpy or torch; one matrix gives a number)."""
    det = matrices[..., 0, 0] * matrices[..., 1, 1] - matrices[..., 0, 1] * matrices[..., 1, 0]
    return np.sqrt(np.abs(det)) if isinstance(det, np.ndarray | np.floating) else det.abs().sqrt()
