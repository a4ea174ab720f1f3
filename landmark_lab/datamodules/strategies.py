"""The data of a mixing strategy: one data module for every strategy, reading what the current stage trains and
validates on (each stage of ``conf/strategy/<name>.yaml`` says it; see :class:`StageData`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader

from landmark_lab.datamodules.base import LandmarkDataModule
from landmark_lab.datamodules.samplers import MixedBatchSampler
from landmark_lab.datamodules.sources import FaceDataset
from landmark_lab.datamodules.splits import Item

# What a stage can train on: synthetic faces, the labelled real budget, both in every batch (``synth_share`` of it
# synthetic: the study's alpha), or photos the previous stage's model pseudo-labelled (mixed with the labelled budget).
TRAIN_ON = ("synthetic", "real", "mixed", "pseudo")
VALIDATE_ON = ("synthetic", "real")


@dataclass(frozen=True)
class StageData:
    """What one stage trains and validates on.

    ``synth_share`` is the synthetic share of each batch of a ``mixed`` stage (at 1 it trains on synthetic faces
    alone); ``labelled_share`` the labelled share of each batch of a ``pseudo`` stage. ``validate_on`` defaults to
    synthetic for a synthetic stage (no real image is seen before the test) and to real otherwise.
    """

    name: str
    train_on: str = "real"
    validate_on: str | None = None
    synth_share: float = 0.5
    labelled_share: float = 0.25

    def __post_init__(self) -> None:
        if self.train_on not in TRAIN_ON:
            raise ValueError(f"stage {self.name}: train_on={self.train_on!r} is not one of {', '.join(TRAIN_ON)}")
        if self.validate_on is None:
            object.__setattr__(self, "validate_on", "synthetic" if self.train_on == "synthetic" else "real")
        if self.validate_on not in VALIDATE_ON:
            raise ValueError(f"stage {self.name}: validate_on={self.validate_on!r} is not one of "
                             f"{', '.join(VALIDATE_ON)}")

    @property
    def synthetic_only(self) -> bool:
        """Whether its training set is synthetic faces alone (a ``mixed`` stage at a synthetic share of 1 is)."""
        return self.train_on == "synthetic" or (self.train_on == "mixed" and self.synth_share >= 1.0)


class StrategyDataModule(LandmarkDataModule):
    """Every strategy's data module: ``stages`` in the strategy's order; the training command sets ``stage`` (a
    stage's name) before each stage's fit, and the loaders follow what that stage trains and validates on."""

    def __init__(self, *args: Any, stages: Sequence[StageData], strategy: str = "custom", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not stages:
            raise ValueError("a strategy needs at least one stage")
        self.stages = {s.name: s for s in stages}
        self.strategy = strategy
        self.stage = stages[0].name
        self.pseudo_sources: list = []
        self.pseudo_items: list[Item] = []

    @property
    def current(self) -> StageData:
        """The stage being trained now."""
        return self.stages[self.stage]

    def uses(self, side: str) -> bool:
        """Whether any stage trains or validates on ``side`` ("synthetic"/"real"; pseudo-labelled stages train
        beside the labelled real budget)."""
        sides = {"mixed": {"synthetic", "real"}, "pseudo": {"real"}}
        return any(side in sides.get(s.train_on, {s.train_on}) or side == s.validate_on for s in self.stages.values())

    def set_pseudo_labels(self, source: Any, items: list[Item]) -> None:
        """The pseudo-labelled photos the next ``pseudo`` stage trains on (``items`` index ``source``)."""
        self.pseudo_sources, self.pseudo_items = [source], items

    def training_set(self) -> tuple[list, list[Item]]:
        st = self.current
        if st.synthetic_only:
            return self.syn_sources, self.syn_train_items
        if st.train_on == "real":
            return self.real_sources, self.real_train_items
        first, first_items = ((self.syn_sources, self.syn_train_items) if st.train_on == "mixed"
                              else (self.pseudo_sources, self.pseudo_items))
        n = len(first)
        return first + self.real_sources, first_items + [Item(it.source + n, it.index, it.flip)
                                                         for it in self.real_train_items]

    def train_dataloader(self) -> DataLoader:
        st = self.current
        if st.train_on == "mixed" and not st.synthetic_only:
            n_first, share = len(self.syn_train_items), st.synth_share
        elif st.train_on == "pseudo" and self.real_train_items and self.pseudo_items:
            n_first, share = len(self.pseudo_items), 1.0 - st.labelled_share
        else:  # one set (a pseudo stage without labelled images, or without pseudo-labels, trains on what it has)
            return super().train_dataloader()
        ds = FaceDataset(*self.training_set(), self.train_tf)
        sampler = MixedBatchSampler(n_first, len(self.real_train_items), int(self.cfg["batch_size"]), share,
                                    self.train_steps, self.seed, *self.rank_world())
        return self._loader(ds, True, batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        if self.current.validate_on == "synthetic":
            return self._eval_loader(self.syn_sources, self.syn_val_items)
        return self.real_val_dataloader()
