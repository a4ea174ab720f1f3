"""Objects from a composed config: the data module of a strategy, the model, its mean-shape start."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from landmark_lab.datamodules.base import LandmarkDataModule
from landmark_lab.datamodules.sources import FaceDataset
from landmark_lab.datamodules.strategies import STRATEGIES, CombinedDataModule, SelfTrainDataModule
from landmark_lab.errors import ConfigError
from landmark_lab.models.module import LandmarkModule


def strategy_stages(cfg: DictConfig) -> list[DictConfig]:
    """The strategy's stages, a ``train_on: pseudo`` stage repeated ``self_train.rounds`` times (``student``,
    ``student2``, ...: each round's teacher is the model the round before left)."""
    rounds = int((cfg.get("self_train") or {}).get("rounds", 1))
    if rounds < 1:
        raise ConfigError(f"self_train.rounds={rounds} must be at least 1.")
    out = []
    for st in cfg.strategy.stages:
        out.append(st)
        if str(st.get("train_on", "real")) == "pseudo":
            out += [OmegaConf.merge(st, {"name": f"{st.name}{r}"}) for r in range(2, rounds + 1)]
    return out


def build_datamodule(cfg: DictConfig, progress: bool = True) -> LandmarkDataModule:
    """The strategy's data module over ``cfg.data``, with ``cfg.augment``."""
    cls = STRATEGIES.get(cfg.strategy.name)
    kwargs: dict[str, Any] = {"data": cfg.data, "augment": cfg.augment, "seed": int(cfg.seed),
                              "progress": progress}
    if issubclass(cls, CombinedDataModule):
        kwargs["synth_share"] = float(cfg.data.synth_share)
    unlabelled = str((cfg.data.get("unlabelled") or {}).get("kind", "none"))
    stages = strategy_stages(cfg)
    pseudo = any(str(st.get("train_on", "real")) == "pseudo" for st in stages)
    if issubclass(cls, SelfTrainDataModule):
        if pseudo and unlabelled == "none":
            raise ConfigError(f"strategy={cfg.strategy.name} trains on unlabelled photos: add data/unlabelled=folder "
                              "data.unlabelled.root=DIR (your photos) or data/unlabelled=pool_rest (the real pool "
                              "beyond the budget, its labels unread).")
        kwargs["stages"] = {str(st.name): str(st.get("train_on", "real")) for st in stages}
        kwargs["labelled_share"] = float(cfg.self_train.labelled_share)
    if unlabelled != "none" and not pseudo:
        raise ConfigError(f"data.unlabelled is set ({unlabelled}) but strategy={cfg.strategy.name} trains on no "
                          "unlabelled photo; use strategy=self_train (or self_train_real, self_train_zero), or drop "
                          "data/unlabelled.")
    # A stage that fits a post-hoc label adapter needs the real training labels even if it trains on none.
    kwargs["calibrate_on_real"] = any(bool(st.get("fit_adapter", False)) for st in cfg.strategy.stages)
    return cls(**kwargs)


def build_model(cfg: DictConfig) -> LandmarkModule:
    """The LightningModule of ``cfg.model``, sized for ``cfg.data.transform.crop``."""
    m = OmegaConf.to_container(cfg.model, resolve=True)
    crop = OmegaConf.to_container(cfg.data.transform.crop, resolve=True)
    optim = {k: OmegaConf.to_container(cfg[k], resolve=True) if cfg.get(k) is not None else None
             for k in ("optimizer", "scheduler")}
    return LandmarkModule(**m, **optim, input_size=int(crop["size"]), crop=crop)


def mean_shape(dataset: FaceDataset, limit: int = 256) -> torch.Tensor:
    """Mean landmarks (crop pixels) over up to ``limit`` evenly spread items of ``dataset``."""
    idx = torch.linspace(0, len(dataset) - 1, min(limit, len(dataset))).round().long().unique()
    return torch.stack([dataset[int(i)]["landmarks"] for i in idx]).mean(0)
