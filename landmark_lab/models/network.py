"""The plain inference network: normalisation -> backbone -> head -> label adapter -> crop pixels.

This is what ``export`` writes (ONNX / torch.export) and what the eager :class:`Predictor` runs, so the two
share every step between the crop and the 68 points.
"""

from __future__ import annotations

import torch
from torch import nn

from landmark_lab.models.heads import head_features
from landmark_lab.transforms.pipeline import MEAN, STD


class LandmarkNet(nn.Module):
    """``(B, 3, S, S)`` RGB crops in 0..255 (float) -> ``(B, 68, 2)`` landmarks in crop pixels (pixel-centre,
    the real "2d" convention, i.e. after the label adapter) and ``(B,)`` confidence: for heatmap heads the
    probability mass around each point's peak, averaged over the 68 points; NaN for heads without one."""

    def __init__(self, backbone: nn.Module, head: nn.Module, adapter: nn.Module, input_size: int) -> None:
        super().__init__()
        self.backbone, self.head, self.adapter = backbone, head, adapter
        self.input_size = int(input_size)
        self.register_buffer("mean", torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = head_features(self.backbone, self.head, (image - self.mean) / self.std)
        base, score = self.head.forward_with_confidence(feats)
        return self.adapter(base) * self.input_size - 0.5, score
