"""Hostile input, by class: nothing loaded runs code, a diverged run is never a result, no silent data,
run folders keep their record, every typo gets a clear message before any work."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import open_dict

from landmark_lab.cli.checks import check_train_config
from landmark_lab.cli.evaluate import evaluate_checkpoint as run_evaluate
from landmark_lab.cli.train import train
from landmark_lab.data.folder import LandmarkFolder
from landmark_lab.data.pts import write_pts
from landmark_lab.errors import ConfigError, DataError, TrainingDiverged
from landmark_lab.models.checkpoint import read_checkpoint
from landmark_lab.reports.rows import collect
from landmark_lab.training.loggers import KeepingCSVLogger
from landmark_lab.training.pretrain_cache import PretrainCache
from landmark_lab.utils.io import write_csv_atomic

from .conftest import ROOT, run_cli, tiny_overrides, train_command


class _Payload:
    """A pickle that, when unpickled, creates a marker file: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _crafted(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": _Payload(marker)}, path)
    return path


# -- 1. security: nothing loaded runs code ---------------------------------------------------------

def test_crafted_checkpoint_is_refused_without_running(make_cfg, tmp_path):
    marker = tmp_path / "pwned"
    ckpt = _crafted(tmp_path / "evil.ckpt", marker)
    cfg = make_cfg([f"ckpt_path={ckpt}"], name="evaluate", run_dir=tmp_path / "ev")
    with pytest.raises(DataError, match=r"evil\.ckpt: refused to load"):
        run_evaluate(cfg)
    assert not marker.exists()
    assert not (tmp_path / "ev").exists()  # nothing created for a refused checkpoint


def test_crafted_cache_entry_is_moved_aside_not_run(tmp_path):
    marker = tmp_path / "pwned"
    cache = PretrainCache(tmp_path / "cache")
    cache.dir.mkdir()
    _crafted(cache.path("k"), marker)
    assert cache.load("k", torch.nn.Linear(2, 2)) is None
    assert not marker.exists() and (cache.dir / "k.pt.corrupt").is_file()
    # an entry whose tensors do not fit the model is treated the same way (retrained, never a raw error)
    cache.save("k2", {"weight": torch.zeros(5, 5)}, {"steps": 1}, {})
    assert cache.load("k2", torch.nn.Linear(2, 2)) is None and (cache.dir / "k2.pt.corrupt").is_file()


def test_run_record_paths_stay_in_their_folder(make_cfg, tmp_path):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    stage = run / "checkpoints" / "train"
    stage.mkdir(parents=True)
    _crafted(tmp_path / "outside.ckpt", marker)
    (stage / "done.json").write_text(json.dumps({"best_checkpoint": "../../../outside.ckpt", "steps": 5}))
    cfg = make_cfg(["+experiment=real_only", "resume=true"], run_dir=run)
    with pytest.raises(DataError, match=r"points outside"):
        train(cfg)
    (stage / "done.json").write_text(json.dumps({"best_checkpoint": "checkpoints/train/evil.ckpt", "steps": 5}))
    _crafted(stage / "evil.ckpt", marker)
    with pytest.raises(DataError, match=r"refused to load"):
        train(cfg)
    assert not marker.exists() and not (run / "metrics.json").exists()


def test_label_table_paths_stay_in_their_folder(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    cv2.imwrite(str(other / "test.jpg"), np.zeros((40, 40, 3), np.uint8))
    mine = tmp_path / "mine"
    mine.mkdir()
    pts = np.random.default_rng(0).uniform(5, 35, (68, 2)).round(2).tolist()
    (mine / "labels.json").write_text(json.dumps({"../other/test.jpg": pts}))
    with pytest.raises(DataError, match=r"'\.\./other/test\.jpg' points outside"):
        LandmarkFolder(mine, "real", "2d", labels="labels.json")
    with pytest.raises(DataError, match="points outside"):
        LandmarkFolder(mine, "real", "2d", labels="../other/labels.json")


# -- 2. a diverged run is never a result -----------------------------------------------------------

@pytest.mark.slow
def test_diverged_run_writes_failed_json_and_resume_retries(make_cfg, tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg(["+experiment=real_only", "schedule.lr=1e6", "strategy.stages.0.steps=30", "schedule.val_every=10"],
                   run_dir=run)
    with pytest.raises(TrainingDiverged, match=r"stage train diverged at step \d+"):
        train(cfg)
    assert not (run / "metrics.json").exists()
    failed = json.loads((run / "failed.json").read_text())
    assert failed["failed"] and "diverged" in failed["reason"]
    rows, incomplete = collect(tmp_path)
    assert rows == [] and incomplete and "failed: stage train diverged" in incomplete[0]
    # resume=true retries the run (here with a sane learning rate) and keeps the failure on record
    assert not (run / "checkpoints" / "train").exists()  # moved to diverged/ if any were saved before the NaN
    cfg = make_cfg(["+experiment=real_only", "strategy.stages.0.steps=10", "schedule.val_every=5", "resume=true"],
                   run_dir=run)
    train(cfg)
    assert (run / "metrics.json").is_file() and not (run / "failed.json").exists()
    assert len(list(run.glob("failed_*.json"))) == 1
    assert json.loads((run / "metrics.json").read_text())["stages"][0]["steps"] == 10


def test_report_treats_bad_metrics_as_failed(tmp_path, capsys):
    for name, test in [("null", None), ("nan", {"metrics": {"nme_io": float("nan")}}),
                       ("ok", {"metrics": {"nme_io": 0.05, "nme_io_jaw": 0.07}, "ced": None})]:
        d = tmp_path / name
        (d / ".hydra").mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"strategy": "real_only", "seed": 0, "data": {"real_train": 50},
                                                    "test": test}))
    rows, incomplete = collect(tmp_path)
    assert [r["run"] for r in rows] == ["ok"]
    assert any(s.startswith("nan (failed") for s in incomplete)
    assert any(s.startswith("null (failed") and "null" in s and "metrics.json" in s for s in incomplete)
    assert run_cli("report", [str(tmp_path), "--runs"]) == 0


# -- 3. no silent data -----------------------------------------------------------------------------

def _folder(path: Path, n: int = 3, size: int = 40) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(path / f"f{i}.png"), np.full((size, size, 3), (30 * i) % 250, np.uint8))
        write_pts(path / f"f{i}.pts", np.random.default_rng(i).uniform(2, size - 2, (68, 2)))
    return path


def test_a_label_file_linking_outside_its_folder_is_never_read(tmp_path):
    """A NAME.pts that is a symbolic link to another file on the disk: refused before it is opened, so nothing of
    that file reaches a message; a bad line of a file inside the folder is quoted only in part."""
    outside = tmp_path / "secret.txt"
    outside.write_text("version: 1\nn_points: 68\n{\n" + "TOPSECRET_API_KEY=abcdefghijklmnopqrstuvwxyz0123\n" * 68 + "}\n")
    folder = _folder(tmp_path / "data", n=2)
    (folder / "f1.pts").unlink()
    (folder / "f1.pts").symlink_to(outside)
    with pytest.raises(DataError, match=r"f1\.pts: links to a file outside the data folder") as exc:
        LandmarkFolder(folder, "real", "2d")
    assert "TOPSECRET" not in str(exc.value)
    assert len(LandmarkFolder(folder, "real", "2d", skip_bad=True)) == 1
    (folder / "f1.pts").unlink()
    (folder / "f1.pts").write_text(outside.read_text())  # inside the folder now: read, its bad line cut short
    with pytest.raises(DataError, match=r"point 1 is 'TOPSECRET_API_KEY=abcdef…'") as exc:
        LandmarkFolder(folder, "real", "2d")
    assert "xyz0123" not in str(exc.value)


def test_tables_with_a_byte_order_mark_read_and_repeated_entries_are_refused(tmp_path):
    folder = _folder(tmp_path / "data", n=3)
    rows = [[f"f{i}.png", *np.random.default_rng(i).uniform(2, 38, 136).round(2)] for i in range(3)]
    header = ["image", *[f"{a}{k}" for k in range(68) for a in "xy"]]

    def table(name: str, body: list, encoding: str = "utf-8") -> str:
        with (folder / name).open("w", newline="", encoding=encoding) as f:
            csv.writer(f).writerows([header, *body])
        return name

    assert len(LandmarkFolder(folder, "real", "2d", labels=table("bom.csv", rows, "utf-8-sig"))) == 3
    with pytest.raises(DataError, match=r"line 5: lists 'f1\.png' again \(first at line 3\)"):
        LandmarkFolder(folder, "real", "2d", labels=table("twice.csv", [*rows, rows[1]]))
    assert len(LandmarkFolder(folder, "real", "2d", labels="twice.csv", skip_bad=True)) == 3
    pts = np.random.default_rng(0).uniform(2, 38, (68, 2)).round(2).tolist()
    (folder / "keys.json").write_text(f'{{"f0.png": {json.dumps(pts)}, "f0.png": {json.dumps(pts[::-1])}}}')
    with pytest.raises(DataError, match=r"entry 'f0\.png': lists 'f0\.png' again"):
        LandmarkFolder(folder, "real", "2d", labels="keys.json")
    (folder / "list.json").write_text(json.dumps([{"image": "f2.png", "landmarks": pts}] * 2))
    with pytest.raises(DataError, match=r"lists 'f2\.png' again"):
        LandmarkFolder(folder, "real", "2d", labels="list.json")


def test_unpaired_files_stop_or_are_skipped_and_counted(tmp_path):
    folder = _folder(tmp_path / "a")
    (folder / "f1.pts").unlink()
    with pytest.raises(DataError, match=r"f1\.png: has no landmark file f1\.pts"):
        LandmarkFolder(folder, "real", "2d")
    r = LandmarkFolder(folder, "real", "2d", skip_bad=True)
    assert len(r) == 2 and len(r.skipped) == 1
    folder = _folder(tmp_path / "b")
    (folder / "f2.png").unlink()
    with pytest.raises(DataError, match=r"f2\.pts: has no image beside it"):
        LandmarkFolder(folder, "real", "2d")


@pytest.mark.parametrize("shift", [None, 1e5])
def test_labels_far_outside_the_image_are_refused(tmp_path, shift):
    folder = _folder(tmp_path / "a")
    lm = np.random.default_rng(0).uniform(2, 38, (68, 2))
    if shift is None:
        lm[5] = (-50000, 90000)
    else:
        lm += shift
    write_pts(folder / "f0.pts", lm)
    with pytest.raises(DataError, match=r"f0\.pts: \d+ landmark\(s\) lie far outside the 40x40 image"):
        LandmarkFolder(folder, "real", "2d")
    assert len(LandmarkFolder(folder, "real", "2d", skip_bad=True)) == 2


def test_json_labels_of_another_shape_are_refused(tmp_path):
    folder = _folder(tmp_path / "a", n=1)
    (folder / "labels.json").write_text(json.dumps({"f0.png": np.ones((34, 4)).tolist()}))
    with pytest.raises(DataError, match=r"has shape 34x4, expected 68 \[x, y\] pairs"):
        LandmarkFolder(folder, "real", "2d", labels="labels.json")


def test_corrupt_test_image_is_found_before_training(make_cfg, tmp_path, cache_dir):
    cfg = make_cfg(["+experiment=real_only"])
    # A copy of the tiny procedural test split with one image broken.
    from landmark_lab.datamodules.sources import open_sources, prepare

    spec = dict(cfg.data.real)
    prepare(spec, "real", progress=False)
    src = open_sources(spec, "real", "test", progress=False)[0]
    bad = tmp_path / "test_copy"
    bad.mkdir()
    for img in src.images:
        for f in (img, img.with_suffix(".pts")):
            (bad / f.name).write_bytes(f.read_bytes())
    (bad / src.images[0].name).write_bytes(b"\xff\xd8 truncated")
    train_src = open_sources(spec, "real", "train", progress=False)[0]
    cfg = make_cfg(["+experiment=real_only", "data/real=folder", f"data.real.root={train_src.folder}",
                    f"data.real.test_root={bad}"])
    with pytest.raises(DataError, match=rf"{src.images[0].name}: cannot open image"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()  # refused before the first step


def test_a_test_set_that_shares_training_images_is_refused_before_training(make_cfg, tmp_path):
    """Testing on the photos trained on (data.train_split=train with the default split [lfpw/trainset], or one
    folder as both roots) would report memorised faces: refused, naming a shared image and the way out."""
    train_dir = _folder(tmp_path / "train", n=12)
    cfg = make_cfg(["+experiment=real_only", "data/real=folder", f"data.real.root={train_dir}",
                    f"data.real.test_root={tmp_path / 'train'}/../train", "data.val_size=2"])
    with pytest.raises(ConfigError, match=r"shares 12 image\(s\) with the real training pool \(e\.g\. train/f0\.png\)"
                                          r".*data\.split=\[lfpw/trainset\]"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()  # refused before the first step
    # a separate folder is fine, even with the same file names
    from landmark_lab.datamodules.sources import check_held_out, open_sources

    test_dir = _folder(tmp_path / "test", n=4, size=44)  # other faces (other pixels), the same names
    spec = {"kind": "folder", "root": str(train_dir), "test_root": str(test_dir)}
    check_held_out(open_sources(spec, "real", "train", False), open_sources(spec, "real", "test", False))
    # a hard link to a training image, and a copy under another name, are the same face
    for how, name in ((os.link, "linked"), (lambda a, b: Path(b).write_bytes(Path(a).read_bytes()), "copied")):
        how(train_dir / "f3.png", test_dir / f"{name}.png")
        (test_dir / f"{name}.pts").write_bytes((train_dir / "f3.pts").read_bytes())
        with pytest.raises(ConfigError, match=r"shares 1 image\(s\) .*test/(linked|copied)\.png\) as the same file"):
            check_held_out(open_sources(spec, "real", "train", False), open_sources(spec, "real", "test", False))
        for suffix in (".png", ".pts"):
            (test_dir / f"{name}{suffix}").unlink()


# -- 4. run folders keep their record --------------------------------------------------------------

@pytest.mark.slow
def test_refused_rerun_keeps_record_and_overwrite_backs_up_everything(tmp_path, cache_dir):
    run = tmp_path / "run"
    base = train_command(run, cache_dir, "strategy.stages.0.steps=4", "schedule.val_every=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(base, cwd=ROOT, env=env, check=True, capture_output=True)
    config = (run / ".hydra" / "config.yaml").read_text()
    r = subprocess.run([*base, "seed=5"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "already holds results" in r.stderr and "Traceback" not in r.stderr
    assert (run / ".hydra" / "config.yaml").read_text() == config  # not rewritten by the refused run
    assert "seed=5" not in (run / ".hydra" / "overrides.yaml").read_text()
    subprocess.run([*base, "seed=5", "overwrite=true"], cwd=ROOT, env=env, check=True, capture_output=True)
    backup = next(run.glob("backup_*"))
    assert (backup / ".hydra" / "config.yaml").read_text() == config
    assert "seed: 5" in (run / ".hydra" / "config.yaml").read_text()
    assert (run / "train.log").is_file() and (backup / "train.log").is_file()
    assert (backup / "train.log").read_text() != (run / "train.log").read_text()


@pytest.mark.slow
def test_full_disk_is_one_line_and_the_run_resumes(tmp_path, cache_dir, monkeypatch, capsys):
    import errno

    import lightning.fabric.plugins.io.torch_io as torch_io

    run = tmp_path / "run"
    argv = ["+experiment=real_only", "strategy.stages.0.steps=4", "schedule.val_every=2", f"hydra.run.dir={run}",
            *tiny_overrides(cache_dir)]
    real_save, saved = torch_io._atomic_save, []

    def disk_fills_up(checkpoint, path):  # the first checkpoint fits, the second finds the disk full
        if saved:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        saved.append(path)
        real_save(checkpoint, path)

    monkeypatch.setattr(torch_io, "_atomic_save", disk_fills_up)
    assert run_cli("train", argv) == 2
    err = capsys.readouterr().err
    assert "error: no space left on the device while writing" in err and "resume=true" in err
    assert "Traceback" not in err
    assert (run / ".hydra" / "config.yaml").is_file() and Path(saved[0]).is_file()  # kept for the rerun
    monkeypatch.setattr(torch_io, "_atomic_save", real_save)
    assert run_cli("train", [*argv, "resume=true"]) == 0
    assert json.loads((run / "metrics.json").read_text())["test"]


def test_resumed_csv_curve_keeps_rows_from_before(tmp_path):
    first = KeepingCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    first.log_metrics({"train/loss": 1.0}, step=10)
    first.save()
    again = KeepingCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    again.log_metrics({"train/loss": 0.5, "val/nme_io": 0.1}, step=20)
    again.save()
    with open(tmp_path / "csv" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [10, 20]
    assert float(rows[0]["train/loss"]) == 1.0 and float(rows[1]["val/nme_io"]) == 0.1


def test_evaluate_with_missing_checkpoint_leaves_no_folder(tmp_path, capsys):
    # In-process (a real process's exit status and stderr: test_train_cli's one-clear-line test): same entry points.
    run = tmp_path / "ev"
    assert run_cli("evaluate", [f"ckpt_path={tmp_path / 'none.ckpt'}", f"hydra.run.dir={run}"]) == 2
    err = capsys.readouterr().err
    assert "none.ckpt" in err and "checkpoint not found" in err and not run.exists()
    assert run_cli("adapt", [f"hydra.run.dir={run}"]) == 2
    assert "ckpt_path is required" in capsys.readouterr().err and not run.exists()
    # bad data found while the data is read (after the folder check): the new run folder is removed again
    bad = _folder(tmp_path / "bad_test", n=2)
    (bad / "f1.png").unlink()
    assert run_cli("train", ["+experiment=real_only", "data/real=folder", f"data.real.root={_folder(tmp_path / 'train', n=12)}",
                             f"data.real.test_root={bad}", "data.val_size=2", f"hydra.run.dir={run}", "logger=none",
                             "data.num_workers=0"]) == 2
    assert "f1.pts: has no image beside it" in capsys.readouterr().err and not run.exists()


def test_refused_command_keeps_a_run_folder_the_user_made(tmp_path):
    """A run folder that existed before the command is the user's: refused, the command removes only what it
    wrote there (its log), not the folder or what the user had put in it."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.log").write_text("my notes\n")
    bad = _folder(tmp_path / "bad_test", n=2)
    (bad / "f1.png").unlink()
    argv = ["+experiment=real_only", "data/real=folder", f"data.real.root={_folder(tmp_path / 'train', n=12)}",
            f"data.real.test_root={bad}", "data.val_size=2", f"hydra.run.dir={mine}", "logger=none",
            "data.num_workers=0"]
    assert run_cli("train", argv) == 2
    assert sorted(p.name for p in mine.iterdir()) == ["notes.log"]
    assert (mine / "notes.log").read_text() == "my notes\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("evaluate", [f"ckpt_path={tmp_path / 'none.ckpt'}", f"hydra.run.dir={empty}"]) == 2
    assert empty.is_dir() and not any(empty.iterdir())


# -- 5. every typo: a clear message, before any work -----------------------------------------------

@pytest.mark.parametrize(("override", "message"), [
    ("model.head.name=heatmapz", r"model\.head\.name='heatmapz' is not valid; use one of \['regression'"),
    ("model.adapter.name=linear", r"model\.adapter\.name='linear' is not valid"),
    ("model.loss.name=huber", r"model\.loss\.name='huber' is not valid"),
    ("data.batch_size=abc", r"data\.batch_size='abc' must be a whole number"),
    ("data.batch_size=0", r"data\.batch_size=0 must be at least 1"),
    ("schedule.val_every=0", r"schedule\.val_every=0 must be at least 1"),
    ("data.real_budget=12.7", r"data\.real_budget=12\.7 must be a positive whole number"),
    ("data.synth_share=1.5", r"data\.synth_share=1\.5 must be at most 1"),
    ("schedule.lr=-1", r"schedule\.lr=-1 must be greater than 0"),
    ("+model.head.chanels=3", r"model\.head\.chanels is not an option of RegressionHead"),
    ("model.head.name=simcc +model.head.stride=abc", r"model\.head\.stride='abc' must be a whole number"),
    ("trainer.precision=17", r"trainer: .*Precision 17 is invalid"),
    ("+trainer.max_epoch=3", r"trainer\.max_epoch is not a lightning\.Trainer argument"),
    ("trainer.accelerator=cuda", r"trainer\.accelerator=cuda: no CUDA GPU"),
    ("model.backbone.name=resnet181", r"model\.backbone\.name='resnet181' is not a timm model"),
    ("data.transform.crop.box=faces", r"data\.transform\.crop\.box='faces' is not valid"),
    ("+experiment=synth_only_adapted posthoc_adapter.name=affinee", r"posthoc_adapter\.name='affinee' .*Did you mean 'affine'"),
    ("data=300w data.root=/nonexistent/300w", r"^data\.root=/nonexistent/300w: folder not found"),
    # a strategy's name only names it (any YAML file is a strategy): what a stage trains on is the choice
    ("strategy.stages.0.train_on=reall", r"strategy\.stages\.0\.train_on='reall' is not valid.*Did you mean 'real'"),
])
def test_typos_are_named_before_any_work(make_cfg, tmp_path, override, message):
    if torch.cuda.is_available() and "cuda" in override:
        pytest.skip("a GPU is present")
    cfg = make_cfg(override.split())
    with pytest.raises(ConfigError, match=message):
        check_train_config(cfg)
    with pytest.raises(ConfigError):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / ".hydra").exists()


@pytest.mark.parametrize(("override", "message"), [
    ("++schedule.lrr=0.1", r"schedule\.lrr is not a setting of train.*Did you mean schedule\.lr"),
    ("+data.real_budgett=10", r"data\.real_budgett is not a setting of train.*Did you mean data\.real_budget"),
    ("+data.transform.crop.szie=128", r"data\.transform\.crop\.szie .*Did you mean data\.transform\.crop\.size"),
    ("eval.flip=maybe", r"eval\.flip='maybe' must be true or false"),
    ("overwrite=1", r"overwrite=1 must be true or false"),
    ("trainer.val_every=5", r"trainer\.val_every is now schedule\.val_every: write schedule\.val_every=5"),
])
def test_forced_keys_must_exist_and_booleans_be_booleans(make_cfg, tmp_path, capsys, override, message):
    """Hydra's + and ++ add any key: a misspelt one changed nothing and the run went on with exit status 0."""
    with pytest.raises(ConfigError, match=message):
        make_cfg([override])
    run = tmp_path / "cli_run"
    assert run_cli("train", [override, f"hydra.run.dir={run}", "logger=none"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err and not run.exists()


def test_a_misspelt_key_in_a_users_experiment_file_is_named(tmp_path, capsys):
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - synth_pretrain_ft50\nschedule:\n  lrr: 0.1\n")
    run = tmp_path / "run"
    assert run_cli("train", ["--config-dir", str(tmp_path / "my_conf"), "+experiment=mine", f"hydra.run.dir={run}"]) == 2
    err = capsys.readouterr().err
    assert "experiment/mine.yaml: schedule.lrr is not a setting of train" in err and "Did you mean schedule.lr" in err
    assert not run.exists()


def test_component_options_and_known_keys_still_pass(make_cfg):
    cfg = make_cfg(["++data.synthetic.n=40", "+callbacks.extra._target_=lightning.pytorch.callbacks.Timer",
                    "eval.flip=true", "model.head.name=heatmap", "+model.head.decode=argmax"])
    assert cfg.data.synthetic.n == 40 and cfg.eval.flip is True and cfg.model.head.decode == "argmax"


def test_pretrained_without_hub_fails_fast(make_cfg, monkeypatch):
    import landmark_lab.cli.checks as cc

    monkeypatch.setattr(cc, "hub_reachable", lambda *a, **k: False)
    cfg = make_cfg(["model.backbone.pretrained=true"])
    with pytest.raises(ConfigError, match="pretrained=true needs the model hub"):
        check_train_config(cfg)


def test_evaluate_device_and_missing_value_are_clear(make_cfg, tmp_path):
    ckpt = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    if not torch.cuda.is_available():
        cfg = make_cfg([f"ckpt_path={ckpt}", "device=cuda"], name="evaluate", run_dir=tmp_path / "ev")
        with pytest.raises(ConfigError, match="device=cuda: no CUDA GPU"):
            run_evaluate(cfg)
    cfg = make_cfg([f"ckpt_path={ckpt}"], name="evaluate", run_dir=tmp_path / "ev")
    with pytest.raises(DataError, match=r"x\.ckpt: not a landmark_lab checkpoint"):
        run_evaluate(cfg)
    with open_dict(cfg):
        cfg.ckpt_path = "???"
    with pytest.raises(ConfigError, match="ckpt_path is required"):
        run_evaluate(cfg)
    assert not (tmp_path / "ev").exists()


def test_checkpoints_the_project_writes_load_pickle_free(tmp_path):
    from landmark_lab.models.checkpoint import load_landmark_model, save_model
    from landmark_lab.models.module import LandmarkModule

    m = LandmarkModule(backbone={"name": "resnet18"}, head={"name": "regression"}, adapter={"name": "affine"},
                       loss={"name": "wing"}, optimizer={"name": "adamw"}, scheduler={"name": "cosine"},
                       crop={"size": 64, "scale": 1.25})
    path = save_model(m, tmp_path / "a" / "adapted.ckpt")
    assert set(read_checkpoint(path)) >= {"state_dict", "hyper_parameters"}
    again = load_landmark_model(path)
    assert again.hparams.crop == {"size": 64, "scale": 1.25}
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(again(x)[1], m.eval()(x)[1])


def test_csv_tables_are_replaced_whole_or_not_at_all(tmp_path):
    # results.csv of report, recipe table and GPU summary: a failure part-way keeps the previous table intact.
    path = tmp_path / "results.csv"
    write_csv_atomic(path, [{"a": 1, "b": 2}], ["a", "b"])
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_csv_atomic(path, [{"a": 3, "b": 4}, {"a": 5, "c": 6}], ["a", "b"])  # second row has a stray field
    assert path.read_bytes() == before and list(csv.DictReader(path.open())) == [{"a": "1", "b": "2"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no half-written temporary left
    write_csv_atomic(path, [{"a": 3, "b": 4, "c": 5}], ["a", "b"], extrasaction="ignore")
    assert list(csv.DictReader(path.open())) == [{"a": "3", "b": "4"}]


def test_config_changes_name_result_settings_only():
    from landmark_lab.utils.run import config_changes

    stages = [{"name": "pretrain", "lr": 1e-3, "max_steps": None}, {"name": "finetune", "lr": 3e-4, "max_steps": None}]
    recorded = {"seed": 0, "paths": {"log_dir": "a"}, "data": {"root": "a", "num_workers": 2, "real_budget": 16},
                "model": {"size": [1, 2]}, "strategy": {"stages": stages},
                "schedule": {"finetune_lr": 3e-4, "val_every": 300}}
    # where files live, loader settings, sections outside the result and the schedule's inputs to the stages do not
    # count (the stages are compared as they resolved them); values compare as recorded (inf as null, tuples as lists)
    same = {"seed": 0, "paths": {"log_dir": "b"}, "data": {"root": "b", "num_workers": 0, "real_budget": 16},
            "model": {"size": (1, 2)}, "strategy": {"stages": [{**st, "max_steps": float("inf")} for st in stages]},
            "schedule": {"finetune_lr": 1e-3, "val_every": 300}}
    assert config_changes(recorded, same) == []
    other = {**same, "seed": 1, "data": {**same["data"], "real_budget": 32}, "schedule": {"val_every": 100},
             "strategy": {"stages": [stages[0], {**stages[1], "lr": 1e-3}]}}
    assert config_changes(recorded, other) == ["data.real_budget: 16 -> 32", "schedule.val_every: 300 -> 100",
                                               "seed: 0 -> 1", "strategy.stages.1.lr: 0.0003 -> 0.001"]
    # a setting added later (self_train.point_drop) is no difference in a run recorded before it while it keeps the
    # value that does what that run did
    old_self_train = {**recorded, "self_train": {"keep": 0.8}}
    assert config_changes(old_self_train, {**same, "self_train": {"keep": 0.8, "point_drop": 0.0}}) == []
    assert config_changes(old_self_train, {**same, "self_train": {"keep": 0.5, "point_drop": 0.1}}) == [
        "self_train.keep: 0.8 -> 0.5", "self_train.point_drop: (unset) -> 0.1"]
