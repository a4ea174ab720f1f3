"""Shared fixtures: config composition (as the CLI does it), tiny procedural data, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from landmark_lab.utils.compose import compose_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED = ROOT.parent / "shared" / "data"
W300 = SHARED / "300w"

# Peak disk use of the suite (pyproject.toml removes a passed test's tmp_path when it ends).
NEEDS_GIB = 3
_FREE_AT_START = pytest.StashKey[tuple[Path, float]]()

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def _free_gib(config: pytest.Config) -> tuple[Path, float]:
    """Where the tests' temporary folders go, and how many GiB are free there."""
    import shutil
    import tempfile

    base = Path(config.option.basetemp or tempfile.gettempdir())
    while not base.exists():
        base = base.parent
    return base, shutil.disk_usage(base).free / 2**30


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FREE_AT_START] = _free_gib(config)  # measured once: the header and the summary read it


def pytest_report_header(config: pytest.Config) -> str:
    base, free = config.stash[_FREE_AT_START]
    return f"landmark_lab: {free:.1f} GiB free under {base} (the suite needs about {NEEDS_GIB} GiB at its peak)"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Name a full disk as the likely cause of failures (shown under -q too): the tests write checkpoints."""
    base, free = config.stash[_FREE_AT_START]
    if free < NEEDS_GIB:
        terminalreporter.write_line(f"landmark_lab: only {free:.1f} GiB were free under {base} when the tests "
                                    f"started; the training tests need about {NEEDS_GIB} GiB (checkpoints of "
                                    "~130 MB each): failures with 'No space left on device' come from that.",
                                    yellow=True)


def load_script(path: Path) -> Any:
    """A script of experiments/ (not part of the package), loaded from its file as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_overrides(cache: Path) -> list[str]:
    """Overrides that make any experiment run in seconds on tiny procedural data."""
    return [
        f"paths.cache_dir={cache}",
        "++data.synthetic.n=48",
        "++data.real.n_train=70",
        "++data.real.n_test=16",
        "++data.synthetic.workers=1",
        "++data.real.workers=1",
        "data.val_size=8",
        "data.synthetic_val_size=8",
        "data.batch_size=8",
        "data.eval_batch_size=16",
        "data.num_workers=0",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        "logger=none",
        # timm's 0.4 M-parameter test network (stride-4 feature_info, so every head works) instead of resnet18's
        # 11 M: a training test checks the pipeline, not the backbone. Tests whose figures belong to resnet18 set it.
        "model.backbone.name=test_resnet",
    ]


def train_command(run: Path, cache: Path, *overrides: str) -> list[str]:
    """``python -m landmark_lab.train +experiment=real_only OVERRIDES`` on tiny data into ``run``: a subprocess's argv."""
    import sys

    return [sys.executable, "-m", "landmark_lab.train", "+experiment=real_only", *overrides, f"hydra.run.dir={run}",
            *tiny_overrides(cache)]


@pytest.fixture(autouse=True)
def _log_files_end_with_their_test():
    """A command run in-process logs to a file in its run folder (Hydra's job logging); a passed test's folder is
    removed when the test ends (pyproject.toml), so the handlers writing there are closed and dropped with it."""
    yield
    import logging

    loggers = [logging.getLogger(), *(x for x in logging.root.manager.loggerDict.values()
                                      if isinstance(x, logging.Logger))]
    for logger in loggers:
        for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(handler)
            handler.close()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("procedural_cache")


@pytest.fixture
def make_cfg(tmp_path: Path, cache_dir: Path):
    """Compose a config like ``python -m landmark_lab.<name> OVERRIDES`` would, with its run folder in tmp."""

    def _make(overrides: list[str] | None = None, name: str = "train", tiny: bool = True,
              run_dir: Path | None = None) -> DictConfig:
        ov = [*(tiny_overrides(cache_dir) if tiny else []), *(overrides or [])]
        if name in ("evaluate", "adapt"):  # no trainer or model there (the checkpoint brings its model)
            ov = [o for o in ov if not o.startswith(("trainer.", "model."))]
        return compose_config(name, ov, run_dir=run_dir or tmp_path / "run", root_dir=ROOT)

    yield _make
    GlobalHydra.instance().clear()


def run_cli(command: str, argv: list[str]) -> int:
    """Run ``python -m landmark_lab.<command> ARGV`` in this process; its exit status (0 when it returns)."""
    import importlib
    import sys

    module = importlib.import_module(f"landmark_lab.cli.{command}")
    saved = sys.argv
    sys.argv = [f"landmark_lab.{command}", *argv]
    try:
        module.main()
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()


def needs_shared(*folders: str, also: bool = True, why: str = ""):
    """Mark a test that reads ``../shared/data/<folder>`` for each of ``folders``: marker ``data``, and a clean skip
    naming what is missing when a folder is absent (or ``also`` is false: another need, said in ``why``)."""
    missing = [f for f in folders if not (SHARED / f).is_dir()]
    skip = pytest.mark.skipif(bool(missing) or not also,
                              reason=f"needs ../shared/data/{', '.join(missing or folders)}{why}")

    def mark(fn):
        return pytest.mark.data(skip(fn))

    return mark


needs_300w = needs_shared("300w")
