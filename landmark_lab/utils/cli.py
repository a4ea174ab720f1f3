"""What every command-line entry point shares: user errors become one clear line and exit status 2."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from landmark_lab.errors import Interrupted, LandmarkLabError

T = TypeVar("T")
USER_ERROR = 2
_task_started = False
# The run folder, if it existed before Hydra made it (NoteUserRunDir), with the names it held: a refused
# command removes only what it wrote there, never the user's folder.
_user_run_dirs: dict[Path, set[str]] = {}


def hydra_entry(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function so that every user error exits with status 2.

    Hydra reports a bad override or an unknown key itself (a clear message) and exits with 1; when that
    happens before the task started, it is a user error like any other, so the status becomes 2. A crash
    inside the task keeps its own status.
    """
    global _task_started
    _task_started = False
    _user_run_dirs.clear()
    try:
        main()
    except SystemExit as exc:
        if exc.code == 1 and not _task_started:
            sys.exit(USER_ERROR)
        raise


def guarded(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; a :class:`LandmarkLabError` (bad data or config), a config-resolution error or a full disk
    is printed as ``error: ...`` and exits with status 2. A run folder the refused command left empty is removed."""
    global _task_started
    _task_started = True
    try:
        return fn(*args)
    except Interrupted as exc:  # not a user error: the conventional 128 + signal; the folder keeps its record
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(128 + exc.signum)
    except LandmarkLabError as exc:
        message = str(exc)
    except OmegaConfBaseException as exc:  # an unset ??? value, an interpolation that does not resolve ...
        key = getattr(exc, "full_key", None)
        text = str(exc).splitlines()[0]
        message = f"config{f' key {key}' if key else ''}: {text}"
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            message = disk_full_message(exc)
        elif exc.errno in PATH_ERRORS and exc.filename:
            message = path_message(exc)
        else:
            raise
    _remove_empty_run_dir()
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USER_ERROR)


# A path the command was given (or derived from paths.*, out, out_dir, LANDMARK_LAB_CACHE) that it cannot use.
PATH_ERRORS = {errno.EACCES: "permission denied", errno.EPERM: "not permitted", errno.EROFS: "read-only file system",
               errno.ENOTDIR: "a file stands where a folder is needed", errno.EEXIST: "a file stands where a folder is needed",
               errno.EISDIR: "a folder stands where a file is needed"}


def path_message(exc: OSError) -> str:
    """One line for a path a command cannot write or read: which path, what stands in the way, what to do."""
    where = Path(exc.filename)
    blocker = next((p for p in (where, *where.parents) if p.exists() and not p.is_dir()), None)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and blocker is not None:
        what = f"{blocker} is a file, not a folder"
    else:
        what = PATH_ERRORS[exc.errno]
    return (f"cannot use {where}: {what}. Point the setting that names it (out, out_dir, hydra.run.dir, "
            "paths.cache_dir / LANDMARK_LAB_CACHE, paths.log_dir) at a folder you can write, or fix its permissions.")


def disk_full_message(exc: OSError) -> str:
    """What to do when the disk (or the user's quota) filled up while a command wrote ``exc.filename``."""
    where = f" while writing {exc.filename}" if exc.filename else ""
    return (f"no space left on the device{where} ({exc.strerror}). Free some space (old run folders under "
            "paths.log_dir, the crop and pre-training caches under paths.cache_dir) or point those keys at a "
            "larger disk, then rerun the same command with resume=true: finished stages and saved checkpoints "
            "are kept, and the run continues from its last checkpoint.")


class NoteUserRunDir(Callback):
    """Hydra callback (``hydra.callbacks`` in ``conf/hydra/default.yaml``): before Hydra makes the run folder,
    note whether it exists already (the user made it, or named an existing folder) and what it holds, so that a
    refused command removes only what it wrote there."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:  # (hydra_entry cleared the note of any earlier command in this process)
            path = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        except Exception:  # an interpolation that does not resolve: Hydra reports it itself
            return
        if path.is_dir():
            _user_run_dirs[path.resolve()] = {p.name for p in path.iterdir()}


def _remove_empty_run_dir() -> None:
    """Hydra makes the run folder before the command starts; a command refused before any result must not
    leave it behind: an empty folder is removed, and so is one this run created that holds only its own
    config record (``.hydra/``) and log. A folder the user made before the command keeps existing: only the
    record and log this run wrote in it are removed."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    from landmark_lab.utils import run

    fresh = run.FRESH_RUN_DIR
    run.FRESH_RUN_DIR = None
    if fresh is not None and fresh.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in fresh.iterdir()):
        held = _user_run_dirs.get(fresh.resolve())
        if held is None:
            shutil.rmtree(fresh, ignore_errors=True)
            return
        for p in fresh.iterdir():
            if p.name in held:
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        return
    if not HydraConfig.initialized():
        return
    out = HydraConfig.get().runtime.get("output_dir")
    if out and Path(out).is_dir() and not any(Path(out).iterdir()) and Path(out).resolve() not in _user_run_dirs:
        Path(out).rmdir()
