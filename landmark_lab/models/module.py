"""The LightningModule: timm backbone -> landmark head -> label adapter, trained on either convention.

The network predicts landmarks in the synthetic ("3d") convention; the adapter maps them to the
real ("2d") one. A ``3d``-labelled sample supervises the base prediction, a ``2d``-labelled one the
adapted prediction, and evaluation on real data reads the adapted output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from landmark_lab.metrics import LandmarkMetrics
from landmark_lab.models.adapter import ADAPTERS
from landmark_lab.models.backbone import Backbone
from landmark_lab.models.heads import HEADS
from landmark_lab.models.losses import CoordLoss


def _cosine(step: int, total: int, warmup: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


class LandmarkModule(L.LightningModule):
    """Landmark regressor with a swappable backbone and head and a label-adapter head."""

    def __init__(
        self,
        backbone: Mapping[str, Any],
        head: Mapping[str, Any],
        adapter: Mapping[str, Any],
        loss: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any],
        input_size: int = 64,
        crop: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = Backbone(**backbone)
        head = dict(head)
        self.head = HEADS[head.pop("name", "regression")](self.backbone.num_features, **head)
        adapter = dict(adapter)
        self.adapter: nn.Module = ADAPTERS[adapter.pop("name", "mlp")](**adapter)
        self.criterion = CoordLoss(**loss)
        self.input_size = input_size
        # Set by the training script before each fit (pre-training and fine-tuning differ).
        self.lr = float(optimizer.get("lr", 1e-3))
        self.total_steps = 1000
        self.val_metrics = LandmarkMetrics()
        self.test_metrics = LandmarkMetrics()
        self.test_outputs: list[dict[str, torch.Tensor]] = []

    # -- prediction -------------------------------------------------------------------------------
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base (3d-convention) and adapted (2d-convention) landmarks, normalised crop coordinates."""
        base = self.head(self.backbone(image))
        return base, self.adapter(base)

    def to_pixels(self, pts: torch.Tensor) -> torch.Tensor:
        return pts * self.input_size - 0.5

    def to_normalised(self, pts: torch.Tensor) -> torch.Tensor:
        return (pts + 0.5) / self.input_size

    def predict_pixels(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Crop-pixel landmarks in each sample's own label convention."""
        return self.predict_both(batch)[0]

    def predict_both(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop-pixel landmarks with the adapter where the sample's convention asks for it, and without it
        (the base, synthetic-convention prediction): the label gap in numbers."""
        base, adapted = self(batch["image"])
        pred = torch.where(batch["is_3d"].view(-1, 1, 1), base, adapted)
        return self.to_pixels(pred), self.to_pixels(base)

    def inference_net(self) -> nn.Module:
        """The plain network for inference and export (normalisation inside, crop pixels out)."""
        from landmark_lab.inference.network import LandmarkNet

        return LandmarkNet(self.backbone, self.head, self.adapter, self.input_size).eval()

    def init_mean_shape(self, mean_shape_px: torch.Tensor) -> None:
        """Initialise the head at a mean shape given in crop pixels."""
        self.head.init_mean_shape(self.to_normalised(mean_shape_px))

    # -- steps ------------------------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        base, adapted = self(batch["image"])
        target = self.to_normalised(batch["landmarks"])
        is3d = batch["is_3d"]
        n = float(len(is3d))
        n3 = float(is3d.sum())
        loss = (self.criterion(base[is3d], target[is3d]) * n3 + self.criterion(adapted[~is3d], target[~is3d]) * (n - n3)) / n
        self.log("train/loss", loss, prog_bar=True, batch_size=len(is3d))
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self.val_metrics.update(self.predict_pixels(batch), batch["landmarks"])

    def on_validation_epoch_end(self) -> None:
        m = self.val_metrics.compute()
        self.log("val/nme_io", m["nme_io"], prog_bar=True)
        self.log("val/nme_io_jaw", m["nme_io_jaw"])
        self.val_metrics.reset()

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        pred = self.predict_pixels(batch)
        self.test_metrics.update(pred, batch["landmarks"])
        if batch_idx == 0:
            self.test_outputs.append({"pred": pred[:16].cpu(), "target": batch["landmarks"][:16].cpu(),
                                      "image": batch["image"][:16].cpu()})

    def on_test_epoch_end(self) -> None:
        for k, v in self.test_metrics.compute().items():
            if k != "count":
                self.log(f"test/{k}", v)

    # -- optimisation -----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        o = dict(self.hparams.optimizer)
        name = o.pop("name", "adamw").lower()
        o.pop("lr", None)
        if name == "adamw":
            opt = torch.optim.AdamW(self.parameters(), lr=self.lr, **o)
        elif name == "adam":
            opt = torch.optim.Adam(self.parameters(), lr=self.lr, **o)
        elif name == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=self.lr, **{"momentum": 0.9, **o})
        else:
            raise ValueError(f"unknown optimizer {name!r}; use adamw, adam or sgd")
        s = dict(self.hparams.scheduler)
        if s.get("name", "cosine") == "none":
            return opt
        warmup = int(s.get("warmup_frac", 0.05) * self.total_steps)
        floor = float(s.get("min_lr_ratio", 0.01))
        total = self.total_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: _cosine(step, total, warmup, floor))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
