"""The stages of a training run: how many steps, which callbacks, fitting one stage, reusing a finished one (a resume,
the pre-training cache), and what runs between stages (a post-hoc label adapter, pseudo-labels for self-training).

The training command (:mod:`landmark_lab.cli.train`) runs them in the strategy's order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from landmark_lab.adaptation.posthoc import fit_posthoc_adapter
from landmark_lab.data.unlabelled import PseudoLabelled
from landmark_lab.datamodules.splits import expand, groups_of
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.models.checkpoint import apply_state, load_weights, read_checkpoint, save_model
from landmark_lab.training.callbacks import StageAware, StepRecorder
from landmark_lab.training.pretrain_cache import PretrainCache, cache_key, key_material
from landmark_lab.training.self_training import pseudo_label
from landmark_lab.training.signals import SigtermStop, fit_interrupted
from landmark_lab.transforms.flip import model_mirror_shift
from landmark_lab.utils.checks import checkpoint_file
from landmark_lab.utils.io import inside, relative_to_run
from landmark_lab.utils.run import is_rank_zero, run_dir_of, write_json

log = logging.getLogger("landmark_lab.train")

def eval_device(cfg: DictConfig) -> str:
    """The device the run trained on, for its test: a GPU run is tested on the GPU, a CPU run on the CPU."""
    accel = str(cfg.trainer.get("accelerator", "auto"))
    return "cuda" if accel in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"


def stage_steps(stage: DictConfig, n_train: int, batch_size: int) -> int:
    """Optimiser steps of a stage: ``steps`` if given, else ``epochs`` passes over its training set,
    clamped to ``[min_steps, max_steps]`` (so 50 images are not under-trained and 6000 not over-budget)."""
    if stage.get("steps") not in (None, "auto"):
        return int(stage.steps)
    epochs = float(stage.get("epochs", 20))
    raw = math.ceil(epochs * n_train / batch_size)
    return int(min(max(raw, int(stage.get("min_steps", 100))), int(stage.get("max_steps", 1000))))


def stage_callbacks(cfg: DictConfig, stage: str, stage_dir: Path, with_logger: bool) -> list[Any]:
    """The stage's callbacks from ``cfg.callbacks`` (each a ``_target_`` config; null entries skipped), bound to
    the stage by type: a ModelCheckpoint writes into ``stage_dir``, a :class:`StageAware` one is told its stage."""
    from hydra.utils import instantiate

    out: list[Any] = []
    for name, spec in (cfg.get("callbacks") or {}).items():
        if spec is None:
            continue
        try:
            callback = instantiate(spec)
        except Exception as exc:
            target = spec.get("_target_") if isinstance(spec, DictConfig) else None
            raise ConfigError(f"callbacks.{name}: cannot build {target or 'it'} ({type(exc).__name__}: {exc}).") from None
        if isinstance(callback, EarlyStopping) and callback.patience <= 0:
            continue  # patience 0: never stop early (the best checkpoint is kept anyway)
        if isinstance(callback, LearningRateMonitor) and not with_logger:
            continue  # it needs a logger to write to
        if isinstance(callback, ModelCheckpoint):
            callback.dirpath = os.path.realpath(stage_dir)  # as its constructor stores a local dirpath
        if isinstance(callback, StageAware):
            callback.bind_stage(stage, stage_dir)
        out.append(callback)
    return out


def validation_interval(steps: int, val_every: int) -> int:
    """Steps between validations: about ``val_every``, spread evenly so the last validation falls on the stage's
    last step or within a few steps of it (Lightning validates only at multiples of the interval: 400 steps with
    ``val_every`` 300 validated once, at step 300, and the last 100 steps never reached the kept checkpoint)."""
    steps, val_every = max(1, int(steps)), max(1, int(val_every))
    return steps // math.ceil(steps / val_every)


def _fit_stage(cfg: DictConfig, model: Any, dm: Any, stage: DictConfig, steps: int, run_dir: Path, loggers: list,
               resume_from: Path | None) -> dict:
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    tcfg.pop("use_distributed_sampler", None)  # always off: the samplers shard themselves (see below)
    val_every = int(cfg.schedule.val_every)
    dm.train_steps = steps
    model.start_stage(stage.name, float(stage.lr), steps)
    stage_dir = run_dir / "checkpoints" / stage.name
    callbacks = [*stage_callbacks(cfg, stage.name, stage_dir, bool(loggers)), StepRecorder(str(stage_dir / "steps.txt")),
                 SigtermStop()]
    ckpt = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    if ckpt is None:
        raise ConfigError("callbacks.model_checkpoint is required: each stage keeps its best checkpoint.")
    # The data modules' samplers shard themselves across DDP ranks (each keeps its synthetic share), so
    # Lightning must not wrap them; validation and test sets are evaluated whole on every rank.
    trainer = L.Trainer(max_steps=steps, max_epochs=1, val_check_interval=validation_interval(steps, val_every),
                        num_sanity_val_steps=0, callbacks=callbacks, logger=loggers or False,
                        default_root_dir=str(run_dir), use_distributed_sampler=False, **tcfg)
    log.info("stage %s: %d steps at lr %g on %s%s", stage.name, steps, stage.lr, dm.summary(),
             f" (resuming from {resume_from})" if resume_from else "")
    t0 = time.perf_counter()
    # weights_only: a last.ckpt is read back without unpickling anything but tensors and plain containers.
    fit_interrupted(lambda: trainer.fit(model, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None,
                                        weights_only=True), stage.name, lambda: int(trainer.global_step))
    seconds = time.perf_counter() - t0
    best = ckpt.best_model_path
    if best:
        load_weights(model, best)
    score = ckpt.best_model_score
    done_steps = int(trainer.global_step)
    recorded = stage_dir / "steps.txt"
    if done_steps == 0 and recorded.is_file():  # ddp_spawn: the main process did not step; rank 0 wrote it
        done_steps = int(recorded.read_text().strip() or 0)
    return {
        "name": stage.name,
        "steps": done_steps,
        "seconds": round(seconds, 1),
        "best_val_nme_io": float(score) if score is not None else None,
        "best_checkpoint": relative_to_run(best, run_dir) if best else None,
    }


def _reusable_stage(cfg: DictConfig, model: Any, done: Path, run_dir: Path) -> dict | None:
    """A finished stage's record (``done.json``) with its weights loaded into ``model``; None when the record cannot
    be trusted (no checkpoint named, the checkpoint missing or not this model's): the record is moved aside and the
    stage retrained, said in the log. A record would otherwise put an untrained model's test and a stale or forged
    validation NME into metrics.json."""
    try:
        info = json.loads(done.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{done}: unreadable stage record ({exc}); delete it to retrain this stage.") from None
    if not isinstance(info, dict):
        raise DataError(f"{done}: not a stage record; delete it to retrain this stage.")
    # Paths read back from the record must stay where this run and the cache keep their weights: a record pointing
    # elsewhere is refused outright (someone edited it), not retrained.
    weights = None
    if info.get("best_checkpoint"):
        weights = inside(run_dir, info["best_checkpoint"], str(done))
    elif info.get("cache_file"):
        weights = inside(cfg.pretrain_cache.dir, Path(info["cache_file"]).resolve(), str(done))
    problem = (f"{done}: names no checkpoint" if weights is None
               else f"{done}: its checkpoint {weights} is missing" if not weights.is_file() else None)
    if problem is None:
        ckpt = read_checkpoint(weights, "stage checkpoint")  # a file that would run code is refused, not retrained
        try:
            apply_state(model, ckpt.get("state_dict"), weights, "stage checkpoint")
        except DataError as exc:
            problem = str(exc)
    if problem is not None:
        aside = done.with_name(time.strftime("done_invalid_%Y%m%d-%H%M%S.json"))
        os.replace(done, aside)
        log.warning("%s; the record moved to %s and the stage is trained again", problem, aside.name)
        return None
    return info


def run_stage(cfg: DictConfig, model: Any, dm: Any, index: int, stage: DictConfig, run_dir: Path,
               loggers: list) -> dict:
    """One stage, reusing what exists: a finished stage of this run (resume), the pre-training cache
    (first stage of a synthetic-first strategy), a partial stage's last checkpoint, else training."""
    stage_dir = run_dir / "checkpoints" / stage.name
    done = stage_dir / "done.json"
    if done.is_file():
        info = _reusable_stage(cfg, model, done, run_dir)
        if info is not None:
            log.info("stage %s: already finished in this run folder, reusing it", stage.name)
            return {**info, "reused": True}
    n_train = len(dm.training_set()[1])
    steps = stage_steps(stage, n_train, int(cfg.data.batch_size))
    # A first stage on synthetic faces alone depends on no real image (nor on the budget): the same training for
    # every strategy and budget that starts with it, so it can come from the cache (unless the stage says cache: false).
    cacheable = (index == 0 and stage.train_on == "synthetic" and bool(stage.get("cache", True))
                 and not stage.get("distill") and not cfg.get("init_from"))  # keyed without a teacher or a start
    use_cache = cacheable and cfg.pretrain_cache.enabled and not cfg.trainer.get("fast_dev_run")
    last = stage_dir / "last.ckpt"
    resume_from = last if last.is_file() else None
    if not use_cache:
        info = _fit_stage(cfg, model, dm, stage, steps, run_dir, loggers, resume_from)
        return _finish_stage(cfg, done, info)
    cache = PretrainCache(cfg.pretrain_cache.dir)
    stage_key = OmegaConf.create({"steps": steps, "lr": stage.lr})
    key = cache_key(cfg, stage_key)
    if not is_rank_zero():
        # DDP ranks re-launched by Lightning (trainer=ddp) make rank 0's decision without its lock: rank 0
        # holds the lock while it fits, so a missing entry means rank 0 is fitting now and this rank must
        # join that fit; an entry that exists was loaded by rank 0 (or saved before it launched this rank).
        # Only rank 0 saves. Under ddp_spawn only the main process (rank 0) runs this function at all.
        entry = cache.load(key, model, key_material(cfg, stage_key))
        info = ({**entry["info"], "name": stage.name, "cache_hit": True, "best_checkpoint": None} if entry is not None
                else _fit_stage(cfg, model, dm, stage, steps, run_dir, loggers, resume_from))
    else:
        with cache.lock(key):
            entry = cache.load(key, model, key_material(cfg, stage_key))
            if entry is not None:
                info = {**entry["info"], "name": stage.name, "cache_hit": True, "cache_file": str(cache.path(key).resolve()),
                        "best_checkpoint": None}
                log.info("stage %s: loaded from the pre-training cache (%s)", stage.name, cache.path(key))
            else:
                info = _fit_stage(cfg, model, dm, stage, steps, run_dir, loggers, resume_from)
                path = cache.save(key, model.state_dict(), info, key_material(cfg, stage_key))
                info = {**info, "cache_hit": False, "cache_file": str(path.resolve())}
    return _finish_stage(cfg, done, info)


def _finish_stage(cfg: DictConfig, done: Path, info: dict) -> dict:
    """Record a finished stage (``done.json``, rank 0) so a resume reuses it."""
    done.parent.mkdir(parents=True, exist_ok=True)
    if not cfg.trainer.get("fast_dev_run") and is_rank_zero():
        write_json(done, info)
    return info


def partial_steps(run_dir: Path) -> dict[str, int]:
    """Stages of an interrupted run that a resume continues mid-way: stage name -> the step it resumes from."""
    out = {}
    for last in sorted((run_dir / "checkpoints").glob("*/last.ckpt")):
        if not (last.parent / "done.json").is_file():
            out[last.parent.name] = int(read_checkpoint(last).get("global_step", 0))
    return out


def load_given_weights(model: Any, key: str, path: str) -> Path:
    """The weights of the checkpoint the user gave as ``key`` (one this project wrote, read pickle-free) into
    ``model``; a missing file or a network of another shape is refused naming the file."""
    weights = checkpoint_file(key, path)
    load_weights(model, weights, f"{key} checkpoint")
    return weights


def _split_of(config: dict) -> dict:
    """What decides which real photos a run holds out for validation: the real data (not its mirror shift), the
    hold-out size, flip doubling and the split seed (``data.split_seed``, else the run's seed)."""
    data = config.get("data") or {}
    real = {k: v for k, v in (data.get("real") or {}).items() if k != "mirror_shift"}
    seed = data.get("split_seed")
    return {"data.real": real, "data.val_size": data.get("val_size"), "data.flip_double": data.get("flip_double"),
            "split seed": config.get("seed") if seed is None else seed}


def split_mismatch(cfg: DictConfig, key: str, path: str) -> str | None:
    """Why the run that wrote checkpoint ``path`` (given as ``key``) may have trained on this run's validation
    photos, or None: both use the same real data but draw the hold-out otherwise (another seed, size or doubling),
    so this run's validation figure and best checkpoint would be optimistic. Read from the ``metrics.json`` of the
    checkpoint's run folder; a checkpoint without one (or another project's) is not judged."""
    record = None
    for folder in list(Path(path).expanduser().parents)[:3]:  # RUN/checkpoints/<stage>/best.ckpt
        if (folder / "metrics.json").is_file():
            try:
                record = json.loads((folder / "metrics.json").read_text()).get("config")
            except (OSError, ValueError, AttributeError):
                return None
            break
    if not isinstance(record, dict):
        return None
    theirs, mine = _split_of(record), _split_of(OmegaConf.to_container(cfg, resolve=True))
    if theirs["data.real"] != mine["data.real"]:
        return None  # other photos altogether: nothing to compare
    differ = [k for k in mine if theirs[k] != mine[k]]
    if not differ:
        return None
    shown = ", ".join(f"{k} {theirs[k]!r} there, {mine[k]!r} here" for k in differ)
    fix = f" (e.g. data.split_seed={theirs['split seed']})" if differ == ["split seed"] else ""
    return (f"{key}={path} was trained on the same real photos held out otherwise ({shown}): some of this run's "
            f"validation photos were its training photos, so val_nme_io and the best checkpoint chosen by it are "
            f"optimistic. Hold out the same photos{fix}; the test split is not affected.")


def load_teacher(model: Any, path: str) -> None:
    """The weights of ``self_train.teacher`` into ``model`` (the first teacher, and the student's start)."""
    log.info("self-training: the first teacher is %s", load_given_weights(model, "self_train.teacher", path))


def distill_teacher(cfg: DictConfig) -> tuple[Any, dict]:
    """The frozen teacher of a ``distill: true`` stage (``distill.teacher``, read pickle-free) and its record for
    metrics.json (``flip``: whether it teaches its flip average). Refused where it frames faces otherwise than this
    run (its crops are this run's, resized)."""
    from landmark_lab.models.checkpoint import load_landmark_model

    path = Path(str(cfg.distill.teacher)).expanduser()
    teacher = load_landmark_model(path)
    mine = OmegaConf.to_container(cfg.data.transform.crop, resolve=True)
    theirs = dict(teacher.hparams.get("crop") or {})
    # the framing, not the input size nor the training-time jitter (the teacher sees the jittered crops themselves)
    differ = sorted(k for k in mine if k not in ("size", "shift_jitter", "zoom_jitter") and k in theirs
                    and theirs[k] != mine[k])
    if differ:
        shown = ", ".join(f"{k}: {theirs[k]!r} there, {mine[k]!r} here" for k in differ)
        raise ConfigError(f"distill.teacher={path}: its crops frame faces otherwise than this run's ({shown}); the "
                          "teacher sees this run's crops resized, so set data.transform.crop to match it.")
    flip = bool(cfg.distill.get("flip", False))
    log.info("distillation: %s (%s, %d px%s) teaches this stage", path, teacher.hparams["backbone"]["name"],
             teacher.input_size, ", flip-averaged" if flip else "")
    return teacher, {"teacher": str(path), "weight": float(cfg.distill.weight), "flip": flip,
                     "teacher_model": f"{teacher.hparams['backbone']['name']} {teacher.input_size}px"}


def use_pseudo_labels(cfg: DictConfig, model: Any, dm: Any, stage_dir: Path, progress: bool) -> dict:
    """The current model (the teacher) pseudo-labels the unlabelled photos; the kept ones become the data module's
    pseudo-labelled set. Their predictions go to ``pseudo_labels/<stage>.npz`` in the run folder (for ``analyze
    pseudo``); returns the record for metrics.json."""
    spec = OmegaConf.to_container(cfg.data.unlabelled, resolve=True)
    st = OmegaConf.to_container(cfg.self_train, resolve=True)
    labels, info = pseudo_label(model, dm.unlabelled, spec, st, eval_device(cfg), progress)
    stage = stage_dir.name
    kept = info.pop("kept_mask")
    index = np.nonzero(kept)[0]
    drop = float(st.get("point_drop") or 0.0)
    weights = labels.point_weights(kept, drop)[index] if drop else None
    if weights is not None:
        info["points_dropped"] = int((weights == 0).sum())
    source = PseudoLabelled([labels.images[k] for k in index], labels.landmarks[index], [labels.ids[k] for k in index],
                            point_weights=weights)
    source.mirror_shift = model_mirror_shift(model)  # the teacher's labels: mirrored as its own
    dm.set_pseudo_labels(source, expand(groups_of([len(source)]), bool(cfg.data.get("flip_double", False))))
    if is_rank_zero() and not cfg.trainer.get("fast_dev_run"):
        path = labels.save(run_dir_of(cfg) / "pseudo_labels" / f"{stage}.npz", kept,
                           {**info, "stage": stage, "unlabelled": spec.get("kind")})
        info["file"] = relative_to_run(path, run_dir_of(cfg))
    return info


def fit_posthoc(cfg: DictConfig, model: Any, dm: Any, stage_dir: Path) -> dict:
    """Fit the post-hoc label adapter on the real budget (``cfg.posthoc_adapter``) and save the model with it."""
    p = cfg.posthoc_adapter
    model.to(eval_device(cfg))  # its predictions on the device that trained it; the small fit is on the CPU
    info = fit_posthoc_adapter(model, dm.real_train_eval_dataloader(), dm.real_val_dataloader(), name=str(p.name),
                               steps=int(p.steps), lr=float(p.lr), weight_decay=float(p.weight_decay), seed=int(cfg.seed))
    if is_rank_zero() and not cfg.trainer.get("fast_dev_run"):
        path = save_model(model, stage_dir / "adapted.ckpt")
        info["checkpoint"] = relative_to_run(path, run_dir_of(cfg))
    return info
