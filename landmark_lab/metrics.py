"""Landmark metrics as torchmetrics ``Metric`` classes: NME (three normalisers), FR, AUC, CED, per-region NME.

Conventions (always stated, since the field mixes them):
- ``inter_ocular``: distance between the outer eye corners, 0-based points 36 and 45 (300-W standard);
- ``inter_pupil``: distance between the eye centres (means of 36-41 and 42-47); larger NMEs;
- ``box``: sqrt(w * h) of the ground-truth landmark box.
NME is the mean point-to-point error divided by the normaliser, per face, then averaged over faces.
FR@t is the share of faces with NME > t; AUC@t is the area under the CED curve on [0, t] divided by t.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from landmark_lab.landmarks import LEFT_EYE, OUTER_EYE_CORNERS, REGIONS, RIGHT_EYE

NORMALIZERS = ("inter_ocular", "inter_pupil", "box")
SHORT = {"inter_ocular": "io", "inter_pupil": "ip", "box": "box"}


def normalizer(target: torch.Tensor, kind: str = "inter_ocular") -> torch.Tensor:
    """Per-face normalising distance of (B, 68, 2) ground-truth landmarks."""
    if kind == "inter_ocular":
        a, b = OUTER_EYE_CORNERS
        return (target[:, a] - target[:, b]).norm(dim=-1)
    if kind == "inter_pupil":
        return (target[:, list(RIGHT_EYE)].mean(1) - target[:, list(LEFT_EYE)].mean(1)).norm(dim=-1)
    if kind == "box":
        wh = target.amax(1) - target.amin(1)
        return (wh[:, 0] * wh[:, 1]).clamp_min(0).sqrt()
    raise ValueError(f"unknown NME normaliser {kind!r}; use one of {NORMALIZERS}")


def point_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Euclidean error per point, (B, 68)."""
    return (pred - target).norm(dim=-1)


def nme_per_face(pred: torch.Tensor, target: torch.Tensor, kind: str = "inter_ocular",
                 points: list[int] | None = None) -> torch.Tensor:
    """NME of each face (B,), optionally over a subset of points."""
    err = point_errors(pred, target)
    if points is not None:
        err = err[:, points]
    return err.mean(1) / normalizer(target, kind).clamp_min(1e-6)


def failure_rate(nme: torch.Tensor, threshold: float) -> torch.Tensor:
    """Share of faces whose NME exceeds ``threshold``."""
    return (nme > threshold).float().mean()


def auc(nme: torch.Tensor, threshold: float) -> torch.Tensor:
    """Area under the CED curve on [0, threshold], divided by threshold (exact: mean of max(0, 1 - e/t))."""
    return (1.0 - nme / threshold).clamp(0.0, 1.0).mean()


def ced_curve(nme: torch.Tensor, max_error: float = 0.1, steps: int = 101) -> tuple[torch.Tensor, torch.Tensor]:
    """Cumulative error distribution: thresholds and the share of faces with NME <= each."""
    xs = torch.linspace(0.0, max_error, steps, dtype=nme.dtype, device=nme.device)
    return xs, (nme[None, :] <= xs[:, None]).float().mean(1)


class NME(Metric):
    """Mean normalised error over faces, with a chosen normaliser."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, normalizer: str = "inter_ocular", **kwargs) -> None:
        super().__init__(**kwargs)
        if normalizer not in NORMALIZERS:
            raise ValueError(f"unknown NME normaliser {normalizer!r}; use one of {NORMALIZERS}")
        self.kind = normalizer
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        nme = nme_per_face(pred.float(), target.float(), self.kind)
        self.total += nme.double().sum()
        self.count += nme.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class LandmarkMetrics(Metric):
    """Everything a landmark evaluation reports, from per-face errors kept over the whole set.

    ``compute()`` returns a flat dict: ``nme_io``, ``nme_ip``, ``nme_box``, ``fr_io@0.08``,
    ``fr_io@0.1``, ``auc_io@0.08``, ``auc_io@0.1``, ``nme_io_<region>`` for jaw/brows/nose/eyes/mouth
    and ``nme_io_inner`` (all but the jaw), plus ``count``. ``ced()`` gives the CED curve.
    """

    full_state_update = False
    # Mixed: NME and failure rates are better lower, AUC higher (torchmetrics reads None as "no single direction").
    higher_is_better = None

    def __init__(self, thresholds: tuple[float, ...] = (0.08, 0.10), **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(thresholds)
        for kind in NORMALIZERS:
            self.add_state(f"nme_{SHORT[kind]}", default=[], dist_reduce_fx="cat")
        self.add_state("point_err", default=[], dist_reduce_fx="cat")  # (N, 68) errors / inter-ocular

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = pred.float(), target.float()
        for kind in NORMALIZERS:
            getattr(self, f"nme_{SHORT[kind]}").append(nme_per_face(pred, target, kind))
        io = normalizer(target, "inter_ocular").clamp_min(1e-6)
        self.point_err.append(point_errors(pred, target) / io[:, None])

    def _cat(self, name: str) -> torch.Tensor:
        value = getattr(self, name)
        if isinstance(value, list):
            return torch.cat(value) if value else torch.zeros(0)
        return value

    def per_face(self, kind: str = "inter_ocular") -> torch.Tensor:
        """NME of every face seen so far."""
        return self._cat(f"nme_{SHORT[kind]}")

    def ced(self, max_error: float = 0.1, steps: int = 101) -> tuple[torch.Tensor, torch.Tensor]:
        """CED curve of the inter-ocular NME."""
        return ced_curve(self.per_face(), max_error, steps)

    def compute(self) -> dict[str, torch.Tensor]:
        io = self.per_face("inter_ocular")
        out = {f"nme_{SHORT[k]}": self.per_face(k).mean() for k in NORMALIZERS}
        for t in self.thresholds:
            out[f"fr_io@{t:g}"] = failure_rate(io, t)
            out[f"auc_io@{t:g}"] = auc(io, t)
        pe = self._cat("point_err")
        for name, idx in REGIONS.items():
            out[f"nme_io_{name}"] = pe[:, list(idx)].mean()
        out["nme_io_inner"] = pe[:, 17:].mean()
        out["count"] = torch.tensor(float(io.numel()))
        return out
