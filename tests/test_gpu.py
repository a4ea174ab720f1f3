"""On a CUDA machine: a stage trains with the GPU trainer preset (mixed precision) and tests on the GPU. Skipped on
machines without CUDA (CI's); experiments/gpu/gpu_check.sh is the full GPU check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from landmark_lab.cli.train import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_a_strategy_trains_and_tests_on_the_gpu(make_cfg):
    cfg = make_cfg(["+experiment=synth_pretrain_ft50", "trainer=gpu", "trainer.accelerator=gpu", "data.real_budget=16",
                    "strategy.stages.0.steps=4", "strategy.stages.1.steps=4", "schedule.val_every=2"])
    train(cfg)
    m = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert [s["steps"] for s in m["stages"]] == [4, 4]
    assert m["test"]["metrics"]["count"] > 0 and m["test"]["metrics"]["nme_io"] == m["test"]["metrics"]["nme_io"]
