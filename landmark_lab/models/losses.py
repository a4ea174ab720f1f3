"""Coordinate losses (L1, L2, Wing), on normalised coordinates scaled to ``scale`` pixels."""

from __future__ import annotations

import math

import torch
from torch import nn

LOSSES = ("l1", "l2", "wing")


class CoordLoss(nn.Module):
    """Mean over points of a per-point loss of the Euclidean error, in units of ``scale`` pixels.

    ``wing``: Feng et al. 2018, w * ln(1 + d/eps) below w, linear above (w=10, eps=2 at 64 px).
    """

    def __init__(self, name: str = "wing", scale: float = 64.0, w: float = 10.0, eps: float = 2.0) -> None:
        super().__init__()
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; use l1, l2 or wing")
        self.name, self.scale, self.w, self.eps = name, scale, w, eps
        self.c = w - w * math.log(1.0 + w / eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.numel() == 0:
            return pred.sum() * 0.0
        diff = (pred - target) * self.scale
        if self.name == "l2":
            return (diff**2).sum(-1).mean()
        d = diff.abs()
        if self.name == "l1":
            return d.sum(-1).mean()
        loss = torch.where(d < self.w, self.w * torch.log1p(d / self.eps), d - self.c)
        return loss.sum(-1).mean()
