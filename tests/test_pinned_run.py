"""Pinned behaviour of the resnet18 stage chains, by comparing two code paths in the same process.

These tests used to compare a 30-step run's NME with figures measured on one CPU (commit 4264469), within 1 %.
That failed on other machines of the same kind, and it pinned nothing: measured on three CPUs, real_only's test NME
was 0.21690 (the pinning CPU), 0.22508 (an AVX2-only AMD EPYC) and 0.22610 (an AVX-512 Intel Xeon), a 4 % spread,
while training on other images (data.split_seed=1) gave 0.21684 and skipping synth_pretrain_ft50's pre-training
(1 step instead of 20) moved its test NME by 1.2 %: runs this short sit near the mean-shape baseline, and CPU
kernels move them more than a skipped stage does. So each test below compares two code paths on the same machine,
where the same seed gives the same bits, and a skipped stage or other data changes the weights outright.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from landmark_lab.cli.evaluate import evaluate_checkpoint
from landmark_lab.cli.train import train

pytestmark = pytest.mark.slow

# resnet18 at 64 px, as the defaults; one CPU thread, so the comparisons hold bit for bit on any machine.
RESNET18 = ["model.backbone.name=resnet18", "schedule.val_every=10", "model.decay_norm_and_bias=true"]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


def _weights(cfg, stage: int = 0) -> dict[str, torch.Tensor]:
    m = _metrics(cfg)
    return torch.load(Path(cfg.paths.output_dir) / m["stages"][stage]["best_checkpoint"], weights_only=True)["state_dict"]


def _evaluated_like_training(make_cfg, cfg, tmp_path) -> float:
    """The test NME of the run's last best checkpoint, through the `evaluate` command's code path."""
    m = _metrics(cfg)
    ckpt = Path(cfg.paths.output_dir) / m["stages"][-1]["best_checkpoint"]
    ev = make_cfg([f"ckpt_path={ckpt}"], name="evaluate", run_dir=tmp_path / "evaluate")
    return evaluate_checkpoint(ev)["nme_io"]


def test_real_only_tests_as_evaluate_does_and_records_its_stage(make_cfg, tmp_path, one_thread):
    cfg = make_cfg(["+experiment=real_only", "strategy.stages.0.steps=30", f"paths.cache_dir={tmp_path / 'cache'}",
                    *RESNET18])
    train(cfg)
    m = _metrics(cfg)
    # the training's own test and the evaluate command agree on the kept checkpoint, to the bit
    assert m["test"]["metrics"]["nme_io"] == _evaluated_like_training(make_cfg, cfg, tmp_path)
    assert m["data"]["real_train"] == 62 and m["stages"][0]["steps"] == 30
    ckpt = torch.load(Path(cfg.paths.output_dir) / m["stages"][-1]["best_checkpoint"], weights_only=True)
    assert ckpt["hyper_parameters"]["stage"]["steps"] == 30
    assert ckpt["hyper_parameters"]["stage"]["lr"] == pytest.approx(cfg.strategy.stages[-1].lr)
    # nothing supervised the output under the adapter: no "without adapter" figure
    assert ckpt["hyper_parameters"]["base_supervised"] is False and "metrics_without_adapter" not in m["test"]


def test_pretraining_stage_is_exactly_synthetic_only_training(make_cfg, tmp_path, one_thread):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    chain = make_cfg(["+experiment=synth_pretrain_ft50", "data.real_budget=16", "strategy.stages.0.steps=20",
                      "strategy.stages.1.steps=10", cache, *RESNET18], run_dir=tmp_path / "chain")
    train(chain)
    m = _metrics(chain)
    assert [(s["name"], s["steps"]) for s in m["stages"]] == [("pretrain", 20), ("finetune", 10)]
    assert m["data"]["real_train"] == 16 and m["stages"][0]["cache_hit"] is False
    # The same seed's synthetic-only training, trained again (not read from the cache): the pre-training stage
    # kept the very same weights. A skipped or shortened stage, other faces or another lr would not.
    alone = make_cfg(["+experiment=synth_only", "strategy.stages.0.steps=20", "pretrain_cache.enabled=false", cache,
                      *RESNET18], run_dir=tmp_path / "alone")
    train(alone)
    assert _metrics(alone)["stages"][0]["best_val_nme_io"] == m["stages"][0]["best_val_nme_io"]
    pretrained, synthetic_only = _weights(chain, 0), _weights(alone, 0)
    assert pretrained.keys() == synthetic_only.keys()
    assert all(torch.equal(pretrained[k], synthetic_only[k]) for k in pretrained)
    # fine-tuning moved them, and its result tests as evaluate tests it
    assert not all(torch.equal(pretrained[k], v) for k, v in _weights(chain, 1).items() if k in pretrained)
    assert m["test"]["metrics"]["nme_io"] == _evaluated_like_training(make_cfg, chain, tmp_path)
    ckpt = torch.load(Path(chain.paths.output_dir) / m["stages"][-1]["best_checkpoint"], weights_only=True)
    assert ckpt["hyper_parameters"]["stage"]["lr"] == pytest.approx(chain.strategy.stages[-1].lr)
    # 3d-labelled synthetic faces supervised the output under the adapter: "without adapter" is reported
    assert ckpt["hyper_parameters"]["base_supervised"] is True and "metrics_without_adapter" in m["test"]
