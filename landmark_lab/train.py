"""Train a landmark model: ``python -m landmark_lab.train [+experiment=NAME] [overrides]``.

Runs every stage of the chosen strategy (one for most, pre-train + fine-tune for
``pretrain_finetune``), keeps the best checkpoint of each stage by validation NME, tests on the
real test split and writes ``metrics.json`` in the run folder. ``--help`` lists the config groups.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from landmark_lab.builders import build_datamodule, build_model, mean_shape
from landmark_lab.datamodules.sources import FaceDataset
from landmark_lab.errors import LandmarkLabError
from landmark_lab.evaluation import evaluate, mean_shape_baseline
from landmark_lab.reports.plots import ced_plot, prediction_grid
from landmark_lab.utils.loggers import build_loggers, finish_loggers
from landmark_lab.utils.run import guard_run_dir, write_json

log = logging.getLogger("landmark_lab.train")

_TRAINER_EXTRA = ("val_every", "early_stop_patience")


def run_dir_of(cfg: DictConfig) -> Path:
    """The run folder: Hydra's output dir inside a Hydra app, else ``cfg.paths.output_dir``."""
    out = None
    if HydraConfig.initialized():  # inside a Hydra app (not tests or notebooks composing a config)
        out = OmegaConf.select(HydraConfig.get(), "runtime.output_dir", default=None)
    return Path(out or cfg.paths.output_dir)


def _fit_stage(cfg: DictConfig, model: Any, dm: Any, stage: DictConfig, run_dir: Path, loggers: list) -> dict:
    steps = int(stage.steps)
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    val_every = int(tcfg.pop("val_every", 150))
    patience = int(tcfg.pop("early_stop_patience", 0))
    dm.train_steps = steps
    model.lr = float(stage.lr)
    model.total_steps = steps
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints" / stage.name, filename="best", monitor="val/nme_io",
                           mode="min", save_last=True, auto_insert_metric_name=False)
    callbacks: list[Any] = [ckpt]
    if patience > 0:
        callbacks.append(EarlyStopping(monitor="val/nme_io", mode="min", patience=patience))
    trainer = L.Trainer(max_steps=steps, max_epochs=1, val_check_interval=min(val_every, steps),
                        num_sanity_val_steps=0, callbacks=callbacks, logger=loggers or False,
                        default_root_dir=str(run_dir), **tcfg)
    log.info("stage %s: %d steps at lr %g on %s", stage.name, steps, stage.lr, dm.summary())
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - t0
    best = ckpt.best_model_path
    if best:
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        model.load_state_dict(state)
    score = ckpt.best_model_score
    return {
        "name": stage.name,
        "steps": int(trainer.global_step),
        "seconds": round(seconds, 1),
        "best_val_nme_io": float(score) if score is not None else None,
        "best_checkpoint": str(Path(best).relative_to(run_dir)) if best else None,
    }


def train(cfg: DictConfig) -> float | None:
    """Train and test one configuration; returns the final stage's best validation NME (for sweepers)."""
    t_start = time.perf_counter()
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    guard_run_dir(run_dir, bool(cfg.get("overwrite", False)))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    progress = bool(cfg.trainer.get("enable_progress_bar", True))

    dm = build_datamodule(cfg, progress=progress)
    t0 = time.perf_counter()
    dm.prepare_data()
    dm.setup("fit")
    data_seconds = time.perf_counter() - t0

    model = build_model(cfg)
    first = cfg.strategy.stages[0].name
    if hasattr(dm, "stage"):
        dm.stage = first
    shape = mean_shape(FaceDataset(*dm.training_set(), dm.eval_tf))
    model.init_mean_shape(shape)

    budget = cfg.data.get("real_budget", "all")
    name = f"{cfg.strategy.name}-n{budget}-seed{cfg.seed}"
    resolved = OmegaConf.to_container(cfg, resolve=True)
    loggers = build_loggers(cfg.logger, run_dir, name, [str(t) for t in cfg.get("tags", [])], resolved)
    stages = []
    try:
        for stage in cfg.strategy.stages:
            if hasattr(dm, "stage"):
                dm.stage = stage.name
            stages.append(_fit_stage(cfg, model, dm, stage, run_dir, loggers))

        if cfg.trainer.get("fast_dev_run"):
            test_loader = dm.test_dataloader()
            result = evaluate(model, [next(iter(test_loader))], progress=False)
        else:
            result = evaluate(model, dm.test_dataloader(), progress=progress)
        baseline = mean_shape_baseline(shape, dm.test_dataloader())
        for lg in loggers:
            lg.log_metrics({f"test/{k}": v for k, v in result.metrics.items()})
    finally:
        finish_loggers(loggers)

    val = stages[-1]["best_val_nme_io"] if stages else None
    payload = {
        "strategy": cfg.strategy.name,
        "real_budget": budget,
        "seed": int(cfg.seed),
        "data": dm.summary(),
        "test": result.as_json(),
        "baseline_mean_shape": baseline.metrics,
        "val_nme_io": val,
        "stages": stages,
        "timing": {"data_seconds": round(data_seconds, 1), "total_seconds": round(time.perf_counter() - t_start, 1)},
        "nme_convention": "inter_ocular = outer eye corners (points 36, 45); inter_pupil = eye centres; box = sqrt(w*h)",
        "config": resolved,
    }
    write_json(run_dir / "metrics.json", payload)
    if result.images:
        prediction_grid(result.images, result.preds, result.targets, run_dir / "test_predictions.png")
    ced_plot({"model": (result.ced["nme_io"], result.ced["fraction"]),
              "mean shape": (baseline.ced["nme_io"], baseline.ced["fraction"])}, run_dir / "ced.png",
             title=f"{name}: real test")
    m, b = result.metrics, baseline.metrics
    print(
        f"\n[landmark_lab] {name} | real test ({int(m['count'])} faces): NME io {100 * m['nme_io']:.2f}% "
        f"(jaw {100 * m['nme_io_jaw']:.2f}%, inner {100 * m['nme_io_inner']:.2f}%), ip {100 * m['nme_ip']:.2f}%, "
        f"FR@0.1 {100 * m['fr_io@0.1']:.1f}%, AUC@0.1 {m['auc_io@0.1']:.3f} | mean-shape baseline NME io "
        f"{100 * b['nme_io']:.2f}% | {payload['timing']['total_seconds']:.0f}s\n"
        f"[landmark_lab] results: {run_dir / 'metrics.json'}"
    )
    return val


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; user errors are printed as one clear line and exit with status 2."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    try:
        return train(cfg)
    except LandmarkLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
