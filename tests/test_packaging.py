"""The package installs without its source tree: a built wheel carries the configs, and its commands run from an
empty folder, writing their run folders there (never into site-packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT, run_cli, tiny_overrides


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, offline, against this environment's hatchling."""
    pytest.importorskip("hatchling", reason="hatchling builds the wheel: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out),
          str(ROOT)], cwd=out)
    (built,) = out.glob("landmark_lab-*.whl")
    return built


def test_the_wheel_carries_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    assert configs, "no configs found in the checkout"
    missing = {c for c in configs if f"landmark_lab/{c}" not in names}
    assert not missing, f"configs left out of the wheel: {sorted(missing)}"
    assert not any(n.startswith(("tests/", "experiments/", "conf/")) for n in names)


@pytest.mark.slow  # 12-20 s; the fast tier keeps the wheel's contents check above
def test_an_installed_wheel_trains_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    # --system-site-packages: the dependencies come from this environment (offline); the venv's own
    # site-packages comes first on sys.path, so the wheel's landmark_lab shadows the editable checkout.
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
         cwd=tmp_path)
    work = tmp_path / "empty"
    work.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    env.pop("PYTHONPATH", None)
    env.pop("LANDMARK_LAB_CACHE", None)
    where = _run([str(python), "-c", "import landmark_lab.utils.compose as c; print(c.__file__); print(c.config_dir())"],
                 cwd=work, env=env).stdout.split()
    site = str(venv / "lib")
    assert where[0].startswith(site) and where[1].startswith(site), where
    overrides = [o for o in tiny_overrides(work / ".cache") if not o.startswith("paths.cache_dir")]
    _run([str(venv / "bin" / "landmark-lab"), "train", "+experiment=synth_pretrain_ft50", *overrides,
          "model.backbone.name=test_resnet", "data.real_budget=16", "strategy.stages.0.steps=3",
          "strategy.stages.1.steps=3", "schedule.val_every=3"], cwd=work, env=env)
    (metrics,) = (work / "logs" / "train" / "runs").glob("*/metrics.json")
    m = json.loads(metrics.read_text())
    assert [s["name"] for s in m["stages"]] == ["pretrain", "finetune"]
    assert (work / ".cache" / "procedural_v2").is_dir()  # the default cache: under the working folder
    assert not list(Path(site).rglob("logs")), "a run wrote into site-packages"


def test_a_user_config_folder_adds_an_experiment(tmp_path, cache_dir):
    """An experiment of the user's own, in a folder outside the package, found through Hydra's --config-dir."""
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "my_study.yaml").write_text("# @package _global_\ndefaults:\n  - override /strategy: pretrain_finetune\n"
                                        "data:\n  real_budget: 12\ntags: [mine]\n")
    run = tmp_path / "run"
    argv = ["--config-dir", str(tmp_path / "my_conf"), "+experiment=my_study", *tiny_overrides(cache_dir),
            "trainer.fast_dev_run=true", f"hydra.run.dir={run}"]
    assert run_cli("train", argv) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["strategy"] == "pretrain_finetune" and m["real_budget"] == 12 and m["config"]["tags"] == ["mine"]
