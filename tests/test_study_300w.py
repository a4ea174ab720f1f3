"""experiments/study_300w/run.sh: its grid composes, and a dry run prints without touching a live queue."""

from __future__ import annotations

import os
import subprocess

import pytest

from landmark_lab.errors import ConfigError

from .conftest import ROOT, needs_shared

STUDY_RUN = ROOT / "experiments" / "study_300w" / "run.sh"


def _dry_run(tmp_path, queue_text: str | None) -> tuple[list[str], str | None]:
    """The commands ``DRY_RUN=1 run.sh`` prints for a queue file (None: no queue), and the queue afterwards."""
    queue = tmp_path / "queue.txt"
    if queue_text is not None:
        queue.write_text(queue_text)
    env = {**os.environ, "DRY_RUN": "1", "OUT": str(tmp_path / "out"), "QUEUE": str(queue)}
    done = subprocess.run(["bash", str(STUDY_RUN)], env=env, capture_output=True, text=True, timeout=60, check=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("OMP_NUM_THREADS=1 ")]
    return lines, queue.read_text() if queue.exists() else None


def _grid(tmp_path) -> list[tuple[str, str, str, list[str]]]:
    """(the run's folder name for its strategy, budget, seed, the overrides printed) for every run of the grid."""
    lines, _ = _dry_run(tmp_path, None)
    out = []
    for line in lines:
        overrides = line.split()[4:]  # after "OMP_NUM_THREADS=1 python -m landmark_lab.train"
        args = dict(a.split("=", 1) for a in overrides if "=" in a)
        name = args["hydra.run.dir"].split("/")[-3]  # OUT/<name>/n<budget>/seed<seed>
        out.append((name, args["data.real_budget"], args["seed"], overrides))
    return out


def test_dry_run_prints_the_queue_and_leaves_it_alone(tmp_path):
    # A dry run beside a running sweep used to pop the shared queue, so the running slots found it empty and stopped.
    queue = "real_only 50 0\npretrain_finetune 100 1\n"
    lines, after = _dry_run(tmp_path, queue)
    assert after == queue
    assert len(lines) == 2 and "strategy=pretrain_finetune data.real_budget=100 seed=1" in lines[1]
    assert f"hydra.run.dir={tmp_path / 'out'}/pretrain_finetune/n100/seed1" in lines[1]


def test_study_grid_lists_each_run_once_and_puts_the_50_image_arms_first(tmp_path):
    grid = _grid(tmp_path)
    runs = [run[:3] for run in grid]
    assert len(runs) == len(set(runs)) >= 30
    first = runs[:4]
    assert {s for s, _, _ in first} == {"real_only", "pretrain_finetune"} and {b for _, b, _ in first} == {"50"}
    strategies = {s for s, _, _ in runs}
    assert strategies == {"real_only", "pretrain_finetune", "synth_only_adapted", "data_adapt", "mixing", "combined"}
    # the study's strategies 3 and 4: one data module, adapted synthetic faces only vs mixed with the real ones
    share = {name: [a for a in overrides if a.startswith("data.synth_share=")] for name, _, _, overrides in grid}
    assert share["data_adapt"] == ["data.synth_share=1.0"] and share["mixing"] == ["data.synth_share=0.5"]
    assert all("strategy=data_adapt" in overrides for name, _, _, overrides in grid if name == "mixing")


@needs_shared("300w", "dgfaces")
def test_every_study_strategy_composes_and_passes_the_checks(tmp_path, make_cfg):
    # A typo in the grid would otherwise show only when its run starts, hours into the sweep.
    from landmark_lab.cli.checks import check_train_config

    seen = set()
    for strategy, budget, _, overrides in _grid(tmp_path):
        if (strategy, budget) in seen:
            continue
        seen.add((strategy, budget))
        try:  # the printed overrides, except where the run goes (make_cfg gives it a temporary folder)
            cfg = make_cfg([a for a in overrides if not a.startswith("hydra.run.dir=")])
            check_train_config(cfg)
        except ConfigError as exc:
            pytest.fail(f"experiments/study_300w/run.sh: {strategy} {budget}: {exc}")
        assert cfg.schedule.min_steps == 1200 and cfg.data.split == ["lfpw/trainset"], (strategy, budget)
        # every stage, fine-tuning included, at the real-only arm's lr (chosen on validation; README)
        assert {float(st.lr) for st in cfg.strategy.stages} == {1e-3}, (strategy, budget)
