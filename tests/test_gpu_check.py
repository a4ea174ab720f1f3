"""The GPU check script is correct on the CPU: its tiny mode runs every step and writes the summary."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_gpu_check_tiny_mode_runs_every_step(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "gpu" / "gpu_check.py"), "--tiny", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = (tmp_path / "summary.md").read_text()
    for step in ("train real_only", "train synth_only_adapted", "train combined", "train synth_pretrain_ft50",
                 "train data_adapt", "train mixing", "3-budget sweep from the crop cache", "bench (loader vs model)"):
        assert f"| {step} | ok |" in summary
    assert summary.count("| cpu |") >= 9  # 6 strategies + 3 budgets, tested where they trained
    assert "loader per core" in summary and "training (forward + backward + step)" in summary
