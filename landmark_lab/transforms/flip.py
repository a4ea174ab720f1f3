"""Flip averaging (MMPose's ``flip_test``): one implementation for ``evaluate``, the Predictor and a distillation
teacher (a prediction and the one on the mirrored crop, averaged)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from landmark_lab.landmarks import FLIP_68
from landmark_lab.transforms.geometry import crop_scale

T = TypeVar("T", np.ndarray, torch.Tensor)


def unmirror(points: T, width: int, shift: float | T = 0.0) -> T:
    """Points predicted on a mirrored crop (..., 68, 2), in pixel-centre coordinates of a crop ``width`` wide,
    mapped back to the unmirrored crop: left/right indices swapped (FLIP_68), x -> (width - 1) - x + 2 * shift.

    ``shift`` (crop pixels; a number, or one per face, shaped like ``points[..., 0, 0]``): the labels' mirror shift
    the model learned (``mirror_shift`` times the crop's scale), as :func:`~landmark_lab.landmarks.flip_landmarks`
    mirrored its training labels."""
    out = points[..., FLIP_68, :] if isinstance(points, np.ndarray) else points[..., torch.as_tensor(FLIP_68), :]
    out = out.copy() if isinstance(out, np.ndarray) else out.clone()
    out[..., 0] = (width - 1) - out[..., 0] + 2 * _per_point(shift)
    return out


def _per_point(shift: float | T) -> float | T:
    """A per-face shift broadcast over the 68 points (a number stays a number)."""
    return shift[..., None] if isinstance(shift, np.ndarray | torch.Tensor) else float(shift)


def mirror_images(images: T) -> T:
    """Mirror a batch of images along their width (the last axis of (B, C, H, W))."""
    return images[..., ::-1].copy() if isinstance(images, np.ndarray) else torch.flip(images, dims=[-1])


def flip_average(points: T, points_on_mirrored: T, width: int, shift: float | T = 0.0) -> T:
    """Mean of a prediction and the un-mirrored prediction on the mirrored input (``shift``: see :func:`unmirror`)."""
    return (points + unmirror(points_on_mirrored, width, shift)) / 2


def model_mirror_shift(model: object) -> float:
    """The labels' mirror shift (image pixels) a model was trained with: ``hparams.mirror_shift``, 0 for checkpoints
    that record none (they were trained mirroring exactly)."""
    return float((getattr(model, "hparams", None) or {}).get("mirror_shift") or 0.0)


def base_mirror_shift(model: object, shift: float | T) -> float | T:
    """The mirror shift of a model's base output (before its label adapter), given its adapted output's ``shift``:
    none where 3d labels trained the base (``hparams.base_supervised``; synthetic labels mirror exactly), else
    ``shift`` (the base is then the adapted output's network)."""
    return 0.0 if (getattr(model, "hparams", None) or {}).get("base_supervised") else shift


def crop_shift(mirror_shift: float, matrices: T) -> T:
    """The mirror shift in crop pixels of each crop: ``mirror_shift`` (image pixels) times its crop's scale."""
    return mirror_shift * crop_scale(matrices)
