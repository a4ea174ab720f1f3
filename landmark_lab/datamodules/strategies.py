"""Mixing strategies: one LightningDataModule each, all built on :class:`LandmarkDataModule`."""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from landmark_lab.datamodules.base import LandmarkDataModule
from landmark_lab.datamodules.samplers import MixedBatchSampler
from landmark_lab.datamodules.sources import FaceDataset
from landmark_lab.datamodules.splits import Item
from landmark_lab.registry import Registry


class SynthOnlyDataModule(LandmarkDataModule):
    """Train on synthetic faces only; select the model on held-out synthetic faces (no real image is
    seen before the test)."""

    strategy = "synth_only"

    def uses(self, side: str) -> bool:
        return side == "synthetic"

    def training_set(self) -> tuple[list, list[Item]]:
        return self.syn_sources, self.syn_train_items

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.syn_sources, self.syn_val_items)


class RealOnlyDataModule(LandmarkDataModule):
    """Train on the real budget only; validate on the held-out real split."""

    strategy = "real_only"

    def uses(self, side: str) -> bool:
        return side == "real"

    def training_set(self) -> tuple[list, list[Item]]:
        return self.real_sources, self.real_train_items

    def val_dataloader(self) -> DataLoader:
        return self.real_val_dataloader()


class CombinedDataModule(LandmarkDataModule):
    """Synthetic and real together, ``synth_share`` (the study's alpha) of every batch synthetic."""

    strategy = "combined"

    def __init__(self, *args: Any, synth_share: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.synth_share = synth_share

    def training_set(self) -> tuple[list, list[Item]]:
        n_syn_sources = len(self.syn_sources)
        items = self.syn_train_items + [Item(it.source + n_syn_sources, it.index, it.flip) for it in self.real_train_items]
        return self.syn_sources + self.real_sources, items

    def train_dataloader(self) -> DataLoader:
        ds = FaceDataset(*self.training_set(), self.train_tf)
        sampler = MixedBatchSampler(len(self.syn_train_items), len(self.real_train_items), int(self.cfg["batch_size"]),
                                    self.synth_share, self.train_steps, self.seed, *self.rank_world())
        return self._loader(ds, True, batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self.real_val_dataloader()


class PretrainFinetuneDataModule(LandmarkDataModule):
    """Stage ``pretrain``: synthetic only (validated on synthetic); stage ``finetune``: the real budget
    (validated on real). The training script switches ``stage`` between its two ``fit`` calls."""

    strategy = "pretrain_finetune"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage = "pretrain"

    def training_set(self) -> tuple[list, list[Item]]:
        if self.stage == "pretrain":
            return self.syn_sources, self.syn_train_items
        return self.real_sources, self.real_train_items

    def val_dataloader(self) -> DataLoader:
        if self.stage == "pretrain":
            return self._eval_loader(self.syn_sources, self.syn_val_items)
        return self.real_val_dataloader()


class DataAdaptDataModule(CombinedDataModule):
    """The study's data adaptation. Stage ``label_map``: synthetic only (the model whose predictions the
    label map is fitted on); then the training script translates the synthetic labels to the real
    convention; stage ``train``: a fresh model on the adapted synthetic labels, mixed with the real budget
    at ``synth_share`` (1.0 = adapted synthetic only, the study's strategy 3; below 1 = its mixing)."""

    strategy = "data_adapt"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage = "label_map"

    def _synthetic_only(self) -> bool:
        return self.stage == "label_map" or self.synth_share >= 1.0

    def training_set(self) -> tuple[list, list[Item]]:
        return (self.syn_sources, self.syn_train_items) if self._synthetic_only() else super().training_set()

    def train_dataloader(self) -> DataLoader:
        return LandmarkDataModule.train_dataloader(self) if self._synthetic_only() else super().train_dataloader()

    def val_dataloader(self) -> DataLoader:
        if self.stage == "label_map":
            return self._eval_loader(self.syn_sources, self.syn_val_items)
        return self.real_val_dataloader()


class SelfTrainDataModule(LandmarkDataModule):
    """Self-training on unlabelled real photos (``data.unlabelled``). Each stage says what it trains on
    (``train_on`` in the strategy's YAML): ``synthetic`` (validated on synthetic), ``real`` (the labelled budget) or
    ``pseudo`` (the photos the previous stage's model pseudo-labelled, mixed with the labelled budget so that
    ``labelled_share`` of every batch is labelled; both validated on real)."""

    strategy = "self_train"

    def __init__(self, *args: Any, stages: dict[str, str] | None = None, labelled_share: float = 0.25,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stages = dict(stages or {})
        self.stage = next(iter(self.stages), "pseudo")
        self.labelled_share = float(labelled_share)
        self.pseudo_sources: list = []
        self.pseudo_items: list[Item] = []

    @property
    def train_on(self) -> str:
        return self.stages.get(self.stage, "pseudo")

    def uses(self, side: str) -> bool:
        return side == "real" or "synthetic" in self.stages.values()

    def set_pseudo_labels(self, source: Any, items: list[Item]) -> None:
        """The pseudo-labelled photos the next ``pseudo`` stage trains on (``items`` index ``source``)."""
        self.pseudo_sources, self.pseudo_items = [source], items

    def training_set(self) -> tuple[list, list[Item]]:
        if self.train_on == "synthetic":
            return self.syn_sources, self.syn_train_items
        if self.train_on == "real":
            return self.real_sources, self.real_train_items
        n = len(self.pseudo_sources)
        labelled = [Item(it.source + n, it.index, it.flip) for it in self.real_train_items]
        return self.pseudo_sources + self.real_sources, self.pseudo_items + labelled

    def train_dataloader(self) -> DataLoader:
        if self.train_on != "pseudo" or not self.real_train_items or not self.pseudo_items:
            return super().train_dataloader()
        ds = FaceDataset(*self.training_set(), self.train_tf)
        sampler = MixedBatchSampler(len(self.pseudo_items), len(self.real_train_items), int(self.cfg["batch_size"]),
                                    1.0 - self.labelled_share, self.train_steps, self.seed, *self.rank_world())
        return self._loader(ds, True, batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        if self.train_on == "synthetic":
            return self._eval_loader(self.syn_sources, self.syn_val_items)
        return self.real_val_dataloader()


STRATEGIES: Registry[type[LandmarkDataModule]] = Registry("strategy", "strategy.name")
for _cls in (SynthOnlyDataModule, RealOnlyDataModule, CombinedDataModule, PretrainFinetuneDataModule, DataAdaptDataModule,
             SelfTrainDataModule):
    STRATEGIES.register(_cls.strategy)(_cls)
