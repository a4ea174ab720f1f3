import json
import shutil

import cv2
import numpy as np
import pytest

from landmark_lab.data.folder import LandmarkFolder, read_image
from landmark_lab.data.pts import write_pts
from landmark_lab.data.w300 import load_split, resolve_split
from landmark_lab.datamodules.sources import open_sources
from landmark_lab.errors import ConfigError, DataError

from .conftest import W300, needs_300w


def _face_folder(tmp_path, n=3):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((20, 30, 3), 40 * i, np.uint8))
        write_pts(tmp_path / f"f{i}.pts", np.random.default_rng(i).uniform(0, 19, (68, 2)))
    return tmp_path


def test_folder_reader_lazy_and_typed(tmp_path):
    folder = LandmarkFolder(_face_folder(tmp_path / "faces"), "real", "2d")
    assert len(folder) == 3 and folder.ids[0] == "faces/f0"
    s = folder.load(2)
    assert s.image.shape == (20, 30, 3) and s.image.dtype == np.uint8
    assert s.landmarks.shape == (68, 2) and s.landmarks.dtype == np.float32
    assert (s.domain, s.convention) == ("real", "2d")


def test_corrupt_image_names_file(tmp_path):
    folder = _face_folder(tmp_path / "faces")
    (folder / "f1.png").write_bytes(b"not a png")
    # found when the folder is indexed, before any training step, not when the image is first decoded
    with pytest.raises(DataError, match=r"f1\.png: cannot open image"):
        LandmarkFolder(folder, "real", "2d")
    reader = LandmarkFolder(folder, "real", "2d", skip_bad=True)
    assert len(reader) == 2 and len(reader.skipped) == 1


def test_sixteen_bit_image_is_scaled(tmp_path):
    img = np.full((4, 4, 3), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    assert read_image(tmp_path / "a.png").max() == 255


def test_empty_folder_is_clear(tmp_path):
    with pytest.raises(DataError, match=r"no labelled image found"):
        LandmarkFolder(tmp_path, "real", "2d")


def test_missing_root_and_split(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        resolve_split(tmp_path / "nope", "train")
    _face_folder(tmp_path / "afw")
    with pytest.raises(DataError) as exc:
        resolve_split(tmp_path, "train")
    msg = str(exc.value)
    assert "['helen/trainset', 'lfpw/trainset'] are missing" in msg and "Found: ['afw']" in msg
    with pytest.raises(DataError, match="unknown 300-W split 'tset'"):
        resolve_split(tmp_path, "tset")
    assert [p.name for p in resolve_split(tmp_path, ["afw"])] == ["afw"]


def test_split_folder_outside_the_root_is_given_by_its_path(tmp_path):
    """A held-back test folder elsewhere (data.split=[/path/to/test]) is read in place, named by its path."""
    _face_folder(tmp_path / "300w" / "afw")
    held = _face_folder(tmp_path / "elsewhere" / "my_test", n=2)
    folders = load_split(tmp_path / "300w", ["afw", str(held)])
    assert [f.name for f in folders] == ["afw", str(held)] and [len(f) for f in folders] == [3, 2]
    with pytest.raises(DataError, match=r"missing.*full path, e\.g\. data\.split=\[/path/to/my_test\]"):
        resolve_split(tmp_path / "300w", [str(tmp_path / "nowhere")])


@needs_300w
def test_shared_300w_train_split_counts_and_anatomy():
    folders = load_split(W300, "train")
    assert [f.name for f in folders] == ["afw", "helen/trainset", "lfpw/trainset"]
    assert sum(len(f) for f in folders) == 2012
    lm = np.concatenate([f.landmarks for f in folders])
    # Subject's right eye (36) is on the image left of the left eye's outer corner (45); nose tip below the eyes.
    assert (lm[:, 36, 0] < lm[:, 45, 0]).mean() > 0.99
    assert (lm[:, 30, 1] > lm[:, [36, 45], 1].mean(1)).mean() > 0.95
    s = folders[0].load(0)
    h, w = s.image.shape[:2]
    assert (s.landmarks >= -1).all() and (s.landmarks[:, 0] <= w) .all() and (s.landmarks[:, 1] <= h).all()


@needs_300w
def test_training_on_the_test_folder_is_refused():
    """All shared photos as training (data.train_split=train) with the recipe's test folder: the overlap is named."""
    from landmark_lab.datamodules.sources import check_held_out

    test = load_split(W300, ["lfpw/trainset"])
    with pytest.raises(ConfigError, match=r"shares 805 image\(s\).*lfpw/trainset/"):
        check_held_out(load_split(W300, "train"), test)
    check_held_out(load_split(W300, ["afw", "helen/trainset"]), test)


@needs_300w
def test_shared_300w_has_no_test_split_and_says_so():
    with pytest.raises(DataError, match=r"'common' needs.*missing.*Found: \['afw', 'helen/trainset', 'lfpw/trainset'\]"):
        resolve_split(W300, "common")


@needs_300w
def test_one_bad_pts_in_a_copy_of_300w(tmp_path):
    src = next((W300 / "afw").glob("*.pts"))
    shutil.copy(src.with_suffix(".jpg"), tmp_path / "x.jpg")
    lines = src.read_text().splitlines()
    (tmp_path / "x.pts").write_text("\n".join(lines[:-2] + lines[-1:]))  # drop one point
    with pytest.raises(DataError, match=r"x\.pts: header says n_points: 68 but the file lists 67"):
        LandmarkFolder(tmp_path, "real", "2d")


def _table_folder(tmp_path, n=3):
    """n faces as PNGs + their 0-based landmarks, for the CSV/JSON table reader."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(5, 55, (n, 68, 2)).astype(np.float32)
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((60, 60, 3), 40 * i, np.uint8))
    return pts


def test_csv_and_json_tables_read_the_same_faces(tmp_path):
    pts = _table_folder(tmp_path)
    header = "image," + ",".join(f"x{k},y{k}" for k in range(68))
    rows = [f"f{i}.png," + ",".join(f"{v:.4f}" for v in pts[i].reshape(-1)) for i in range(3)]
    (tmp_path / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    (tmp_path / "labels.json").write_text(json.dumps({f"f{i}.png": pts[i].tolist() for i in range(3)}))
    (tmp_path / "list.json").write_text(json.dumps([{"image": f"f{i}.png", "landmarks": pts[i].tolist()} for i in range(3)]))
    for labels in ("labels.csv", "labels.json", "list.json"):
        reader = LandmarkFolder(tmp_path, "synthetic", "3d", labels=labels)
        assert len(reader) == 3
        np.testing.assert_allclose(reader.landmarks, pts, atol=1e-3)
        s = reader.load(2)
        assert s.image.shape == (60, 60, 3) and s.convention == "3d"
    one = LandmarkFolder(tmp_path, "real", "2d", labels="labels.csv", one_based=True)
    np.testing.assert_allclose(one.landmarks, pts - 1, atol=1e-3)


def test_bad_table_rows_are_named_or_skipped(tmp_path):
    pts = _table_folder(tmp_path)
    header = "image," + ",".join(f"x{k},y{k}" for k in range(68))
    good = "f0.png," + ",".join(f"{v:.2f}" for v in pts[0].reshape(-1))
    short = "f1.png," + ",".join(f"{v:.2f}" for v in pts[1].reshape(-1)[:-2])  # 67 points
    missing = "nope.png," + ",".join(f"{v:.2f}" for v in pts[2].reshape(-1))
    (tmp_path / "l.csv").write_text("\n".join([header, good, short, missing]))
    with pytest.raises(DataError, match=r"l\.csv, line 3: has 134 coordinates, expected 68 \[x, y\] pairs or 136.*skip_bad=true"):
        LandmarkFolder(tmp_path, "real", "2d", labels="l.csv")
    reader = LandmarkFolder(tmp_path, "real", "2d", labels="l.csv", skip_bad=True)
    assert len(reader) == 1 and len(reader.skipped) == 2 and "nope.png not found" in reader.skipped[1]
    (tmp_path / "h.csv").write_text(good)
    with pytest.raises(DataError, match="header row whose first column is 'image'"):
        LandmarkFolder(tmp_path, "real", "2d", labels="h.csv")
    with pytest.raises(DataError, match="landmark table not found"):
        LandmarkFolder(tmp_path, "real", "2d", labels="absent.csv")


def test_folder_and_multi_sources_from_config(tmp_path):
    pts = _table_folder(tmp_path)
    (tmp_path / "l.json").write_text(json.dumps({f"f{i}.png": pts[i].tolist() for i in range(3)}))
    spec = {"kind": "folder", "root": str(tmp_path), "labels": "l.json"}
    (reader,) = open_sources(spec, "synthetic", "train")
    assert reader.domain == "synthetic" and reader.convention == "3d" and len(reader) == 3
    both = open_sources({"kind": "multi", "sources": {"a": spec, "b": spec}}, "synthetic", "train")
    assert [len(r) for r in both] == [3, 3]
    with pytest.raises(ConfigError, match=r"data\.real\.test_root is not set"):
        open_sources({**spec, "test_root": None}, "real", "test")
    with pytest.raises(ConfigError, match=r"needs data\.synthetic\.sources"):
        open_sources({"kind": "multi"}, "synthetic", "train")


def test_a_sources_mirror_shift_mirrors_its_doubled_faces(tmp_path):
    """``mirror_shift`` reaches every reader of a source, and a flip-doubled item is labelled with it."""
    from landmark_lab.datamodules.sources import FaceDataset
    from landmark_lab.datamodules.splits import Item
    from landmark_lab.landmarks import flip_landmarks

    pts = _table_folder(tmp_path)
    (tmp_path / "l.json").write_text(json.dumps({f"f{i}.png": pts[i].tolist() for i in range(3)}))
    spec = {"kind": "folder", "root": str(tmp_path), "labels": "l.json", "mirror_shift": 1.0}
    (reader,) = open_sources(spec, "real", "train")
    assert reader.mirror_shift == 1.0
    both = open_sources({"kind": "multi", "sources": {"a": spec, "b": {**spec, "mirror_shift": 0.0}}}, "real", "train")
    assert [r.mirror_shift for r in both] == [1.0, 0.0]
    ds = FaceDataset([reader], [Item(0, 0), Item(0, 0, True)], transform=None)
    original, mirrored = ds.sample(0), ds.sample(1)
    width = original.image.shape[1]
    assert np.allclose(mirrored.landmarks, flip_landmarks(original.landmarks, width, 1.0))
    assert mirrored.meta["mirror_shift"] == 1.0  # the training flip of its crop uses it too
    for bad in ("one", float("nan"), 40):
        with pytest.raises(ConfigError, match=r"data\.real\.mirror_shift=.* must be a number of pixels"):
            open_sources({**spec, "mirror_shift": bad}, "real", "train")
