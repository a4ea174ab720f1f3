"""Run folders: refuse to overwrite finished results, write results atomically."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from landmark_lab.errors import ConfigError

RESULT_FILES = ("metrics.json",)


def guard_run_dir(run_dir: Path, overwrite: bool, allow_partial: bool = False) -> None:
    """Fail if ``run_dir`` already has results (or, unless ``allow_partial``, checkpoints of an unfinished
    run), unless ``overwrite``: then move the old files aside first."""
    existing = [run_dir / f for f in RESULT_FILES if (run_dir / f).exists()]
    ckpts = run_dir / "checkpoints"
    partial = ckpts.is_dir() and any(ckpts.iterdir()) and not allow_partial
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
    backup = run_dir / time.strftime("backup_%Y%m%d-%H%M%S")
    backup.mkdir(parents=True, exist_ok=False)
    for p in run_dir.iterdir():
        if p != backup and not p.name.startswith("backup_") and p.name != ".hydra":
            shutil.move(str(p), backup / p.name)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2) + "\n")
    os.replace(tmp, path)
