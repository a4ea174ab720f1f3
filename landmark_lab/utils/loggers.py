"""Experiment loggers from config: CSV always (unless off), wandb offline by default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger


def build_loggers(cfg: Any, run_dir: Path, name: str, tags: list[str], config: dict) -> list[Logger]:
    """Loggers for one run; wandb files land in ``run_dir/wandb`` (``wandb sync`` them later if offline)."""
    out: list[Logger] = []
    if cfg.get("csv", True):
        out.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
    w = cfg.get("wandb") or {}
    if w.get("enabled", False):
        mode = w.get("mode", "offline")
        if mode == "offline":
            os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        out.append(WandbLogger(project=w.get("project", "landmark_lab"), entity=w.get("entity"),
                               group=w.get("group"), name=name, tags=tags, save_dir=str(run_dir),
                               mode=mode, config=config))
    return out


def finish_loggers(loggers: list[Logger]) -> None:
    """Close wandb runs so the next job of a multirun starts its own run instead of merging into this one."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.experiment.finish()
