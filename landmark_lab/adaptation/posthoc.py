"""Label translation after training (the study's "adapt labels after training") and data adaptation.

:func:`fit_posthoc_adapter` runs a synthetic-trained model on real training images, then fits a small
map (``affine`` per point, or ``mlp``) from its base (synthetic-convention) predictions to their real
labels, keeping the fit that is best on the real validation images. The map becomes the model's adapter,
so the checkpoint carries it and evaluation applies it. :func:`adapt_labels` uses the same map to convert
a synthetic set's labels to the real convention once (the study's "data adaptation" strategy).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from landmark_lab.data.sample import Sample
from landmark_lab.errors import ConfigError
from landmark_lab.metrics import NME
from landmark_lab.models.adapter import ADAPTERS
from landmark_lab.transforms.crop_imitation import image_size
from landmark_lab.transforms.pipeline import CropConfig

log = logging.getLogger("landmark_lab.adaptation.posthoc")


@torch.no_grad()
def base_predictions(model: nn.Module, loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(base predictions, labels) over ``loader``, both in the model's normalised crop coordinates, on the CPU.
    The forward passes run on the model's device (the GPU after GPU training)."""
    model.eval()
    device = next(model.parameters()).device
    preds, targets = [], []
    for batch in loader:
        base, _ = model(batch["image"].to(device))
        preds.append(base.float().cpu())
        targets.append(model.to_normalised(batch["landmarks"]))
    return torch.cat(preds), torch.cat(targets)


def _nme(model: nn.Module, adapter: nn.Module, base: torch.Tensor, target: torch.Tensor) -> float:
    metric = NME()
    with torch.no_grad():
        metric.update(model.to_pixels(adapter(base)), model.to_pixels(target))
    return float(metric.compute())


def fit_posthoc_adapter(model: nn.Module, train_loader: Any, val_loader: Any, name: str = "affine", steps: int = 500,
                        lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0) -> dict[str, Any]:
    """Fit a new ``name`` adapter on the model's frozen base predictions and install it as ``model.adapter``.

    Full-batch Adam on an L1 loss; the step with the lowest validation NME is kept (the identity counts
    as step 0, so a map that does not help is never installed). Returns NMEs before and after.
    """
    torch.manual_seed(seed)
    base, target = base_predictions(model, train_loader)
    vbase, vtarget = base_predictions(model, val_loader)
    adapter = ADAPTERS[name]()
    opt = torch.optim.Adam(adapter.parameters(), lr=lr, weight_decay=weight_decay)
    best_state = {k: v.clone() for k, v in adapter.state_dict().items()}
    before = {"train_nme_io": _nme(model, adapter, base, target), "val_nme_io": _nme(model, adapter, vbase, vtarget)}
    best, best_step = before["val_nme_io"], 0
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = (adapter(base) - target).abs().mean()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == steps:
            v = _nme(model, adapter, vbase, vtarget)
            if v < best:
                best, best_step = v, step
                best_state = {k: t.clone() for k, t in adapter.state_dict().items()}
    adapter.load_state_dict(best_state)
    adapter.requires_grad_(False)
    model.adapter = adapter
    model.hparams.adapter = {"name": name}
    info = {"adapter": name, "fitted_on": len(base), "validated_on": len(vbase), "best_step": best_step,
            "before": before,
            "after": {"train_nme_io": _nme(model, adapter, base, target), "val_nme_io": best}}
    log.info("post-hoc %s adapter: real val NME io %.2f%% -> %.2f%% (fitted on %d real images)", name,
             100 * before["val_nme_io"], 100 * best, len(base))
    return info


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
