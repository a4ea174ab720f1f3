"""One data module for every strategy: each stage's train_on / validate_on / shares decide its loaders."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf, open_dict

from landmark_lab.cli.checks import check_train_config
from landmark_lab.datamodules.strategies import StageData
from landmark_lab.errors import ConfigError
from landmark_lab.training.builders import build_datamodule
from landmark_lab.utils.compose import complete_stages
from landmark_lab.utils.run import config_changes


def _stages(cfg, stages: list[dict]) -> None:
    with open_dict(cfg):
        cfg.strategy.stages = [{"steps": 4, "lr": 1e-3, **st} for st in stages]
    complete_stages(cfg)


def test_each_stage_trains_and_validates_on_what_it_says(make_cfg):
    cfg = make_cfg(["data.real_budget=12", "data.synth_share=0.25"])
    _stages(cfg, [{"name": "a", "train_on": "synthetic"}, {"name": "b", "train_on": "mixed"},
                  {"name": "c", "train_on": "real", "validate_on": "synthetic"},
                  {"name": "d", "train_on": "mixed", "synth_share": 1.0}])
    check_train_config(cfg)
    dm = build_datamodule(cfg, progress=False)
    dm.setup("fit")
    n_syn, n_real = len(dm.syn_train_items), len(dm.real_train_items)
    assert dm.uses("synthetic") and dm.uses("real") and n_real == 12
    seen = {}
    for name in "abcd":
        dm.stage = name
        _, items = dm.training_set()
        val = dm.val_dataloader().dataset
        seen[name] = (len(items), "synthetic" if val.sources is dm.syn_sources else "real")
    assert seen == {"a": (n_syn, "synthetic"), "b": (n_syn + n_real, "real"), "c": (n_real, "synthetic"),
                    "d": (n_syn, "real")}  # a mixed stage at a synthetic share of 1 trains on synthetic alone
    dm.stage, dm.train_steps = "b", 5
    batch = next(iter(dm.train_dataloader().batch_sampler))
    assert sum(i < n_syn for i in batch) == round(0.25 * cfg.data.batch_size)  # data.synth_share is the default


def test_a_strategy_on_real_faces_alone_opens_no_synthetic_set(make_cfg):
    cfg = make_cfg(["data.real_budget=12"])
    _stages(cfg, [{"name": "train", "train_on": "real"}])
    dm = build_datamodule(cfg, progress=False)
    dm.setup("fit")
    assert not dm.uses("synthetic") and not hasattr(dm, "syn_sources")
    assert dm.summary()["strategy"] == "real_only" and "synthetic_train" not in dm.summary()


def test_stage_keys_are_checked_by_name(make_cfg):
    cfg = make_cfg()
    _stages(cfg, [{"name": "a"}])
    with pytest.raises(ConfigError, match=r"strategy.stages.0.train_on is not set: say what stage a trains on"):
        check_train_config(cfg)
    for bad, match in (({"train_on": "synthetics"}, "Did you mean 'synthetic'"),
                       ({"train_on": "mixed", "synth_share": 1.5}, "synth_share=1.5 must be at most 1"),
                       ({"train_on": "real", "validate_on": "test"}, "validate_on='test' is not valid")):
        _stages(cfg, [{"name": "a", **bad}])
        with pytest.raises(ConfigError, match=match):
            check_train_config(cfg)
    _stages(cfg, [{"name": "a", "train_on": "real"}, {"name": "a", "train_on": "real"}])
    with pytest.raises(ConfigError, match="two stages share a name"):
        check_train_config(cfg)
    with pytest.raises(ValueError, match="train_on='pseudo-labels'"):
        StageData("x", "pseudo-labels")


def test_stage_defaults_fill_what_a_stage_leaves_out_and_follow_the_schedule(make_cfg):
    cfg = make_cfg(["schedule.min_steps=7", "strategy=pretrain_finetune"])
    complete_stages(complete_stages(cfg))  # idempotent
    stages = OmegaConf.to_container(cfg.strategy.stages, resolve=True)
    assert [st["min_steps"] for st in stages] == [7, 7] and [st["train_on"] for st in stages] == ["synthetic", "real"]
    assert stages[1]["max_steps"] == cfg.schedule.max_steps and stages[1]["lr"] == cfg.schedule.finetune_lr


def test_a_run_recorded_before_stages_said_what_they_train_on_is_the_same_run():
    old = {"strategy": {"name": "pretrain_finetune", "stages": [{"name": "pretrain", "lr": 1e-3}]}}
    new = {"strategy": {"name": "pretrain_finetune", "stages": [{"name": "pretrain", "lr": 1e-3, "train_on": "synthetic"}]}}
    assert config_changes(old, new) == []
    changed = {"strategy": {"name": "pretrain_finetune", "stages": [{"name": "pretrain", "lr": 1e-3, "train_on": "real"}]}}
    assert config_changes(new, changed) == ["strategy.stages.0.train_on: synthetic -> real"]
