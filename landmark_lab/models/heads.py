"""Landmark heads: feature map (B, C, H, W) -> landmarks (B, 68, 2) in normalised crop coordinates.

Normalised coordinates are ``(pixel + 0.5) / input_size``: 0 and 1 are the crop's outer edges.
Every head has the same interface, so a heatmap head drops in where the regression head was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from landmark_lab.landmarks import NUM_LANDMARKS
from landmark_lab.registry import Registry


class RegressionHead(nn.Module):
    """Global average pool + linear regression of the 136 coordinates."""

    def __init__(self, in_channels: int, num_points: int = NUM_LANDMARKS, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_points = num_points
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_points * 2)
        nn.init.normal_(self.fc.weight, std=1e-3)
        nn.init.constant_(self.fc.bias, 0.5)

    def init_mean_shape(self, mean_shape: torch.Tensor) -> None:
        """Start from the mean training shape, so step 0 already predicts a face."""
        with torch.no_grad():
            self.fc.bias.copy_(mean_shape.reshape(-1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.drop(feats.mean(dim=(2, 3)))
        return self.fc(x).view(-1, self.num_points, 2)


class IntegralHead(nn.Module):
    """Heatmap head with soft-argmax (integral regression): upsample, one map per point, expectation."""

    def __init__(self, in_channels: int, num_points: int = NUM_LANDMARKS, channels: int = 128,
                 upsample: int = 2, beta: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        for _ in range(upsample):
            layers += [nn.ConvTranspose2d(channels, channels, 4, 2, 1, bias=False), nn.BatchNorm2d(channels),
                       nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.maps = nn.Conv2d(channels, num_points, 1)
        self.beta = beta

    def init_mean_shape(self, mean_shape: torch.Tensor) -> None:
        """No-op: a heatmap head has no coordinate bias to initialise."""

    def _prob(self, feats: torch.Tensor) -> torch.Tensor:
        maps = self.maps(self.body(feats))
        b, k, h, w = maps.shape
        return F.softmax(self.beta * maps.view(b, k, -1), dim=-1).view(b, k, h, w)

    @staticmethod
    def _expectation(prob: torch.Tensor) -> torch.Tensor:
        h, w = prob.shape[-2:]
        xs = (torch.arange(w, device=prob.device, dtype=prob.dtype) + 0.5) / w
        ys = (torch.arange(h, device=prob.device, dtype=prob.dtype) + 0.5) / h
        x = (prob.sum(2) * xs).sum(-1)
        y = (prob.sum(3) * ys).sum(-1)
        return torch.stack([x, y], dim=-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self._expectation(self._prob(feats))

    def forward_with_confidence(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks and a confidence in [0, 1]: the probability mass in the 3x3 heatmap cells around each
        point's peak, averaged over the points (a sharp, single peak scores near 1; a diffuse map near 0)."""
        prob = self._prob(feats)
        mass = F.avg_pool2d(prob, 3, stride=1, padding=1, count_include_pad=True) * 9.0
        return self._expectation(prob), mass.flatten(2).amax(-1).mean(-1)


HEADS: Registry[type[nn.Module]] = Registry("landmark head", "model.head.name")
HEADS.register("regression")(RegressionHead)
HEADS.register("integral")(IntegralHead)
