"""Flip averaging (MMPose's ``flip_test``): one implementation for ``evaluate``, the Predictor and a distillation
teacher (a prediction and the one on the mirrored crop, averaged)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from landmark_lab.landmarks import FLIP_68

T = TypeVar("T", np.ndarray, torch.Tensor)


def unmirror(points: T, width: int) -> T:
    """Points predicted on a mirrored crop (..., 68, 2), in pixel-centre coordinates of a crop ``width`` wide,
    mapped back to the unmirrored crop: left/right indices swapped (FLIP_68), x -> (width - 1) - x."""
    out = points[..., FLIP_68, :] if isinstance(points, np.ndarray) else points[..., torch.as_tensor(FLIP_68), :]
    out = out.copy() if isinstance(out, np.ndarray) else out.clone()
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def mirror_images(images: T) -> T:
    """Mirror a batch of images along their width (the last axis of (B, C, H, W))."""
    return images[..., ::-1].copy() if isinstance(images, np.ndarray) else torch.flip(images, dims=[-1])


def flip_average(points: T, points_on_mirrored: T, width: int) -> T:
    """Mean of a prediction and the un-mirrored prediction on the mirrored input."""
    return (points + unmirror(points_on_mirrored, width)) / 2
