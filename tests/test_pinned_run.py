"""The refactor into cli/ + library packages (and optimiser, scheduler and callbacks built from config) must not
change results: one tiny run per kind of stage chain, pinned to the numbers the code gave before it (within 1 % across CPUs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from landmark_lab.training.runner import train

# Measured with the code before the refactor (commit 4264469), 1 CPU thread. model.decay_norm_and_bias=true is
# that code's optimiser (weight decay on every parameter); the new default leaves norm and bias undecayed.
# The figures are exact only on the kind of CPU that measured them: torch's CPU kernels take other paths on other
# instruction sets (an AVX2-only AMD EPYC gives 0.21711 for real_only's 0.21690), by more than a 30-step run moves
# for a small code change (the optimiser's decay choice: 7e-5; one step fewer: 2e-4). So across machines they are
# held to 1 %: that catches a stage skipped or trained on other data, not a small optimiser or schedule change;
# exact same-seed repeatability on the machine at hand is tests/test_cache_resume.py::test_same_seed_same_metrics.
REL = 1e-2
PINNED = {
    "real_only": (["strategy.stages.0.steps=30"], 0.21690379083156586, 0.19162587821483612),
    "synth_pretrain_ft50": (["data.real_budget=16", "strategy.stages.0.steps=20", "strategy.stages.1.steps=10"],
                            0.23978936672210693, 0.2193099856376648),
}


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(PINNED))
def test_same_seed_same_metrics_as_before_the_refactor(make_cfg, tmp_path, experiment):
    extra, nme, val = PINNED[experiment]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = make_cfg([f"+experiment={experiment}", "schedule.val_every=10", "model.decay_norm_and_bias=true",
                        f"paths.cache_dir={tmp_path / 'cache'}", *extra])
        train(cfg)
    finally:
        torch.set_num_threads(threads)
    m = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    print(experiment, m["test"]["metrics"]["nme_io"], m["val_nme_io"])  # shown with -s: the figures on this machine
    assert m["test"]["metrics"]["nme_io"] == pytest.approx(nme, rel=REL)
    assert m["val_nme_io"] == pytest.approx(val, rel=REL)
    # the checkpoint records the lr and steps its stage really used
    ckpt = torch.load(Path(cfg.paths.output_dir) / m["stages"][-1]["best_checkpoint"], weights_only=True)
    assert ckpt["hyper_parameters"]["stage"]["steps"] == m["stages"][-1]["steps"]
    assert ckpt["hyper_parameters"]["stage"]["lr"] == pytest.approx(cfg.strategy.stages[-1].lr)
    # "without adapter" only where 3d-labelled (synthetic) faces supervised the output under the adapter
    pretrained = experiment == "synth_pretrain_ft50"
    assert ckpt["hyper_parameters"]["base_supervised"] is pretrained
    assert ("metrics_without_adapter" in m["test"]) is pretrained
