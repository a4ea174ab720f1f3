"""``python -m landmark_lab.train [+experiment=NAME] [GROUP=OPTION] [KEY=VALUE]``: train and test a model.

Runs every stage of the chosen strategy (one for most, pre-train + fine-tune for ``pretrain_finetune``), keeps the
best checkpoint of each stage by validation NME, tests on the real test split and writes ``metrics.json`` in the run
folder. ``--help`` lists the config groups.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from landmark_lab.cli.app import run_app
from landmark_lab.cli.checks import check_train_config
from landmark_lab.datamodules.sources import FaceDataset
from landmark_lab.errors import DataError, Interrupted, TrainingDiverged
from landmark_lab.evaluation.core import NME_CONVENTION, evaluate, mean_shape_baseline, summary_line
from landmark_lab.evaluation.figures import evaluation_figures
from landmark_lab.training.builders import build_datamodule, build_model, mean_shape, strategy_stages
from landmark_lab.training.loggers import build_loggers, finish_loggers, log_test_results
from landmark_lab.training.self_training import check_self_train_config
from landmark_lab.training.signals import sigterm_interrupts
from landmark_lab.training.stages import (
    distill_teacher,
    eval_device,
    fit_posthoc,
    load_given_weights,
    load_teacher,
    partial_steps,
    run_stage,
    split_mismatch,
    use_pseudo_labels,
)
from landmark_lab.utils.compose import complete_stages
from landmark_lab.utils.run import (
    check_finished_run_matches,
    is_rank_zero,
    record_failure,
    run_dir_of,
    run_folder_lock,
    start_run_dir,
    write_json,
)

log = logging.getLogger("landmark_lab.train")


def train(cfg: DictConfig) -> float | None:
    """Train and test one configuration; returns the final stage's best validation NME (for sweepers).

    The run holds its folder's lock throughout (a second run into the same folder is refused), and SIGTERM ends it
    as :class:`Interrupted` with ``failed.json`` written (reason ``interrupted``), never as a success.
    """
    t_start = time.perf_counter()
    complete_stages(cfg)  # the stages with conf/train.yaml's stage_defaults, as checked, run and recorded
    # Every name, number, path and device is checked before anything is read, built or written.
    check_train_config(cfg)
    check_self_train_config(cfg)
    run_dir = run_dir_of(cfg)
    # DDP ranks re-launched by Lightning share rank 0's folder (and its lock).
    with sigterm_interrupts(), (run_folder_lock(run_dir) if is_rank_zero() else nullcontext()):
        return _train(cfg, run_dir, t_start)


def _train(cfg: DictConfig, run_dir: Path, t_start: float) -> float | None:
    resume = bool(cfg.get("resume", False))
    if resume and (run_dir / "metrics.json").is_file():
        try:
            previous = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{run_dir / 'metrics.json'}: unreadable ({exc}); move it away to re-run this run.") from None
        if isinstance(previous.get("config"), dict):  # metrics.json of older versions may lack it
            check_finished_run_matches(run_dir, previous["config"], OmegaConf.to_container(cfg, resolve=True))
        print(f"[landmark_lab] {run_dir} already finished (resume=true): skipping; results in metrics.json")
        return previous.get("val_nme_io")
    resumed_from = partial_steps(run_dir) if resume else {}
    if is_rank_zero():  # DDP ranks re-launched by Lightning share rank 0's run folder
        start_run_dir(run_dir, cfg, overwrite=bool(cfg.get("overwrite", False)), resume=resume)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("threads"):  # packed runs (hydra/launcher=pack) share the cores: one thread each
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if eval_device(cfg) == "cuda":  # TF32 matmuls on Ampere and later: fp32 speed without a visible loss
        torch.set_float32_matmul_precision("high")
    progress = bool(cfg.trainer.get("enable_progress_bar", True))
    test_flip = bool(cfg.get("eval", {}).get("flip", False))  # test-time flip averaging in the final test

    dm = build_datamodule(cfg, progress=progress)
    t0 = time.perf_counter()
    dm.prepare_data()
    dm.setup("fit")
    data_seconds = time.perf_counter() - t0

    model = build_model(cfg)
    shape = mean_shape(FaceDataset(*dm.training_set(), dm.eval_tf))
    model.init_mean_shape(shape)
    if cfg.get("init_from"):  # a trained model's weights replace the fresh ones (and the mean-shape start)
        log.info("the model starts from %s", load_given_weights(model, "init_from", str(cfg.init_from)))
    for key in ("init_from", "self_train.teacher"):  # a start trained on this run's validation photos
        start = OmegaConf.select(cfg, key, default=None)
        problem = split_mismatch(cfg, key, str(start)) if start else None
        if problem:
            log.warning(problem)

    budget = cfg.data.get("real_budget", "all")
    name = f"{cfg.strategy.name}-n{budget}-seed{cfg.seed}"
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tags = [str(t) for t in cfg.get("tags", [])] + [f"strategy:{cfg.strategy.name}", f"budget:{budget}",
                                                    f"seed:{cfg.seed}"]
    loggers = build_loggers(cfg.logger, run_dir, name, tags, resolved)
    stages = []
    plan = strategy_stages(cfg)
    teacher = (cfg.get("self_train") or {}).get("teacher")
    first_pseudo = next((i for i, st in enumerate(plan) if st.get("train_on") == "pseudo"), None)
    try:
        for i, stage in enumerate(plan):
            if teacher and first_pseudo is not None and i < first_pseudo:
                continue  # the given checkpoint is the first teacher: the stages that would train one are skipped
            if i > 0:
                # Each later stage draws its own random stream: its data order and augmentation are then the same
                # whether the stage before it trained here or came from a cache (the pre-training's, a resume's).
                L.seed_everything(int(cfg.seed) + i, workers=True, verbose=False)
            dm.stage = stage.name
            pseudo_info = None
            if stage.get("train_on") == "pseudo":
                if teacher and i == first_pseudo:
                    load_teacher(model, str(teacher))
                pseudo_info = use_pseudo_labels(cfg, model, dm, run_dir / "checkpoints" / stage.name, progress)
            if stage.get("fresh_model"):  # data adaptation: a new model learns the translated labels
                model = build_model(cfg)
                model.init_mean_shape(mean_shape(FaceDataset(*dm.training_set(), dm.eval_tf)))
            # The base (pre-adapter) output means something only once 3d-labelled faces have supervised it;
            # recorded in the checkpoints, so evaluate leaves the "without adapter" figure out otherwise.
            model.hparams.base_supervised = bool(model.hparams.get("base_supervised")) or any(
                getattr(src, "convention", "2d") == "3d" for src in dm.training_set()[0])
            taught = None
            if stage.get("distill"):  # (``teacher`` above is self-training's first teacher, a path)
                distiller, taught = distill_teacher(cfg)
                model.set_teacher(distiller, float(cfg.distill.weight), bool(taught["flip"]))
            try:
                stages.append(run_stage(cfg, model, dm, i, stage, run_dir, loggers))
            finally:
                model.set_teacher(None)
            if taught is not None:
                stages[-1]["distill"] = taught
            if pseudo_info is not None:
                stages[-1]["pseudo_labels"] = {**pseudo_info, **({"teacher": str(teacher)} if teacher and i == first_pseudo
                                                                 else {})}
            if stage.get("fit_adapter"):
                stages[-1]["posthoc_adapter"] = fit_posthoc(cfg, model, dm, run_dir / "checkpoints" / stage.name)
            if stage.get("adapt_synthetic_labels"):
                dm.adapt_synthetic_labels(model.adapter, model.input_size)

        if not is_rank_zero():
            return stages[-1]["best_val_nme_io"] if stages else None
        if cfg.trainer.get("fast_dev_run"):
            result = evaluate(model, [next(iter(dm.test_dataloader()))], progress=False, device=eval_device(cfg))
        else:
            result = evaluate(model, dm.test_dataloader(), progress=progress, device=eval_device(cfg),
                              flip=test_flip)
        if not math.isfinite(result.metrics["nme_io"]):
            raise TrainingDiverged(f"the trained model's real-test NME is {result.metrics['nme_io']} (non-finite "
                                   "predictions): the run has no result. Lower the learning rate and re-run.")
        # The baseline predicts the mean of the real training images when the strategy has any (so it is
        # the same floor for every strategy at a budget), else the mean of what it trained on.
        real_items = getattr(dm, "real_train_items", None) if dm.uses("real") else None
        floor = mean_shape(FaceDataset(dm.real_sources, real_items, dm.eval_tf)) if real_items else shape
        baseline = mean_shape_baseline(floor, dm.test_dataloader())
        log_test_results(loggers, result)
    except TrainingDiverged as exc:
        if is_rank_zero():
            path = record_failure(run_dir, str(exc), stage=exc.stage, finished_stages=stages, config=resolved)
            log.error("%s (recorded in %s)", exc, path)
        raise
    except Interrupted as exc:
        if is_rank_zero():
            path = record_failure(run_dir, "interrupted", stage=exc.stage, diverged=False, signal=exc.signum,
                                  last_step=exc.step, finished_stages=stages, config=resolved)
            log.error("%s (recorded in %s)", exc, path)
        raise
    finally:
        finish_loggers(loggers)

    val = stages[-1]["best_val_nme_io"] if stages else None
    payload = {
        # A strategy config may report itself under its own label (synth_only_adapted trains like synth_only).
        "strategy": cfg.strategy.get("label") or cfg.strategy.name,
        "real_budget": budget,
        "seed": int(cfg.seed),
        "sweep": cfg.get("sweep_name"),
        "data": dm.summary(),
        "test": result.as_json(),
        "eval": {"flip": test_flip},
        "baseline_mean_shape": baseline.metrics,
        "val_nme_io": val,
        "stages": stages,
        "timing": {"data_seconds": round(data_seconds, 1), "total_seconds": round(time.perf_counter() - t_start, 1)},
        # A resumed stage continues from its last checkpoint: weights, optimiser and step are restored, but the
        # data order and augmentation draws restart, so the result is close to, not bit-identical with, an
        # uninterrupted run. Recorded so nobody mistakes one for the other.
        "resumed": resumed_from or None,
        "nme_convention": NME_CONVENTION,
        "config": resolved,
    }
    write_json(run_dir / "metrics.json", payload)
    evaluation_figures(result, run_dir, f"{name}: real test", baseline)
    print(
        f"\n[landmark_lab] {name} | real test ({int(result.metrics['count'])} faces): "
        f"{summary_line(result.metrics, result.without_adapter)} "
        f"| mean-shape baseline NME io {100 * baseline.metrics['nme_io']:.2f}% | "
        f"{payload['timing']['total_seconds']:.0f}s\n[landmark_lab] results: {run_dir / 'metrics.json'}"
    )
    return val


def main() -> None:
    run_app("train", train)


if __name__ == "__main__":
    main()
