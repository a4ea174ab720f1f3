"""Label adapters: map landmarks from the synthetic (projected 3D) convention to the real (2D outline) one.

Both start as the identity, so an adapter that gets no real supervision changes nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from landmark_lab.landmarks import NUM_LANDMARKS
from landmark_lab.registry import Registry


class IdentityAdapter(nn.Module):
    """No adaptation (the ablation)."""

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        return pts


class PointAffineAdapter(nn.Module):
    """An independent 2x3 affine map per landmark, about the face centre; identity at init."""

    def __init__(self, num_points: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.linear = nn.Parameter(torch.zeros(num_points, 2, 2))
        self.offset = nn.Parameter(torch.zeros(num_points, 2))

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        centre = pts.mean(dim=1, keepdim=True)
        rel = pts - centre
        return pts + torch.einsum("kij,bkj->bki", self.linear, rel) + self.offset


class MLPAdapter(nn.Module):
    """A small residual MLP over all 136 coordinates (it can use the whole shape, e.g. head pose, to move
    the jaw onto the outline); the last layer starts at zero, so it is the identity at init."""

    def __init__(self, num_points: int = NUM_LANDMARKS, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_points * 2, hidden), nn.GELU(), nn.Linear(hidden, num_points * 2))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        centre = pts.mean(dim=1, keepdim=True)
        scale = (pts - centre).norm(dim=-1).mean(dim=1, keepdim=True).unsqueeze(-1).clamp_min(1e-6)
        rel = ((pts - centre) / scale).flatten(1)
        return pts + self.net(rel).view_as(pts) * scale


ADAPTERS: Registry[type[nn.Module]] = Registry("label adapter", "model.adapter.name")
for _name, _cls in (("none", IdentityAdapter), ("affine", PointAffineAdapter), ("mlp", MLPAdapter)):
    ADAPTERS.register(_name)(_cls)
