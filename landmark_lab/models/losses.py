"""Coordinate losses (L1, L2, Wing), on normalised coordinates scaled to ``scale`` pixels."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from landmark_lab.registry import Registry

# name -> f(per-coordinate pixel error (..., 2), the loss module) -> per-point loss (...)
LOSSES: Registry[Callable[[torch.Tensor, CoordLoss], torch.Tensor]] = Registry("loss", "model.loss.name")


@LOSSES.register("l2")
def _l2(diff: torch.Tensor, _: CoordLoss) -> torch.Tensor:
    return (diff**2).sum(-1)


@LOSSES.register("l1")
def _l1(diff: torch.Tensor, _: CoordLoss) -> torch.Tensor:
    return diff.abs().sum(-1)


@LOSSES.register("wing")
def _wing(diff: torch.Tensor, m: CoordLoss) -> torch.Tensor:
    d = diff.abs()
    return torch.where(d < m.w, m.w * torch.log1p(d / m.eps), d - m.c).sum(-1)


class CoordLoss(nn.Module):
    """Mean over points of a per-point loss of the coordinate error, in units of ``scale`` pixels.

    ``wing``: Feng et al. 2018, w * ln(1 + d/eps) below w, linear above (w=10, eps=2 at 64 px).
    ``scale`` is the crop size the model sees (derived from ``data.transform.crop.size`` unless set), so a
    128-px crop keeps the loss in pixels of that crop.
    """

    def __init__(self, name: str = "wing", scale: float = 64.0, w: float = 10.0, eps: float = 2.0) -> None:
        super().__init__()
        self.fn = LOSSES.get(name)
        self.name, self.scale, self.w, self.eps = name, float(scale), w, eps
        self.c = w - w * math.log(1.0 + w / eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Mean per-point loss; with ``weight`` (B, K), the weighted mean (points of weight 0 left out)."""
        if pred.numel() == 0:
            return pred.sum() * 0.0
        per_point = self.fn((pred - target) * self.scale, self)
        return per_point.mean() if weight is None else weighted_mean(per_point, weight)


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` weighted by ``weight`` of the same shape (0 when every weight is 0)."""
    return (values * weight).sum() / weight.sum().clamp_min(1e-8)
