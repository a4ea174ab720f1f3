"""Evaluate a model (or the mean-shape baseline) on a loader: metrics, CED, sample predictions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.ops import box_iou
from tqdm.auto import tqdm

from landmark_lab.errors import DataError
from landmark_lab.landmarks import landmark_box
from landmark_lab.metrics import LandmarkMetrics
from landmark_lab.transforms.flip import (
    base_mirror_shift,
    crop_shift,
    flip_average,
    mirror_images,
    model_mirror_shift,
)
from landmark_lab.transforms.geometry import crop_matrix, crop_scale, warp
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
    # Every test face's inter-ocular NME, in loader order: what a report needs to bootstrap over test faces.
    per_face: list[float] | None = None
    # Mean prediction - label over every point of every face, in image pixels: {"x": .., "y": ..} (see offset_line)
    offset: dict[str, float] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metrics": self.metrics, "ced": self.ced}
        if self.offset is not None:
            out["offset_px"] = self.offset
        if self.without_adapter is not None:
            out["metrics_without_adapter"] = self.without_adapter
        if self.per_face is not None:
            out["per_face_nme_io"] = [round(x, 6) for x in self.per_face]  # 6 digits: about 8 kB per 1000 faces
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


def offset_line(offset: dict[str, float]) -> str:
    """How far the predictions sit from the labels on average, and what an x offset says about the labels."""
    return (f"offset: predictions sit x {offset['x']:+.2f} px, y {offset['y']:+.2f} px from the labels on average (image "
            "pixels; on faces the model never saw, an x offset near -1 px is a mirror shift of the labels it was not "
            "trained with: data.real.mirror_shift, README 'Data')")


class _Offset:
    """Running mean of prediction - label in image pixels (crop pixels divided by each crop's scale)."""

    def __init__(self) -> None:
        self.total, self.count = torch.zeros(2, dtype=torch.float64), 0

    def update(self, pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | float = 1.0) -> None:
        diff = (pred.double() - target.double()).mean(1)  # (B, 2) per face
        scale = torch.as_tensor(scale, dtype=torch.float64).reshape(-1, 1)
        self.total += (diff / scale).sum(0)
        self.count += len(diff)

    def compute(self) -> dict[str, float] | None:
        if not self.count:
            return None
        x, y = (self.total / self.count).tolist()
        return {"x": round(x, 4), "y": round(y, 4)}


def _finish(metric: LandmarkMetrics) -> tuple[dict[str, float], dict[str, list[float]]]:
    scalars = {k: float(v) for k, v in metric.compute().items()}
    xs, ys = metric.ced()
    return scalars, {"nme_io": xs.tolist(), "fraction": ys.tolist()}


def _per_face(metric: LandmarkMetrics) -> list[float]:
    return [float(x) for x in metric.per_face("inter_ocular").tolist()]


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: str | torch.device = "cpu", keep: int = 16,
             progress: bool = True, flip: bool = False) -> EvalResult:
    """Run ``model.predict_both`` over ``loader`` and compute every landmark metric.

    ``flip``: test-time flip averaging (the prediction averaged with the un-mirrored prediction on the
    mirrored crop), for the adapted and the base output alike.
    """
    model.eval().to(device)
    metric, raw, offset = LandmarkMetrics(), LandmarkMetrics(), _Offset()
    images, preds, targets = [], [], []
    for batch in tqdm(loader, desc="testing", unit="batch", disable=not progress, leave=False):
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        pred, base = model.predict_both(batch)
        if flip:
            width = batch["image"].shape[-1]
            m_pred, m_base = model.predict_both({**batch, "image": mirror_images(batch["image"])})
            shift = crop_shift(model_mirror_shift(model), batch["crop_matrix"].to(pred.dtype))
            pred = flip_average(pred, m_pred, width, shift)
            base = flip_average(base, m_base, width, base_mirror_shift(model, shift))
        metric.update(pred.cpu(), batch["landmarks"].cpu())
        raw.update(base.cpu(), batch["landmarks"].cpu())
        if "crop_matrix" in batch:
            offset.update(pred.cpu(), batch["landmarks"].cpu(), crop_scale(batch["crop_matrix"].cpu()))
        if len(images) < keep:
            take = min(keep - len(images), len(pred))
            images += [denormalize(im) for im in batch["image"][:take]]
            preds.append(pred[:take].cpu().numpy())
            targets.append(batch["landmarks"][:take].cpu().numpy())
    scalars, ced = _finish(metric)
    return EvalResult(scalars, ced, images, np.concatenate(preds) if preds else None,
                      np.concatenate(targets) if targets else None,
                      without_adapter=_finish(raw)[0] if base_is_meaningful(model) else None, per_face=_per_face(metric),
                      offset=offset.compute())


def base_is_meaningful(model: torch.nn.Module) -> bool:
    """Whether a model's output without its label adapter is worth reporting: it has an adapter (not the
    identity) and 3d-labelled faces trained its base output. In real-only training the adapter sits on top of a
    base that nothing supervises directly, so "without adapter" would be a meaningless number."""
    from landmark_lab.models.adapter import IdentityAdapter

    adapter = getattr(model, "adapter", None)
    if adapter is None or isinstance(adapter, IdentityAdapter):
        return False
    hparams = getattr(model, "hparams", {}) or {}
    recorded = hparams.get("base_supervised")
    return True if recorded is None else bool(recorded)  # not recorded (older checkpoints): report it


def mean_shape_baseline(mean_shape: torch.Tensor, loader: DataLoader) -> EvalResult:
    """Metrics of always predicting ``mean_shape`` (crop pixels): the floor a model must clearly beat."""
    metric = LandmarkMetrics()
    for batch in loader:
        target = batch["landmarks"]
        metric.update(mean_shape.expand_as(target), target)
    scalars, ced = _finish(metric)
    return EvalResult(scalars, ced, per_face=_per_face(metric))


# A detection counts as the labelled face when it overlaps the landmark box at least this much (dlib's box
# covers brows to chin, so even a perfect detection has an IoU of about 0.5-0.7 with it).
MATCH_IOU = 0.3


def evaluate_images(predictor: Any, dataset: Any, box: str = "landmarks", flip: bool = False, keep: int = 16,
                    progress: bool = True, figure_size: int = 128) -> tuple[EvalResult, dict[str, Any]]:
    """Evaluate anything with ``predict(image, boxes, flip, box_kind)`` (a :class:`Predictor`, dlib's peer) on
    the original images of ``dataset`` (a :class:`FaceDataset`), in image pixels.

    ``box="landmarks"``: the face box is the ground-truth landmark box (the 300-W protocol);
    ``box="detector"``: the predictor's detector finds the face (the detection overlapping the labelled face
    most); faces it misses are counted (``misses``) and left out of the metrics.
    """
    metric, offset = LandmarkMetrics(), _Offset()
    images, preds, targets, missed = [], [], [], []
    for i in tqdm(range(len(dataset)), desc=f"testing ({box} boxes)", unit="face", disable=not progress, leave=False):
        sample = dataset.sample(i)
        gt_box = landmark_box(sample.landmarks)
        if box == "landmarks":
            faces = predictor.predict(sample.image, boxes=[gt_box], flip=flip, box_kind="landmarks")
        else:
            found = predictor.detect(sample.image)
            iou = box_iou(torch.tensor(found, dtype=torch.float64).view(-1, 4),
                          torch.tensor([gt_box], dtype=torch.float64))[:, 0].nan_to_num(0.0)  # empty boxes: 0
            if not len(found) or float(iou.max()) < MATCH_IOU:
                missed.append(sample.id)
                continue
            best = found[int(iou.argmax())]
            faces = predictor.predict(sample.image, boxes=[best], flip=flip, box_kind="face")
        pred = torch.from_numpy(faces[0].landmarks[None].astype(np.float32))
        target = torch.from_numpy(sample.landmarks[None].astype(np.float32))
        metric.update(pred, target)
        offset.update(pred, target)
        if len(images) < keep:  # for figures: the test crop around the labelled face, both point sets in it
            m = crop_matrix(gt_box, figure_size, 1.25)
            crop, t = warp(sample.image, sample.landmarks, m, figure_size)
            images.append(crop)
            preds.append(warp(sample.image, faces[0].landmarks, m, figure_size)[1][None])
            targets.append(t[None])
    if not preds:
        raise DataError(f"no test face was evaluated: the detector found none of the {len(dataset)} labelled faces.")
    scalars, ced = _finish(metric)
    info = {"box": box, "flip": flip, "faces": len(dataset), "evaluated": len(dataset) - len(missed),
            "misses": len(missed), "missed_ids": missed[:50]}
    return EvalResult(scalars, ced, images, np.concatenate(preds), np.concatenate(targets), offset=offset.compute()), info
