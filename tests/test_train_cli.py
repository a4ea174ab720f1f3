"""End-to-end: every experiment config trains (fast_dev_run) and writes metrics.json; bad input is clear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from landmark_lab.cli.evaluate import evaluate_checkpoint as run_evaluate
from landmark_lab.cli.train import train
from landmark_lab.errors import ConfigError
from landmark_lab.training.callbacks import StageAware

from .conftest import CONF, ROOT, W300, needs_300w, needs_shared, tiny_overrides

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(make_cfg, experiment):
    text = (CONF / "experiment" / f"{experiment}.yaml").read_text()
    if any(f"data: {d}" in text for d in ("study", "300w")) and not W300.is_dir():
        pytest.skip("needs ../shared/data")
    extra = []
    if "override /trainer: gpu" in text and not torch.cuda.is_available():
        # a GPU experiment on a CPU-only machine: its config, model and data path on the CPU trainer (and without
        # building the crop cache of every photo for one step)
        extra = ["trainer=default", "data.cache=none"]
    cfg = make_cfg([f"+experiment={experiment}", "trainer.fast_dev_run=true", *extra])
    for part in (cfg.data.synthetic.get("sources") or {}).values():
        if part.get("kind") == "procedural":  # pooled procedural volume (study_300w: 20,000 faces): tiny here too
            part.n, part.workers = 48, 1
    train(cfg)
    out = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert out["strategy"] == (cfg.strategy.get("label") or cfg.strategy.name)
    assert set(out["test"]["metrics"]) >= {"nme_io", "nme_ip", "nme_box", "fr_io@0.1", "auc_io@0.08", "nme_io_jaw"}
    assert out["config"]["seed"] == 0 and "timing" in out


@pytest.mark.slow
def test_short_training_beats_mean_shape_and_evaluate_reloads(make_cfg, tmp_path):
    cfg = make_cfg(["+experiment=synth_pretrain_ft50", "data.real_budget=16", "strategy.stages.0.steps=150",
                    "strategy.stages.1.steps=40", "schedule.val_every=20",
                    "model.backbone.name=resnet18"])  # that 190 steps learn something is resnet18's figure
    val = train(cfg)
    run = Path(cfg.paths.output_dir)
    out = json.loads((run / "metrics.json").read_text())
    assert val == pytest.approx(out["stages"][-1]["best_val_nme_io"])
    assert out["data"]["real_train"] == 16
    assert out["test"]["metrics"]["nme_io"] < out["baseline_mean_shape"]["nme_io"]
    assert (run / "test_predictions.png").is_file() and (run / "ced.png").is_file()
    ckpt = run / out["stages"][-1]["best_checkpoint"]
    # the run folder already has results: never overwritten silently
    with pytest.raises(ConfigError, match="already holds results"):
        train(cfg)
    ev = make_cfg([f"ckpt_path={ckpt}"], name="evaluate", run_dir=tmp_path / "ev")
    metrics = run_evaluate(ev)
    assert metrics["nme_io"] == pytest.approx(out["test"]["metrics"]["nme_io"], rel=1e-4)


def test_budget_larger_than_pool_is_a_clear_error(make_cfg):
    cfg = make_cfg(["+experiment=real_only", "data.real_budget=5000"])
    with pytest.raises(ConfigError, match="real_budget=5000 is larger than the real training pool of 62"):
        train(cfg)


def test_missing_300w_root_is_a_clear_error(make_cfg, tmp_path):
    cfg = make_cfg(["data=300w", f"data.root={tmp_path / 'nope'}", "+experiment=real_only"])
    # checked up front, naming the key the user typed (data.root, not the data.real.root it is copied into)
    with pytest.raises(ConfigError, match=r"^data\.root=.*nope: folder not found"):
        train(cfg)


def test_cli_prints_one_clear_line_not_a_traceback(tmp_path, cache_dir):
    cmd = [sys.executable, "-m", "landmark_lab.train", "+experiment=real_only", f"hydra.run.dir={tmp_path / 'run'}",
           *tiny_overrides(cache_dir), "model.backbone.name=resnet181"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "error: model.backbone.name='resnet181' is not a timm model" in proc.stderr
    assert "Traceback" not in proc.stderr


@needs_300w
@pytest.mark.slow
def test_real_only_on_shared_300w_then_evaluate_on_unseen_folder(make_cfg, tmp_path):
    cfg = make_cfg(["data=300w", f"data.root={W300}", "data.train_split=[afw]", "data.split=[helen/trainset]",
                    "+experiment=real_only", "data.real_budget=100", "data.val_size=20", "strategy.stages.0.steps=8",
                    "schedule.val_every=4", "data.real.train_split=[afw]"])
    train(cfg)
    out = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert out["data"]["real_train"] == 100 and out["data"]["test"] == 870
    ckpt = Path(cfg.paths.output_dir) / out["stages"][-1]["best_checkpoint"]
    ev = make_cfg([f"ckpt_path={ckpt}", "data=300w", f"data.root={W300}", "data.split=[lfpw/trainset]"],
                  name="evaluate", run_dir=tmp_path / "ev")
    metrics = run_evaluate(ev)
    assert metrics["count"] == 805


@pytest.mark.slow
@needs_shared("dgfaces", "facesynthetics")
@pytest.mark.parametrize("source,limit,n_train", [("dgfaces", "data.synthetic.limit=40", 32),
                                                   ("facesynthetics", "data.synthetic.limit=40", 32),
                                                   ("dgfaces_facesynthetics", "data.synthetic.sources.dgfaces.limit=30", 122)])
def test_synthetic_datasets_from_config(make_cfg, source, limit, n_train):
    # Defaults point at ../shared/data; the combined source pools 30 DGFaces + 100 Face Synthetics.
    cfg = make_cfg(["+experiment=synth_only", f"data/synthetic={source}", limit, "trainer.fast_dev_run=true"])
    train(cfg)
    out = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert out["data"]["synthetic_train"] == n_train


@pytest.mark.slow
def test_packed_runs_share_the_machine_each_in_its_own_folder(tmp_path, cache_dir):
    """Two runs of a multirun at once (hydra/launcher=pack), one thread each: both finish, each in its own folder,
    and the one pre-training both need is trained once (the cache's lock makes the other wait, then load it)."""
    cmd = [sys.executable, "-m", "landmark_lab.train", "-m", "+experiment=synth_pretrain_ft50", "data.real_budget=16,24",
           "hydra/launcher=pack", "hydra.launcher.n_jobs=2", "threads=1", "strategy.stages.0.steps=4",
           "strategy.stages.1.steps=4", "schedule.val_every=2", f"hydra.sweep.dir={tmp_path / 'sweep'}",
           *tiny_overrides(cache_dir)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/metrics.json"))]
    assert sorted(m["real_budget"] for m in runs) == [16, 24]
    assert sorted(m["stages"][0]["cache_hit"] for m in runs) == [False, True]
    assert all(m["config"]["threads"] == 1 for m in runs)


DDP_EXPERIMENTS = ["real_only", "synth_only_adapted", "combined", "synth_pretrain_ft50", "mixing"]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", DDP_EXPERIMENTS)
def test_cpu_ddp_every_strategy_two_processes_one_run_folder(make_cfg, tmp_path, experiment):
    """DDP with 2 CPU processes (gloo) for every mixing strategy (the mixed batch sampler included): trains,
    and rank 0 alone writes one metrics.json in one folder."""
    steps = [f"strategy.stages.{i}.steps=4" for i in range(2 if experiment in ("synth_pretrain_ft50", "mixing") else 1)]
    cfg = make_cfg([f"+experiment={experiment}", "trainer=ddp_spawn", "trainer.accelerator=cpu", "trainer.devices=2",
                    *steps, "schedule.val_every=2", "posthoc_adapter.steps=10", "trainer.enable_progress_bar=false"],
                   run_dir=tmp_path / "ddp")
    train(cfg)
    out = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    # With spawned processes the step count is read back from each stage's last checkpoint.
    assert out["stages"][0]["steps"] == 4
    assert out["test"]["metrics"]["count"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]


@pytest.mark.parametrize("overrides", [
    ["+experiment=synth_pretrain_ft50", "+hparams_search=optuna_lr_augment"],
    ["+experiment=budget_sweep", "hydra/launcher=joblib"],
    ["+experiment=budget_sweep", "hydra/launcher=pack", "threads=1"],
    ["+experiment=budget_sweep", "hydra/launcher=slurm_example"],
])
def test_sweeper_and_launcher_configs_compose(make_cfg, overrides):
    """The Optuna search, the parallel joblib launcher and the SLURM example compose (plugins installed)."""
    from hydra.core.hydra_config import HydraConfig

    make_cfg(overrides)
    hydra_cfg = HydraConfig.get()
    assert hydra_cfg.mode.name == "MULTIRUN"
    assert hydra_cfg.sweep.dir.endswith(("budget_sweep_procedural", "optuna_pretrain_finetune_n50"))


def test_console_dispatcher_and_older_flag_spellings(capsys, monkeypatch):
    from landmark_lab.__main__ import main as dispatch
    from landmark_lab.cli.app import translate

    monkeypatch.setattr(sys, "argv", ["landmark-lab"])
    with pytest.raises(SystemExit) as exc:
        dispatch()
    out = capsys.readouterr().out
    assert exc.value.code == 2 and all(c in out for c in ("train", "evaluate", "predict", "export", "report", "bench"))
    flags = {"--runs": "runs=true", "--ced-budget": "ced_budget", "--reference": "references+="}
    assert translate(["logs/s", "--runs", "--ced-budget", "10", "--reference", "a", "--reference=b", "+x=1"], flags,
                     "sweep") == ["sweep=logs/s", "runs=true", "ced_budget=10", "+x=1", "references=[a,b]"]


def test_synthetic_validation_share_keeps_small_sets_for_training():
    from landmark_lab.datamodules.splits import validation_count

    assert validation_count(0.05, 2000, 100) == 100  # the built-in 2000 faces: as before
    assert validation_count(0.05, 300, 100) == 15  # the shared 300 synthetic faces keep 285 for training
    assert validation_count(0.05, 10, 100) == 1 and validation_count(30, 300, 100) == 30


@needs_300w
def test_study_data_pools_every_shared_synthetic_folder(make_cfg):
    cfg = make_cfg(["+experiment=synth_only", "data=study", "data.synthetic_val_size=0.05", "data.train_split=[afw]",
                    "data.split=[lfpw/trainset]", "trainer.fast_dev_run=true"])
    train(cfg)
    out = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    # DGFaces (both export layouts, 100 + 100) + Face Synthetics (100) = 300; 5 % (15) validate
    assert (out["data"]["synthetic_train"], out["data"]["synthetic_val"]) == (285, 15)


def test_validation_interval_reaches_the_last_step():
    from landmark_lab.training.stages import validation_interval

    assert validation_interval(400, 300) == 200  # was 300: one validation, the last 100 steps never kept
    assert validation_interval(2400, 300) == 300 and validation_interval(30, 150) == 30
    for steps in range(1, 3000, 7):
        for every in (50, 150, 300):
            interval = validation_interval(steps, every)
            checks = steps // interval
            assert interval <= every and steps - checks * interval < checks  # the last check is near the end


class StageRecorder(StageAware, L.Callback):
    """A user's callback that needs its stage's name and folder: it subclasses StageAware, nothing more."""


def test_stage_callbacks_are_bound_by_type_not_by_target_name(make_cfg, tmp_path):
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

    from landmark_lab.training.callbacks import DivergenceGuard
    from landmark_lab.training.stages import stage_callbacks

    cfg = make_cfg(["+callbacks.mine._target_=tests.test_train_cli.StageRecorder", "callbacks.early_stopping.patience=2"])
    stage_dir = tmp_path / "run" / "checkpoints" / "finetune"
    callbacks = stage_callbacks(cfg, "finetune", stage_dir, with_logger=False)
    kinds = {type(c) for c in callbacks}
    assert LearningRateMonitor not in kinds  # no logger to write to
    assert EarlyStopping in kinds  # patience 2: kept
    ckpt = next(c for c in callbacks if isinstance(c, ModelCheckpoint))
    assert Path(ckpt.dirpath) == stage_dir.resolve()
    guard = next(c for c in callbacks if isinstance(c, DivergenceGuard))
    mine = next(c for c in callbacks if isinstance(c, StageRecorder))
    assert guard.stage == mine.stage == "finetune" and mine.stage_dir == stage_dir
    cfg = make_cfg(["callbacks.early_stopping.patience=0"])
    assert not any(isinstance(c, EarlyStopping) for c in stage_callbacks(cfg, "pretrain", stage_dir, True))
    cfg = make_cfg(["+callbacks.broken._target_=tests.test_train_cli.NoSuchCallback"])
    with pytest.raises(ConfigError, match=r"callbacks\.broken: cannot build tests\.test_train_cli\.NoSuchCallback"):
        stage_callbacks(cfg, "pretrain", stage_dir, True)


def test_distill_strategy_learns_from_a_teacher_checkpoint(tmp_path, cache_dir, capsys):
    """strategy=distill: the teacher (a checkpoint path) is recorded in the stage, the student's checkpoint holds
    only the student; no teacher, a teacher no stage uses, or one that frames faces otherwise: one clear line each."""
    from .conftest import run_cli

    tiny = [*tiny_overrides(cache_dir), "strategy.stages.0.steps=2", "data.real_budget=12"]
    assert run_cli("train", ["strategy=real_only", *tiny, f"hydra.run.dir={tmp_path / 'teacher'}"]) == 0
    ckpt = tmp_path / "teacher" / json.loads((tmp_path / "teacher" / "metrics.json").read_text())["stages"][0]["best_checkpoint"]
    assert run_cli("train", ["strategy=distill", f"distill.teacher={ckpt}", "distill.weight=0.5", *tiny,
                             "data.transform.crop.size=48", f"hydra.run.dir={tmp_path / 'student'}"]) == 0
    m = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert m["strategy"] == "distill" and m["stages"][0]["distill"]["teacher"] == str(ckpt)
    assert m["stages"][0]["distill"]["weight"] == 0.5 and m["stages"][0]["distill"]["teacher_model"].endswith("64px")
    state = torch.load(tmp_path / "student" / m["stages"][0]["best_checkpoint"], weights_only=True)["state_dict"]
    assert not any("teacher" in k for k in state)
    # a distilling stage before a self-training round: every stage trains, and the round's teacher is the model
    # before it (not the distillation teacher, nor a skipped stage's)
    mine = tmp_path / "my_conf" / "strategy"
    mine.mkdir(parents=True)
    stage = "    steps: 2\n    lr: 1.0e-3\n"
    (mine / "taught_then_self.yaml").write_text(
        "name: taught_then_self\nstages:\n  - name: taught\n    train_on: real\n    distill: true\n" + stage
        + "  - name: again\n    train_on: real\n" + stage + "  - name: student\n    train_on: pseudo\n" + stage)
    assert run_cli("train", ["--config-dir", str(tmp_path / "my_conf"), "strategy=taught_then_self",
                             f"distill.teacher={ckpt}", "data/unlabelled=pool_rest", *tiny,
                             f"hydra.run.dir={tmp_path / 'mixed'}"]) == 0
    m = json.loads((tmp_path / "mixed" / "metrics.json").read_text())
    assert [st["name"] for st in m["stages"]] == ["taught", "again", "student"]
    assert "distill" in m["stages"][0] and "teacher" not in m["stages"][2]["pseudo_labels"]
    # init_from: the student starts from a checkpoint (here the teacher itself, taught its flip average; at a
    # learning rate too small to move them, its parameters are the teacher's)
    assert run_cli("train", ["strategy=distill", f"distill.teacher={ckpt}", f"init_from={ckpt}", "distill.flip=true",
                             *tiny, "strategy.stages.0.lr=1e-12", f"hydra.run.dir={tmp_path / 'self'}"]) == 0
    m = json.loads((tmp_path / "self" / "metrics.json").read_text())
    assert m["stages"][0]["distill"]["flip"] is True and m["config"]["init_from"] == str(ckpt)
    mine = torch.load(tmp_path / "self" / m["stages"][0]["best_checkpoint"], weights_only=True)["state_dict"]
    theirs = torch.load(ckpt, weights_only=True)["state_dict"]
    learnt = [k for k in theirs if theirs[k].is_floating_point() and "running" not in k]
    assert learnt and all(torch.allclose(mine[k], theirs[k], atol=1e-6) for k in learnt)
    capsys.readouterr()
    for argv, says in ((["strategy=distill"], "set distill.teacher to a checkpoint"),
                       (["strategy=distill", f"distill.teacher={ckpt}", "distill.flip=yes"], "must be true or false"),
                       ([f"init_from={ckpt}", "model.adapter.name=affine"],
                        "the weights in this init_from checkpoint do not fit the model"),
                       ([f"init_from={tmp_path / 'none.ckpt'}"], "init_from='"),
                       ([f"init_from={ckpt}", "strategy=self_train_real", f"self_train.teacher={ckpt}",
                         "data/unlabelled=pool_rest"], "both give the model's start"),
                       ([f"distill.teacher={ckpt}"], "no stage of strategy=real_only learns from it"),
                       (["strategy=distill", f"distill.teacher={tmp_path / 'none.ckpt'}"], "checkpoint not found"),
                       (["strategy=distill", f"distill.teacher={ckpt}", "data.transform.crop.scale=1.6"],
                        "frame faces otherwise than this run's (scale: 1.25 there, 1.6 here)")):
        assert run_cli("train", [*argv, *tiny, f"hydra.run.dir={tmp_path / 'bad'}"]) == 2
        assert says in capsys.readouterr().err


def test_a_start_trained_on_this_runs_validation_photos_is_named(make_cfg, tmp_path):
    """init_from / self_train.teacher from a run that held out other photos of the same data (another split seed,
    size or doubling): a warning that says which and how to match; same hold-out, other data, or a checkpoint
    without its run folder's metrics.json: nothing."""
    from landmark_lab.training.stages import split_mismatch

    cfg = make_cfg(["seed=0"])
    ckpt = tmp_path / "start" / "checkpoints" / "train" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert split_mismatch(cfg, "init_from", str(ckpt)) is None  # no record: not judged

    def record(**changes) -> None:
        conf = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        for key, value in changes.items():
            OmegaConf.update(conf, key.replace("__", "."), value)
        (tmp_path / "start" / "metrics.json").write_text(json.dumps({"config": OmegaConf.to_container(conf)}))

    record()
    assert split_mismatch(cfg, "init_from", str(ckpt)) is None
    record(data__real__mirror_shift=1.0)  # the labels' mirror shift is not the hold-out
    assert split_mismatch(cfg, "init_from", str(ckpt)) is None
    record(seed=1)
    said = split_mismatch(cfg, "init_from", str(ckpt))
    assert "split seed 1 there, 0 here" in said and "data.split_seed=1" in said and "optimistic" in said
    record(seed=1, data__split_seed=0)  # the split seed pinned: the same photos held out
    assert split_mismatch(cfg, "init_from", str(ckpt)) is None
    record(data__val_size=7)
    said = split_mismatch(cfg, "self_train.teacher", str(ckpt))
    assert said.startswith("self_train.teacher=") and "data.val_size 7 there" in said and "split_seed" not in said
    record(seed=1, data__real__root="/elsewhere")  # other photos altogether
    assert split_mismatch(cfg, "init_from", str(ckpt)) is None
