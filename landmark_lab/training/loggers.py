"""Experiment loggers from config: CSV always (unless off), wandb offline by default."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class KeepingCSVLogger(CSVLogger):
    """:class:`CSVLogger` that appends to the curve already in its folder (a resumed run keeps the training curve
    from before the interruption).

    Lightning's writer deletes an existing ``metrics.csv`` when it is built; the file is moved aside while it is
    built (a crash then leaves ``metrics.csv.kept``, never nothing), moved back, and its header handed to the
    writer's public ``metrics_keys`` so that rows with other columns append instead of failing.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            path = os.path.join(self.log_dir, ExperimentWriter.NAME_METRICS_FILE)
            kept = f"{path}.kept"
            if self._fs.isfile(path):
                self._fs.mv(path, kept)
            with warnings.catch_warnings():  # "... will be deleted": not this one, it was moved aside
                warnings.filterwarnings("ignore", message="Experiment logs directory")
                writer = ExperimentWriter(log_dir=self.log_dir)
            if self._fs.isfile(kept):
                self._fs.mv(kept, path)
                with self._fs.open(path, "r", newline="") as fh:
                    writer.metrics_keys = [k for k in fh.readline().strip().split(",") if k]
            self._experiment = writer
        return self._experiment


def build_loggers(cfg: Any, run_dir: Path, name: str, tags: list[str], config: dict) -> list[Logger]:
    """Loggers for one run; wandb files land in ``run_dir/wandb`` (``wandb sync`` them later if offline)."""
    out: list[Logger] = []
    if cfg.get("csv", True):
        out.append(KeepingCSVLogger(save_dir=str(run_dir), name="csv", version=""))
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


def log_test_results(loggers: list[Logger], result: Any) -> None:
    """Test metrics to every logger; for wandb also the CED curve and test faces with predictions."""
    scalars = {f"test/{k}": v for k, v in result.metrics.items()}
    scalars.update({f"test_without_adapter/{k}": v for k, v in (result.without_adapter or {}).items() if k != "count"})
    for lg in loggers:
        lg.log_metrics(scalars)
        if not isinstance(lg, WandbLogger):
            continue
        import wandb

        run = lg.experiment
        run.summary.update(scalars)
        table = wandb.Table(data=[[x, y] for x, y in zip(result.ced["nme_io"], result.ced["fraction"], strict=True)],
                            columns=["nme_io", "fraction"])
        run.log({"test/ced": wandb.plot.line(table, "nme_io", "fraction", title="CED (inter-ocular NME)")})
        if result.images:
            from landmark_lab.evaluation.figures import draw_landmarks

            faces = [wandb.Image(draw_landmarks(img, p, t), caption="green: truth, red: prediction")
                     for img, p, t in zip(result.images[:8], result.preds[:8], result.targets[:8], strict=True)]
            run.log({"test/predictions": faces})
