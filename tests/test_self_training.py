"""Unlabelled photos: the unlabelled sources, the self-training strategies, the pseudo-label cache and analysis."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from landmark_lab.cli.train import train
from landmark_lab.data.procedural.generate import ensure_set
from landmark_lab.data.unlabelled import UnlabelledFolder
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.training.self_training import PseudoLabels

FAST = ["schedule.synthetic_steps=6", "schedule.real_steps=6", "schedule.finetune_steps=6", "schedule.self_train_steps=6",
        "schedule.val_every=3", "data.real_budget=16"]


def _folders(tmp_path: Path, cache: Path) -> tuple[Path, Path]:
    """A copy of the tiny procedural real faces as a labelled training folder and a test folder of one's own."""
    pool, test = tmp_path / "pool", tmp_path / "test"
    shutil.copytree(ensure_set(cache, "real", "train", 70, 128, 0, workers=1, progress=False), pool,
                    ignore=shutil.ignore_patterns("info.json"))
    shutil.copytree(ensure_set(cache, "real", "test", 16, 128, 0, workers=1, progress=False), test,
                    ignore=shutil.ignore_patterns("info.json"))
    return pool, test


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_pool_rest_never_reads_the_hidden_labels(make_cfg, cache_dir, tmp_path):
    """Removing or corrupting the label files of the unlabelled photos changes nothing; a budget label still counts."""
    pool, test = _folders(tmp_path, cache_dir)
    common = ["strategy=self_train_real", "data/real=folder", f"data.real.root={pool}", f"data.real.test_root={test}",
              "data/unlabelled=pool_rest", *FAST]
    first = train(make_cfg([*common, f"self_train.cache_dir={tmp_path / 'pc1'}"], run_dir=tmp_path / "a"))
    m1 = _metrics(tmp_path / "a")
    student = m1["stages"][-1]
    assert student["name"] == "student" and student["pseudo_labels"]["photos"] == m1["data"]["unlabelled"] > 0
    labels, kept, _ = PseudoLabels.load(tmp_path / "a" / student["pseudo_labels"]["file"])
    assert kept.sum() == student["pseudo_labels"]["kept"] == round(0.8 * labels.found.sum())
    hidden = [p.with_suffix(".pts") for p in labels.images]
    assert hidden and all(p.parent == pool for p in hidden)
    for i, p in enumerate(hidden):  # half removed, half made unreadable
        p.unlink() if i % 2 else p.write_text("version: 1\nn_points: 68\n{\nnot a number\n}\n")
    second = train(make_cfg([*common, f"self_train.cache_dir={tmp_path / 'pc2'}"], run_dir=tmp_path / "b"))
    m2 = _metrics(tmp_path / "b")
    assert second == first and m2["test"]["metrics"]["nme_io"] == m1["test"]["metrics"]["nme_io"]
    again, _, _ = PseudoLabels.load(tmp_path / "b" / m2["stages"][-1]["pseudo_labels"]["file"])
    np.testing.assert_array_equal(again.landmarks, labels.landmarks)
    # The crop cache (data.cache=crops) cuts each photo around its labels: the pool stays uncached, not read (the
    # test folder is cached: its crops, cut twice, move the test NME in the fifth decimal)
    third = train(make_cfg([*common, "data.cache=crops", f"data.cache_dir={tmp_path / 'crops'}",
                            f"self_train.cache_dir={tmp_path / 'pc4'}"], run_dir=tmp_path / "d"))
    assert third == first
    assert _metrics(tmp_path / "d")["test"]["metrics"]["nme_io"] == pytest.approx(m1["test"]["metrics"]["nme_io"], abs=1e-4)
    assert [m.parent.name.split("_")[0] for m in (tmp_path / "crops").glob("*/meta.json")] == ["test"]
    # The budget's labels are read: one corrupted there is named before training.
    used = {p.stem for p in labels.images}
    budget_pts = next(p for p in sorted(pool.glob("*.pts")) if p.stem not in used)
    budget_pts.write_text("garbage")
    with pytest.raises(DataError, match=budget_pts.name):
        train(make_cfg([*common, f"self_train.cache_dir={tmp_path / 'pc3'}"], run_dir=tmp_path / "c"))


def test_self_train_ft50_rounds_cache_and_analysis(make_cfg, cache_dir, tmp_path):
    """The pre-trained teacher labels the pool; two rounds; a second run reuses the first round's predictions; the
    analysis grades them against the hidden labels."""
    from omegaconf import OmegaConf

    from landmark_lab.analysis.pseudo_labels import pseudo

    overrides = ["+experiment=self_train_ft50", *FAST, "self_train.rounds=2", "self_train.confidence=both",
                 "self_train.point_drop=0.1", f"self_train.cache_dir={tmp_path / 'pc'}"]
    train(make_cfg(overrides, run_dir=tmp_path / "a"))
    m = _metrics(tmp_path / "a")
    assert [s["name"] for s in m["stages"]] == ["pretrain", "finetune", "student", "student2"]
    assert m["strategy"] == "self_train" and m["real_budget"] == 16
    rounds = [s["pseudo_labels"] for s in m["stages"][2:]]
    assert [r["cache_hit"] for r in rounds] == [False, False] and rounds[0]["rule"] == "both"
    # a tenth of the kept photos' points (those the teacher's mirrored crop disagrees on most) leave the loss
    assert [r["points_dropped"] for r in rounds] == [round(0.1 * 68 * r["kept"]) for r in rounds]
    train(make_cfg(overrides, run_dir=tmp_path / "b"))
    assert _metrics(tmp_path / "b")["stages"][2]["pseudo_labels"]["cache_hit"] is True
    out = tmp_path / "analysis"
    result = pseudo(OmegaConf.create({"run_dir": str(tmp_path / "a")}), out)
    assert set(result["rounds"]) == {"student", "student2"}
    g = result["rounds"]["student"]
    assert g["kept"] == rounds[0]["kept"] and 0 < g["nme_all"] < 1 and set(g["rules"]) == {"peak", "flip", "both"}
    assert (out / "pseudo.png").stat().st_size > 0 and "student2" in (out / "pseudo.md").read_text()
    drops = g["point_drop"]  # what point_drop leaves, graded per point against the hidden labels
    assert set(drops) == {"0.0", "0.05", "0.1", "0.2", "spearman_point_gap"} and drops["0.0"]["dropped_points"] is None
    assert drops["0.1"]["kept_points"] > 0 and "Per point" in (out / "pseudo.md").read_text()


def test_the_pseudo_label_report_names_the_run_by_its_path_under_sweeps(tmp_path):
    from landmark_lab.analysis.pseudo_labels import run_label

    run = tmp_path / "logs" / "sweeps" / "unlabelled_300w" / "self_train" / "n50" / "seed0"
    assert run_label(run) == "unlabelled_300w/self_train/n50/seed0"
    assert run_label(tmp_path / "a" / "b" / "c" / "seed1") == "b/c/seed1"  # no sweeps folder: the last three parts


def test_self_train_zero_and_a_teacher_checkpoint(make_cfg, cache_dir, tmp_path):
    """Zero labelled images: the synthetic-only model teaches; a checkpoint path can be the teacher instead."""
    train(make_cfg(["+experiment=self_train_zero", *FAST[:-1], f"self_train.cache_dir={tmp_path / 'pc'}",
                    "self_train.adabn=true"], run_dir=tmp_path / "zero"))
    m = _metrics(tmp_path / "zero")
    assert m["strategy"] == "self_train_zero" and m["data"]["real_train"] == 0
    made = m["stages"][-1]["pseudo_labels"]
    assert made["photos"] == m["data"]["real_pool"]  # the whole pool, none labelled
    assert made["adabn_crops"] == made["found"] > 0  # BatchNorm statistics re-estimated on every photo with a face
    teacher = Path(m["stages"][0]["cache_file"])  # the synthetic-only model, kept by the pre-training cache
    train(make_cfg(["+experiment=self_train_zero", *FAST[:-1], f"self_train.teacher={teacher}",
                    f"self_train.cache_dir={tmp_path / 'pc'}", "self_train.adabn=true"], run_dir=tmp_path / "given"))
    given = _metrics(tmp_path / "given")
    assert [s["name"] for s in given["stages"]] == ["student"]
    assert given["stages"][0]["pseudo_labels"]["teacher"] == str(teacher)
    assert given["stages"][0]["pseudo_labels"]["cache_hit"] is True  # the same weights taught the first run


@pytest.mark.parametrize("overrides, message", [
    (["strategy=self_train"], "trains on unlabelled photos: add data/unlabelled=folder"),
    (["strategy=real_only", "data/unlabelled=pool_rest"], "trains on no unlabelled photo"),
    (["strategy=real_only", "data.real_budget=0"], "0 only for a strategy that trains on no labelled real image"),
    (["strategy=self_train", "data/unlabelled=folder"], "data.unlabelled.root is required"),
    (["strategy=self_train", "data/unlabelled=pool_rest", "self_train.keep=0"], "self_train.keep=0 must be greater"),
    (["strategy=self_train", "data/unlabelled=pool_rest", "self_train.keep=0.9", "self_train.labelled_share=2"],
     "self_train.labelled_share=2 must be at most 1"),
    (["strategy=self_train", "data/unlabelled=pool_rest", "self_train.rounds=0"], "self_train.rounds=0 must be at least 1"),
    (["strategy=self_train", "data/unlabelled=pool_rest", "self_train.confidence=vote"],
     "self_train.confidence='vote' is not valid"),
    (["strategy=self_train", "data/unlabelled=pool_rest", "self_train.point_drop=1"],
     "self_train.point_drop=1 would leave every pseudo-labelled point out"),
    (["strategy=self_train", "data/unlabelled=pool_rest", "self_train.point_drop=-0.1"],
     "self_train.point_drop=-0.1 must be at least 0"),
    (["strategy=self_train_real", "data/unlabelled=pool_rest", "self_train.teacher=/nonexistent.ckpt"],
     "self_train.teacher='/nonexistent.ckpt': checkpoint not found"),
])
def test_self_train_settings_are_checked(make_cfg, tmp_path, overrides, message):
    with pytest.raises((ConfigError, DataError), match=re.escape(message)):
        train(make_cfg([*FAST, *overrides], run_dir=tmp_path / "run"))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_unlabelled_folder_reads_nested_photos_and_names_bad_ones(tmp_path):
    import cv2

    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    (root / ".thumbs").mkdir()
    img = np.full((40, 50, 3), 120, np.uint8)
    for name in ("a.jpg", "trip/b.png", "trip/day2/c.JPG", ".thumbs/hidden.jpg"):
        cv2.imwrite(str(root / name), img)
    (root / "notes.txt").write_text("not a photo")
    folder = UnlabelledFolder(root)
    assert [p.relative_to(root).as_posix() for p in folder.images] == ["a.jpg", "trip/b.png", "trip/day2/c.JPG"]
    assert folder.ids[1] == "photos/trip/b"
    (root / "trip" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"broken\.jpg"):
        UnlabelledFolder(root)
    skipping = UnlabelledFolder(root, skip_bad=True)
    assert len(skipping) == 3 and len(skipping.skipped) == 1
    with pytest.raises(DataError, match="folder of unlabelled photos not found"):
        UnlabelledFolder(tmp_path / "nowhere")


def test_a_strategy_is_one_yaml_file(tmp_path, cache_dir):
    """A strategy of the user's own, named by itself, from the stage kinds (train_on), in a config folder outside the
    package: synthetic pre-training, then batches a quarter synthetic and three quarters real (validated on real),
    reported under its own name; what the stages leave out (epochs, min/max steps) comes from stage_defaults."""
    from .conftest import run_cli, tiny_overrides

    mine = tmp_path / "my_conf" / "strategy"
    mine.mkdir(parents=True)
    stage = "    steps: 4\n    lr: 1.0e-3\n"
    (mine / "warm_start.yaml").write_text(
        "name: warm_start\n"
        'report:\n  warm_start: {order: 15, label: "my warm start", short: "warm start + {n} real"}\n'
        "stages:\n  - name: synthetic\n    train_on: synthetic\n" + stage
        + "  - name: mixed\n    train_on: mixed\n    synth_share: 0.25\n" + stage)
    run = tmp_path / "run"
    argv = ["--config-dir", str(tmp_path / "my_conf"), "strategy=warm_start", "data.real_budget=12",
            "schedule.val_every=2", "schedule.min_steps=3", *tiny_overrides(cache_dir), f"hydra.run.dir={run}"]
    assert run_cli("train", argv) == 0
    m = _metrics(run)
    assert m["strategy"] == "warm_start" and [s["name"] for s in m["stages"]] == ["synthetic", "mixed"]
    assert [s["steps"] for s in m["stages"]] == [4, 4] and m["data"]["real_train"] == 12
    assert m["data"]["synthetic_train"] > 0 and "unlabelled" not in m["data"]
    recorded = m["config"]["strategy"]["stages"]
    assert [st["min_steps"] for st in recorded] == [3, 3] and recorded[1]["synth_share"] == 0.25
    # ... and reported from the same file: its label, headline name and place (after real_only, before pre-training)
    from landmark_lab.reports.rows import collect, ordered, strategy_label, strategy_short

    rows, _ = collect(tmp_path)
    assert [r["strategy"] for r in rows] == ["warm_start"] and strategy_label("warm_start") == "my warm start"
    assert strategy_short("warm_start").format(n=12) == "warm start + 12 real"
    assert ordered(["pretrain_finetune", "warm_start", "real_only"]) == ["real_only", "warm_start", "pretrain_finetune"]


def _labels(n: int = 4, gaps: np.ndarray | None = None) -> PseudoLabels:
    rng = np.random.default_rng(0)
    return PseudoLabels([Path(f"/photos/{i}.jpg") for i in range(n)], [f"p{i}" for i in range(n)],
                        rng.uniform(0, 100, (n, 68, 2)).astype(np.float32), rng.uniform(size=n), rng.uniform(size=n),
                        np.ones(n, dtype=bool), gaps)


def test_point_weights_leave_out_the_points_with_the_largest_flip_gap_of_the_kept_photos(tmp_path):
    gaps = np.random.default_rng(1).uniform(size=(4, 68)).astype(np.float32)
    gaps[3] = 10.0  # the dropped photo's points: the largest, but not kept, so never counted
    labels = _labels(4, gaps)
    kept = np.array([True, True, True, False])
    w = labels.point_weights(kept, 0.1)
    assert w.shape == (4, 68) and set(np.unique(w)) == {0.0, 1.0}
    assert (w[3] == 1).all() and (w[:3] == 0).sum() == round(0.1 * 3 * 68)
    assert gaps[:3][w[:3] == 0].min() >= gaps[:3][w[:3] == 1].max()  # the largest gaps go
    assert (labels.point_weights(kept, 0.0) == 1).all()
    with pytest.raises(ConfigError, match=r"point_drop=1\.0"):
        labels.point_weights(kept, 1.0)
    # the per-point gaps travel with the file; a file from before them loads, and asks to predict again to drop points
    again, _, _ = PseudoLabels.load(labels.save(tmp_path / "new.npz", kept))
    np.testing.assert_array_equal(again.point_gap, gaps)
    old, _, _ = PseudoLabels.load(_labels(4).save(tmp_path / "old.npz", kept))
    assert old.point_gap is None and (old.point_weights(kept, 0.0) == 1).all()
    with pytest.raises(DataError, match="no per-point flip gaps"):
        old.point_weights(kept, 0.1)
    unflipped = _labels(4, np.full((4, 68), np.inf, np.float32))  # predicted with self_train.flip=false
    with pytest.raises(ConfigError, match=r"self_train\.flip=true"):
        unflipped.point_weights(kept, 0.1)


def test_a_pseudo_label_point_weight_follows_its_point_through_every_mirror(tmp_path):
    """Mirrored items and the random training flip reorder the weights with the points (left eye <-> right eye)."""
    import cv2

    from landmark_lab.data.unlabelled import PseudoLabelled
    from landmark_lab.datamodules.sources import FaceDataset
    from landmark_lab.datamodules.splits import Item
    from landmark_lab.landmarks import FLIP_68
    from landmark_lab.transforms.pipeline import FaceTransform

    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), np.full((80, 80, 3), 90, np.uint8))
    pts = np.random.default_rng(0).uniform(20, 60, (1, 68, 2)).astype(np.float32)
    weights = np.ones((1, 68), np.float32)
    weights[0, 36] = 0.0  # one outer eye corner left out
    source = PseudoLabelled([photo], pts, ["a"], point_weights=weights)
    crop = {"size": 32, "scale": 1.25, "box": "landmarks", "shift_jitter": 0.0, "zoom_jitter": 0.0}
    plain = FaceDataset([source], [Item(0, 0)], FaceTransform(crop, train=False))[0]
    assert plain["point_weight"].tolist() == weights[0].tolist()
    mirrored = FaceDataset([source], [Item(0, 0, flip=True)], FaceTransform(crop, train=False))[0]
    assert mirrored["point_weight"][int(FLIP_68[36])] == 0 and int(mirrored["point_weight"].sum()) == 67
    flipped = FaceDataset([source], [Item(0, 0)], FaceTransform({**crop}, train=True, flip_p=1.0))[0]
    assert flipped["point_weight"].tolist() == mirrored["point_weight"].tolist()
    unweighted = FaceDataset([PseudoLabelled([photo], pts, ["a"])], [Item(0, 0)], FaceTransform(crop, train=False))[0]
    assert (unweighted["point_weight"] == 1).all()
