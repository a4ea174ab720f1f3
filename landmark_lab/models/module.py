"""The LightningModule: timm backbone -> landmark head -> label adapter, trained on either convention.

The network predicts landmarks in the synthetic ("3d") convention; the adapter maps them to the
real ("2d") one. A ``3d``-labelled sample supervises the base prediction, a ``2d``-labelled one the
adapted prediction, and evaluation on real data reads the adapted output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from landmark_lab.metrics import LandmarkMetrics
from landmark_lab.models.adapter import ADAPTERS, IdentityAdapter
from landmark_lab.models.backbone import Backbone
from landmark_lab.models.heads import build_head, head_features
from landmark_lab.models.losses import CoordLoss
from landmark_lab.models.network import LandmarkNet
from landmark_lab.transforms.flip import (
    base_mirror_shift,
    crop_shift,
    flip_average,
    mirror_images,
    model_mirror_shift,
)


def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict[str, Any]]:
    """Optimiser parameter groups: weight decay on weights only, none on norm and bias parameters (decaying
    them pulls normalisation scales and offsets towards 0 for no regularising benefit)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in params:  # 1-d parameters are biases and norm scales/offsets
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _rows(weight: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor | None:
    """The rows ``mask`` of per-point weights (None stays None: the unweighted mean)."""
    return None if weight is None else weight[mask]


class LandmarkModule(L.LightningModule):
    """Landmark regressor with a swappable backbone and head and a label-adapter head."""

    def __init__(
        self,
        backbone: Mapping[str, Any],
        head: Mapping[str, Any],
        adapter: Mapping[str, Any],
        loss: Mapping[str, Any],
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        input_size: int = 64,
        crop: Mapping[str, Any] | None = None,
        decay_norm_and_bias: bool = False,
        stage: Mapping[str, Any] | None = None,
        base_supervised: bool | None = None,
        channels_last: bool = False,
        compile: bool = False,
        mirror_shift: float = 0.0,
    ) -> None:
        super().__init__()
        # Everything here goes into every checkpoint; ``stage`` (name, lr, steps) is updated by
        # :meth:`start_stage`, so a checkpoint records the learning rate and steps its stage really used.
        # ``base_supervised`` (set by the training runner): whether 3d-labelled faces trained the base output.
        # ``mirror_shift``: the real labels' mirror shift (image pixels, data.real.mirror_shift) the model learned;
        # a flip average un-mirrors with it, as training mirrored the labels.
        self.save_hyperparameters()
        self.backbone = Backbone(**backbone)
        head = dict(head)
        self.head = build_head(head.pop("name", "regression"), self.backbone, **head)
        adapter = dict(adapter)
        self.adapter: nn.Module = ADAPTERS[adapter.pop("name", "mlp")](**adapter)
        loss = dict(loss)
        if loss.get("scale") is None:  # errors in pixels of the crop the model sees
            loss["scale"] = float(input_size)
        self.criterion = CoordLoss(**loss)
        self.input_size = input_size
        self.val_metrics = LandmarkMetrics()

    # -- prediction -------------------------------------------------------------------------------
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base (3d-convention) and adapted (2d-convention) landmarks, normalised crop coordinates."""
        base = self.head(self._features(image))
        return base, self.adapter(base)

    def _features(self, image: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """What the head reads from the backbone (in NHWC when ``channels_last``)."""
        if self.hparams.get("channels_last"):
            image = image.contiguous(memory_format=torch.channels_last)
        return head_features(self.backbone, self.head, image)

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
        return LandmarkNet(self.backbone, self.head, self.adapter, self.input_size).eval()

    def init_mean_shape(self, mean_shape_px: torch.Tensor) -> None:
        """Initialise the head at a mean shape given in crop pixels."""
        self.head.init_mean_shape(self.to_normalised(mean_shape_px))

    # -- steps ------------------------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        feats = self._features(batch["image"])
        maps = None
        if self.head.has_maps:
            base, maps = self.head.forward_with_maps(feats)
        else:
            base = self.head(feats)
        adapted = self.adapter(base)
        target = self.to_normalised(batch["landmarks"])
        is3d = batch["is_3d"]
        # per-point loss weights (pseudo-labelled points the teacher is unsure of: 0); all ones: the plain mean
        weight = batch.get("point_weight")
        if weight is not None and bool((weight == 1).all()):
            weight = None
        n = float(len(is3d))
        n3 = float(is3d.sum())
        w3, w2 = 1.0, 1.0
        if maps is not None:
            # The maps are the base output: they learn a sample's labels where those are in the base's convention,
            # i.e. 3d labels; and 2d labels too when there is no adapter between the two, or when no 3d-labelled
            # face trains this model at all (real-only: then 2d is the only convention, and an adapter that kept
            # the maps from it would leave them unsupervised). There the coordinate loss is weighted by the head's
            # coord_weight; elsewhere (2d labels behind an adapter) it is their only signal and keeps full weight.
            maps_learn_2d = isinstance(self.adapter, IdentityAdapter) or self.hparams.get("base_supervised") is False
            own = is3d | maps_learn_2d
            w3 = self.head.coord_weight
            w2 = w3 if maps_learn_2d else 1.0
        loss = (w3 * self.criterion(base[is3d], target[is3d], _rows(weight, is3d)) * n3
                + w2 * self.criterion(adapted[~is3d], target[~is3d], _rows(weight, ~is3d)) * (n - n3)) / n
        if maps is not None:
            map_loss = self.head.map_loss(maps[own], target[own], _rows(weight, own)) * float(own.sum()) / n
            self.log("train/map_loss", map_loss, batch_size=len(is3d))
            loss = loss + map_loss
        if self.__dict__.get("_teacher") is not None:
            taught = self._teacher_targets(batch)
            # the teacher's points are learnt where the labels are: by the maps for the samples they learn, by the
            # coordinate output for the rest
            if maps is None:
                kd = self.criterion(torch.where(is3d.view(-1, 1, 1), base, adapted), taught)
            else:
                kd = self.head.map_loss(maps[own], taught[own]) * float(own.sum()) / n if own.any() else loss * 0
                if not own.all():
                    kd = kd + self.criterion(adapted[~own], taught[~own]) * float((~own).sum()) / n
            self.log("train/distill_loss", kd, batch_size=len(is3d))
            loss = loss + self.__dict__["_teacher"][1] * kd
        self.log("train/loss", loss, prog_bar=True, batch_size=len(is3d))
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self.val_metrics.update(self.predict_pixels(batch), batch["landmarks"])

    def on_validation_epoch_end(self) -> None:
        m = self.val_metrics.compute()
        self.log("val/nme_io", m["nme_io"], prog_bar=True)
        self.log("val/nme_io_jaw", m["nme_io_jaw"])
        self.val_metrics.reset()

    # -- optimisation -----------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """Training-time speed options (not at load time: a checkpoint is used the same way either way), and the
        teacher on the student's device (it is no child module, so Lightning does not move it)."""
        if self.__dict__.get("_teacher") is not None:
            self.__dict__["_teacher"][0].to(self.device)
        if self.hparams.get("channels_last"):
            self.to(memory_format=torch.channels_last)
        if self.hparams.get("compile") and not getattr(self.backbone, "_compiled", False):
            # Compile the forward, not the module: parameter names (and so checkpoints) stay unchanged.
            self.backbone.forward = torch.compile(self.backbone.forward)
            self.backbone._compiled = True

    def set_teacher(self, teacher: nn.Module | None, weight: float = 1.0, flip: bool = False) -> None:
        """Distil from ``teacher`` (a trained :class:`LandmarkModule`, frozen) in the next ``fit``: each training crop's
        loss gains ``weight`` times the loss against the teacher's landmarks on the same crop (the heatmap head's
        map loss, or the coordinate loss); ``flip``: the teacher's flip average (crop and mirrored crop), which
        teaches a model tested in one pass what the second pass would add. ``None`` stops distilling. The teacher
        is held outside the module's children, so it is in no checkpoint and no optimiser group."""
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        self.__dict__["_teacher"] = (teacher, float(weight), bool(flip)) if teacher is not None else None

    @torch.no_grad()
    def _teacher_targets(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The teacher's landmarks on this batch's crops, normalised crop coordinates, each sample in its label's
        convention (resized to the teacher's input size where it differs: the crops frame the face alike)."""
        teacher, _, flip = self.__dict__["_teacher"]
        image = batch["image"]
        if teacher.input_size != self.input_size:
            size = (teacher.input_size, teacher.input_size)
            image = torch.nn.functional.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
        if not flip:
            base, adapted = teacher(image)
        else:  # one batch of crops and their mirrors, averaged in crop pixels by evaluate's own flip_average
            n = len(image)
            # the teacher's crop is this crop resized: its scale follows the input size
            matrices = batch.get("crop_matrix")
            shift = 0.0 if matrices is None else crop_shift(model_mirror_shift(teacher),
                                                            matrices.to(image.dtype)) * (teacher.input_size / self.input_size)
            shifts = (base_mirror_shift(teacher, shift), shift)
            base, adapted = (flip_average(teacher.to_pixels(out[:n]), teacher.to_pixels(out[n:]), teacher.input_size, s)
                             for out, s in zip(teacher(torch.cat([image, mirror_images(image)])), shifts, strict=True))
            base, adapted = teacher.to_normalised(base), teacher.to_normalised(adapted)
        return torch.where(batch["is_3d"].view(-1, 1, 1), base, adapted)

    def start_stage(self, name: str, lr: float, steps: int) -> None:
        """Set the stage the next ``fit`` trains (its lr and steps), recorded in the hyper-parameters."""
        self.hparams.stage = {"name": str(name), "lr": float(lr), "steps": int(steps)}

    def configure_optimizers(self) -> Any:
        """``hparams.optimizer`` and ``hparams.scheduler`` (``_target_`` configs) for the current stage."""
        from hydra.utils import instantiate

        stage = self.hparams.stage or {}
        if not stage:
            raise RuntimeError("LandmarkModule.start_stage(name, lr, steps) must be called before fitting")
        o = dict(self.hparams.optimizer or {"_target_": "torch.optim.AdamW"})
        groups = parameter_groups(self, float(o.pop("weight_decay", 0.0)), bool(self.hparams.decay_norm_and_bias))
        # _partial_: the config's arguments are bound, then the live objects are passed as plain Python values
        opt = instantiate(o, _partial_=True)(groups, lr=float(stage["lr"]))
        s = dict(self.hparams.scheduler or {"_target_": "landmark_lab.models.schedules.constant"})
        sched = instantiate(s, _partial_=True)(optimizer=opt, total_steps=int(stage["steps"]))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
