"""Data adaptation: a synthetic set's labels translated to the real ("2d") convention once, by a fitted label map.

The map is the adapter :func:`landmark_lab.adaptation.posthoc.fit_posthoc_adapter` fits (the study's "data
adaptation" strategy); the translated set is a source like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from landmark_lab.data.sample import Sample
from landmark_lab.errors import ConfigError
from landmark_lab.transforms.crop_imitation import image_size
from landmark_lab.transforms.pipeline import CropConfig


class AdaptedLabels:
    """A source whose labels were translated to the real ("2d") convention; images are the source's own."""

    def __init__(self, source: Any, landmarks: np.ndarray) -> None:
        self.source = source
        self.landmarks = landmarks.astype(np.float32)
        self.images, self.ids, self.domain, self.convention = source.images, source.ids, source.domain, "2d"
        self.name = f"{source.name}(adapted)"
        self.folder = getattr(source, "folder", None)

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int) -> Sample:
        s = self.source.load(index)
        s.landmarks, s.convention = self.landmarks[index].copy(), "2d"
        return s


@torch.no_grad()
def adapt_labels(adapter: nn.Module, source: Any, crop: Mapping[str, Any], input_size: int) -> AdaptedLabels:
    """Translate every label of ``source`` with ``adapter`` in the crop frame the model saw (the test crop)."""
    if crop.get("box", "landmarks") not in ("landmarks", "image"):
        raise ConfigError(f"translating labels needs the crop to follow from the labels or the image; "
                          f"data.transform.crop.box={crop.get('box')!r} is not supported (use landmarks or image).")
    cfg = CropConfig(**{**crop, "size": input_size})
    lms = source.landmarks.astype(np.float64)
    mats = np.stack([cfg.matrix(lm, image_size(source.images[i]) if cfg.box == "image" else None)
                     for i, lm in enumerate(lms)])
    in_crop = np.einsum("nij,nkj->nki", mats[:, :, :2], lms) + mats[:, None, :, 2]
    norm = torch.from_numpy((in_crop + 0.5) / input_size).float()
    adapted = adapter(norm).double().numpy() * input_size - 0.5
    inv = np.linalg.inv(np.concatenate([mats, np.tile([[[0.0, 0.0, 1.0]]], (len(mats), 1, 1))], axis=1))
    back = np.einsum("nij,nkj->nki", inv[:, :2, :2], adapted) + inv[:, None, :2, 2]
    return AdaptedLabels(source, back)
