"""Label translation after training (the study's "adapt labels after training") and data adaptation.

:func:`fit_posthoc_adapter` runs a synthetic-trained model on real training images, then fits a small
map (``affine`` per point, or ``mlp``) from its base (synthetic-convention) predictions to their real
labels, keeping the fit that is best on the real validation images. The map becomes the model's adapter,
so the checkpoint carries it and evaluation applies it. :func:`landmark_lab.datamodules.label_translation.adapt_labels`
uses the same map to convert a synthetic set's labels to the real convention once (the study's "data adaptation").
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from landmark_lab.metrics import NME
from landmark_lab.models.adapter import ADAPTERS

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
