"""What every command-line entry point shares: user errors become one clear line and exit status 2."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from omegaconf.errors import OmegaConfBaseException

from landmark_lab.errors import LandmarkLabError

T = TypeVar("T")
USER_ERROR = 2
_task_started = False


def hydra_entry(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function so that every user error exits with status 2.

    Hydra reports a bad override or an unknown key itself (a clear message) and exits with 1; when that
    happens before the task started, it is a user error like any other, so the status becomes 2. A crash
    inside the task keeps its own status.
    """
    global _task_started
    _task_started = False
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
    except LandmarkLabError as exc:
        message = str(exc)
    except OmegaConfBaseException as exc:  # an unset ??? value, an interpolation that does not resolve ...
        key = getattr(exc, "full_key", None)
        text = str(exc).splitlines()[0]
        message = f"config{f' key {key}' if key else ''}: {text}"
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        message = disk_full_message(exc)
    _remove_empty_run_dir()
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USER_ERROR)


def disk_full_message(exc: OSError) -> str:
    """What to do when the disk (or the user's quota) filled up while a command wrote ``exc.filename``."""
    where = f" while writing {exc.filename}" if exc.filename else ""
    return (f"no space left on the device{where} ({exc.strerror}). Free some space (old run folders under "
            "paths.log_dir, the crop and pre-training caches under paths.cache_dir) or point those keys at a "
            "larger disk, then rerun the same command with resume=true: finished stages and saved checkpoints "
            "are kept, and the run continues from its last checkpoint.")


def _remove_empty_run_dir() -> None:
    """Hydra makes the run folder before the command starts; a command refused before any result must not
    leave it behind: an empty folder is removed, and so is one this run created that holds only its own
    config record (``.hydra/``) and log."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    from landmark_lab.utils import run

    fresh = run.FRESH_RUN_DIR
    run.FRESH_RUN_DIR = None
    if fresh is not None and fresh.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in fresh.iterdir()):
        shutil.rmtree(fresh, ignore_errors=True)
        return
    if not HydraConfig.initialized():
        return
    out = HydraConfig.get().runtime.get("output_dir")
    if out and Path(out).is_dir() and not any(Path(out).iterdir()):
        Path(out).rmdir()
