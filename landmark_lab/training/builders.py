"""Objects from a composed config: the data module of a strategy, the model, its mean-shape start."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from landmark_lab.datamodules.sources import FaceDataset, mirror_shift
from landmark_lab.datamodules.strategies import StageData, StrategyDataModule
from landmark_lab.errors import ConfigError
from landmark_lab.models.module import LandmarkModule
from landmark_lab.utils.compose import complete_stages


def strategy_stages(cfg: DictConfig) -> list[DictConfig]:
    """The strategy's stages (completed by ``stage_defaults``), a ``train_on: pseudo`` stage repeated
    ``self_train.rounds`` times (``student``, ``student2``, ...: each round's teacher is the model the round before
    left)."""
    complete_stages(cfg)
    rounds = int((cfg.get("self_train") or {}).get("rounds", 1))
    if rounds < 1:
        raise ConfigError(f"self_train.rounds={rounds} must be at least 1.")
    out = []
    for st in cfg.strategy.stages:
        out.append(st)
        if str(st.train_on) == "pseudo":
            out += [OmegaConf.merge(st, {"name": f"{st.name}{r}"}) for r in range(2, rounds + 1)]
    return out


def stage_data(cfg: DictConfig, stage: DictConfig) -> StageData:
    """What ``stage`` trains and validates on; a ``mixed`` stage's synthetic share defaults to ``data.synth_share``,
    a ``pseudo`` stage's labelled share to ``self_train.labelled_share``."""
    return StageData(
        name=str(stage.name), train_on=str(stage.train_on), validate_on=stage.get("validate_on"),
        synth_share=float(stage.get("synth_share", cfg.data.get("synth_share", 0.5))),
        labelled_share=float(stage.get("labelled_share", (cfg.get("self_train") or {}).get("labelled_share", 0.25))))


def build_datamodule(cfg: DictConfig, progress: bool = True) -> StrategyDataModule:
    """The data module of the strategy's stages over ``cfg.data``, with ``cfg.augment``."""
    unlabelled = str((cfg.data.get("unlabelled") or {}).get("kind", "none"))
    stages = strategy_stages(cfg)
    pseudo = any(str(st.train_on) == "pseudo" for st in stages)
    if pseudo and unlabelled == "none":
        raise ConfigError(f"strategy={cfg.strategy.name} trains on unlabelled photos: add data/unlabelled=folder "
                          "data.unlabelled.root=DIR (your photos) or data/unlabelled=pool_rest (the real pool "
                          "beyond the budget, its labels unread).")
    if unlabelled != "none" and not pseudo:
        raise ConfigError(f"data.unlabelled is set ({unlabelled}) but strategy={cfg.strategy.name} trains on no "
                          "unlabelled photo; use strategy=self_train (or self_train_real, self_train_zero), or drop "
                          "data/unlabelled.")
    # A stage that fits a post-hoc label adapter needs the real training labels even if it trains on none.
    calibrate = any(bool(st.get("fit_adapter", False)) for st in stages)
    return StrategyDataModule(data=cfg.data, augment=cfg.augment, seed=int(cfg.seed), progress=progress,
                              calibrate_on_real=calibrate, stages=[stage_data(cfg, st) for st in stages],
                              strategy=str(cfg.strategy.name))


def build_model(cfg: DictConfig) -> LandmarkModule:
    """The LightningModule of ``cfg.model``, sized for ``cfg.data.transform.crop``."""
    m = OmegaConf.to_container(cfg.model, resolve=True)
    crop = OmegaConf.to_container(cfg.data.transform.crop, resolve=True)
    optim = {k: OmegaConf.to_container(cfg[k], resolve=True) if cfg.get(k) is not None else None
             for k in ("optimizer", "scheduler")}
    shift = mirror_shift(OmegaConf.to_container(cfg.data.real, resolve=True), "real")
    return LandmarkModule(**m, **optim, input_size=int(crop["size"]), crop=crop, mirror_shift=shift)


def mean_shape(dataset: FaceDataset, limit: int = 256) -> torch.Tensor:
    """Mean landmarks (crop pixels) over up to ``limit`` evenly spread items of ``dataset``."""
    idx = torch.linspace(0, len(dataset) - 1, min(limit, len(dataset))).round().long().unique()
    return torch.stack([dataset[int(i)]["landmarks"] for i in idx]).mean(0)
