"""Evaluate a model (or the mean-shape baseline) on a loader: metrics, CED, sample predictions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from landmark_lab.metrics import LandmarkMetrics
from landmark_lab.transforms.pipeline import denormalize


@dataclass
class EvalResult:
    """Scalar metrics, the CED curve, and a few faces with predictions for figures."""

    metrics: dict[str, float]
    ced: dict[str, list[float]]
    images: list[np.ndarray] = field(default_factory=list)
    preds: np.ndarray | None = None
    targets: np.ndarray | None = None
    # The same metrics from the base prediction, without the label adapter (None for baselines).
    without_adapter: dict[str, float] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metrics": self.metrics, "ced": self.ced}
        if self.without_adapter is not None:
            out["metrics_without_adapter"] = self.without_adapter
        return out


NME_CONVENTION = "inter_ocular = outer eye corners (points 36, 45); inter_pupil = eye centres; box = sqrt(w*h)"


def summary_line(m: dict[str, float], without_adapter: dict[str, float] | None = None) -> str:
    """One-line human summary of :class:`LandmarkMetrics` results (and of the same model without its adapter)."""
    line = (f"NME io {100 * m['nme_io']:.2f}% (jaw {100 * m['nme_io_jaw']:.2f}%, inner {100 * m['nme_io_inner']:.2f}%), "
            f"ip {100 * m['nme_ip']:.2f}%, FR@0.1 {100 * m['fr_io@0.1']:.1f}%, AUC@0.1 {m['auc_io@0.1']:.3f}")
    if without_adapter is not None:
        w = without_adapter
        line += (f" | without adapter: {100 * w['nme_io']:.2f}% (jaw {100 * w['nme_io_jaw']:.2f}%, "
                 f"inner {100 * w['nme_io_inner']:.2f}%)")
    return line


def _finish(metric: LandmarkMetrics) -> tuple[dict[str, float], dict[str, list[float]]]:
    scalars = {k: float(v) for k, v in metric.compute().items()}
    xs, ys = metric.ced()
    return scalars, {"nme_io": xs.tolist(), "fraction": ys.tolist()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: str | torch.device = "cpu", keep: int = 16,
             progress: bool = True) -> EvalResult:
    """Run ``model.predict_pixels`` over ``loader`` and compute every landmark metric."""
    model.eval().to(device)
    metric, raw = LandmarkMetrics(), LandmarkMetrics()
    images, preds, targets = [], [], []
    for batch in tqdm(loader, desc="testing", unit="batch", disable=not progress, leave=False):
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        pred, base = model.predict_both(batch)
        metric.update(pred.cpu(), batch["landmarks"].cpu())
        raw.update(base.cpu(), batch["landmarks"].cpu())
        if len(images) < keep:
            take = min(keep - len(images), len(pred))
            images += [denormalize(im) for im in batch["image"][:take]]
            preds.append(pred[:take].cpu().numpy())
            targets.append(batch["landmarks"][:take].cpu().numpy())
    scalars, ced = _finish(metric)
    return EvalResult(scalars, ced, images, np.concatenate(preds) if preds else None,
                      np.concatenate(targets) if targets else None, without_adapter=_finish(raw)[0])


def mean_shape_baseline(mean_shape: torch.Tensor, loader: DataLoader) -> EvalResult:
    """Metrics of always predicting ``mean_shape`` (crop pixels): the floor a model must clearly beat."""
    metric = LandmarkMetrics()
    for batch in loader:
        target = batch["landmarks"]
        metric.update(mean_shape.expand_as(target), target)
    scalars, ced = _finish(metric)
    return EvalResult(scalars, ced)
