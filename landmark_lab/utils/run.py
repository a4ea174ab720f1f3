"""Run folders: refuse to overwrite finished results, keep their record, write results atomically."""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import Container, DictConfig, OmegaConf

from landmark_lab.errors import ConfigError
from landmark_lab.utils.compose import complete_stages
from landmark_lab.utils.io import write_text_atomic

RESULT_FILES = ("metrics.json",)
FRESH_RUN_DIR: Path | None = None
# Written instead of metrics.json when a run stops without a result (e.g. it diverged): the report lists
# it under "failed", and resume=true retries it.
FAILED_FILE = "failed.json"
# Held by the run that uses the folder, for its whole length: a second run started into it is refused.
LOCK_FILE = "run.lock"


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the block runs; another process holding it is a :class:`ConfigError`.

    Two runs writing one folder interleave their checkpoints (``best.ckpt`` beside ``best-v1.ckpt``) and their
    records (one run's seed in ``metrics.json``, the other's in ``.hydra/``): the second is refused instead.
    """
    from filelock import FileLock, Timeout

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(f"{run_dir} is in use by another run (it holds {path}). Wait for that run to end, or give "
                          "this one its own folder (hydra.run.dir=...).") from None
    try:
        yield
    finally:
        lock.release()
        path.unlink(missing_ok=True)  # the folder holds only the run's own files afterwards


def run_dir_of(cfg: DictConfig) -> Path:
    """The run folder: Hydra's output dir inside a Hydra app, else ``cfg.paths.output_dir``."""
    from hydra.core.hydra_config import HydraConfig

    out = None
    if HydraConfig.initialized():  # inside a Hydra app (not tests or notebooks composing a config)
        out = OmegaConf.select(HydraConfig.get(), "runtime.output_dir", default=None)
    return Path(out or cfg.paths.output_dir)


def is_rank_zero() -> bool:
    """False in the extra processes of a multi-process (DDP) run: they train, rank 0 reports."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0


# What a run's result depends on, compared before a finished run is reused or an unfinished one continued
# (resume=true) ...
RESULT_SECTIONS = ("seed", "data", "strategy", "model", "augment", "optimizer", "scheduler", "schedule", "eval",
                   "posthoc_adapter", "distill", "self_train")
# ... except where files live and how fast they load, which may differ between machines and checkouts ...
# (and strategy.report: how reports name a strategy's results, not how they are trained) ...
NOT_RESULT_KEYS = frozenset({"root", "cache_dir", "num_workers", "pin_memory", "persistent_workers",
                             "eval_batch_size", "workers", "report"})
# ... and the schedule's inputs to the strategy's stages (steps, lr, epochs, ...): they are compared as the stages
# resolved them, so a setting that a strategy does not use (schedule.finetune_lr for real-only) is no difference.
# The runner reads only these schedule keys itself:
SCHEDULE_READ = frozenset({"val_every"})
# Stage keys that runs recorded before them lack: the strategy's name implied what they say (which data a stage
# trains on), so a record without them is no difference.
ADDED_STAGE_KEYS = frozenset({"train_on"})
# Settings added later, with the value that does what runs recorded before them did: a record without the key is no
# difference while the current value is that one.
ADDED_KEYS: dict[str, Any] = {"self_train.point_drop": 0.0}


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key not in NOT_RESULT_KEYS and (prefix != "schedule." or key in SCHEDULE_READ):
                out.update(_leaves(value, f"{prefix}{key}."))
        return out
    if isinstance(node, list) and any(isinstance(v, (dict, list)) for v in node):  # e.g. strategy.stages.1.lr
        return {k: v for i, value in enumerate(node) for k, v in _leaves(value, f"{prefix}{i}.").items()}
    return {prefix[:-1]: node}


def _result_sections(cfg: DictConfig) -> dict[str, Any]:
    complete_stages(cfg)  # a .hydra/config.yaml record holds the stages as the strategy file wrote them
    out: dict[str, Any] = {}
    for key in RESULT_SECTIONS:
        if key in cfg:
            value = cfg[key]  # item access resolves a scalar's interpolation
            out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value
    return out


def config_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting in :data:`RESULT_SECTIONS` that differs between a run's recorded
    config and this one; empty when the recorded run is this configuration's."""
    # both as metrics.json records them: infinite floats as null, tuples as lists
    recorded, current = _jsonable(recorded), _jsonable(current)
    old = _leaves({k: recorded.get(k) for k in RESULT_SECTIONS if k in recorded})
    new = _leaves({k: current.get(k) for k in RESULT_SECTIONS if k in recorded})
    for key in set(new) - set(old):
        if key.startswith("strategy.stages.") and key.rsplit(".", 1)[1] in ADDED_STAGE_KEYS:
            del new[key]
        elif key in ADDED_KEYS and new[key] == ADDED_KEYS[key]:
            del new[key]
    unset = "(unset)"
    return [f"{key}: {old.get(key, unset)} -> {new.get(key, unset)}"
            for key in sorted(set(old) | set(new)) if old.get(key, unset) != new.get(key, unset)]


def check_finished_run_matches(run_dir: Path, recorded: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to reuse a finished run (resume=true) that was trained with other settings: skipping it would put
    its old figures under this configuration's name, in the run folder and in every report of the sweep."""
    _refuse_changes(run_dir, config_changes(recorded, current), "a finished run", "reuse it as this run",
                    "Its results are left as they are", "the old results")


def check_unfinished_run_matches(run_dir: Path, current: DictConfig) -> None:
    """Refuse to continue an interrupted run (resume=true) with other settings than it started with: its
    finished stages and last checkpoint would be mixed with this configuration's into one result.

    Compares with the config record the run started with (``.hydra/config.yaml``); a run without that record is
    not checked."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return
    try:
        loaded = OmegaConf.load(path)
        if not isinstance(loaded, DictConfig):
            raise TypeError(f"a {type(loaded).__name__}, not a config")
        # the record is not resolved: resolve both alike, so the stages carry their schedule's values
        recorded, now = _result_sections(loaded), _result_sections(current)
    except Exception as exc:  # a damaged record: say which file, and leave the run alone
        raise ConfigError(
            f"{path}: unreadable or not resolvable ({' '.join(str(exc).split())}), so resume=true cannot tell whether the "
            f"unfinished run in {run_dir} was started with these settings. Restore the file, or pass "
            "resume=false overwrite=true to move the run to a backup_<time>/ folder and start again."
        ) from None
    _refuse_changes(run_dir, config_changes(recorded, now), "checkpoints of an unfinished run",
                    "continue it as this run", "Its checkpoints are left as they are", "them")


def _refuse_changes(run_dir: Path, changes: list[str], held: str, action: str, kept: str, moved: str) -> None:
    if not changes:
        return
    shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
    raise ConfigError(
        f"{run_dir} already holds {held} trained with other settings ({shown}), so resume=true cannot "
        f"{action}. {kept}. Give this configuration its own folder (another sweep_name or hydra.run.dir), or "
        f"pass resume=false overwrite=true to move {moved} to a backup_<time>/ folder inside it and train again."
    )


def guard_run_dir(run_dir: Path, overwrite: bool, allow_partial: bool = False, cfg: DictConfig | None = None) -> None:
    """Fail if ``run_dir`` already has results (or, unless ``allow_partial``, checkpoints of an unfinished
    run), unless ``overwrite``: then move the old files aside first. An unfinished run that ``allow_partial``
    lets continue must have been started with ``cfg``'s settings (:func:`check_unfinished_run_matches`)."""
    existing = [run_dir / f for f in RESULT_FILES if (run_dir / f).exists()]
    ckpts = run_dir / "checkpoints"
    has_ckpts = ckpts.is_dir() and any(ckpts.iterdir())
    if has_ckpts and allow_partial and not existing and cfg is not None:
        check_unfinished_run_matches(run_dir, cfg)
    partial = has_ckpts and not allow_partial
    if not existing and not partial:
        return
    if partial and not existing and not overwrite:
        raise ConfigError(
            f"{run_dir} holds checkpoints of an unfinished run. Pass resume=true to continue it, overwrite=true "
            "to move them to a backup_<time>/ folder and start again, or choose another folder (hydra.run.dir=...)."
        )
    if not overwrite:
        raise ConfigError(
            f"{run_dir} already holds results ({', '.join(p.name for p in existing)}); refusing to overwrite them. "
            "Choose another folder (hydra.run.dir=...) or pass overwrite=true to move the old results to a "
            "backup_<time>/ folder inside it first."
        )
    # The job's open log file moves with the backup; close it so the new run logs into a new file here.
    reopen = _close_log_files(run_dir)
    move_to_backup(run_dir, list(run_dir.iterdir()))
    for handler in reopen:  # a closed FileHandler reopens its path on the next record
        handler.stream = None


def move_to_backup(folder: Path, items: list[Path]) -> Path:
    """Move ``items`` of ``folder`` (earlier ``backup_*`` folders stay where they are) into a new
    ``folder/backup_<time>/``, which is returned: what ``overwrite=true`` does before a command writes there."""
    backup = folder / time.strftime("backup_%Y%m%d-%H%M%S")
    backup.mkdir(parents=True, exist_ok=False)
    for p in items:
        if not p.name.startswith("backup_"):
            shutil.move(str(p), backup / p.name)
    return backup


def _close_log_files(run_dir: Path) -> list[logging.FileHandler]:
    out = []
    loggers = [logging.getLogger(), *[lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]]
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, logging.FileHandler) and Path(h.baseFilename).resolve().is_relative_to(run_dir.resolve()):
                h.acquire()
                try:
                    if h.stream is not None:
                        h.stream.close()
                        h.stream = None
                finally:
                    h.release()
                out.append(h)
    return out


def start_run_dir(run_dir: Path, cfg: DictConfig | None = None, overwrite: bool = False, resume: bool = False) -> None:
    """Check ``run_dir`` may take this run (:func:`guard_run_dir`), then record the config in ``.hydra/``.

    Nothing is written before the check passes, so a refused re-run leaves the old record intact.
    A failed run's ``failed.json`` is kept as ``failed_<time>.json`` when ``resume`` retries it.
    """
    global FRESH_RUN_DIR
    run_dir.mkdir(parents=True, exist_ok=True)
    guard_run_dir(run_dir, overwrite, allow_partial=resume, cfg=cfg)  # before the record below is rewritten
    # A folder that held nothing but this job's log is this run's own: a user error before any result may
    # remove it again (utils.cli.guarded), so a refused command leaves nothing behind.
    FRESH_RUN_DIR = run_dir if all(p.suffix == ".log" or p.name == LOCK_FILE for p in run_dir.iterdir()) else None
    failed = run_dir / FAILED_FILE
    if failed.is_file():
        failed.rename(run_dir / time.strftime("failed_%Y%m%d-%H%M%S.json"))
    save_config_record(run_dir, cfg)


def save_config_record(run_dir: Path, task_cfg: DictConfig | None = None) -> None:
    """``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml``, as Hydra writes them, after the folder
    check (``hydra.output_subdir`` is null so that Hydra itself writes nothing before it)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    out = run_dir / ".hydra"
    if task_cfg is not None:
        write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(task_cfg))
    write_text_atomic(out / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})))
    write_text_atomic(out / "overrides.yaml", OmegaConf.to_yaml(hc.overrides.task))


def record_failure(run_dir: Path, reason: str, stage: str | None = None, diverged: bool = True, **info: Any) -> Path:
    """Write ``failed.json`` (never ``metrics.json``) for a run that ended without a result.

    A ``diverged`` stage's checkpoints move to ``diverged/<stage>_<time>/`` (kept for inspection): a retry
    (``resume=true``) then trains that stage afresh instead of continuing from weights on the way to NaN. An
    interrupted stage keeps them, so ``resume=true`` continues from its last checkpoint.
    """
    moved = None
    stage_dir = run_dir / "checkpoints" / stage if stage else None
    if diverged and stage_dir is not None and stage_dir.is_dir():
        moved = run_dir / "diverged" / time.strftime(f"{stage}_%Y%m%d-%H%M%S")
        moved.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stage_dir), moved)
    path = run_dir / FAILED_FILE
    write_json(path, {"failed": True, "reason": reason, "stage": stage, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "checkpoints_moved_to": str(moved.relative_to(run_dir)) if moved else None, **info})
    return path


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN/Infinity; a missing value is what it is
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return _jsonable(x.item())
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves a half-written file."""
    write_text_atomic(path, json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
