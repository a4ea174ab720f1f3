"""The pre-cropped data cache: cached and uncached samples agree, entries are keyed and rebuilt, training uses it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from landmark_lab.cli.checks import check_train_config
from landmark_lab.cli.train import train
from landmark_lab.datamodules.crop_cache import cache_geometry, cached
from landmark_lab.datamodules.sources import open_sources, prepare
from landmark_lab.errors import ConfigError
from landmark_lab.transforms.pipeline import FaceTransform

CROP = {"size": 64, "scale": 1.25, "box": "landmarks", "shift_jitter": 0.03, "zoom_jitter": 0.05}


@pytest.fixture
def source(make_cfg):
    cfg = make_cfg(["+experiment=real_only"])
    spec = dict(cfg.data.real)
    prepare(spec, "real", progress=False)
    return open_sources(spec, "real", "test", progress=False)[0]


def test_cached_and_uncached_samples_match(source, tmp_path):
    cache = cached(source, CROP, tmp_path / "crops", margin=1.6, workers=2, progress=False)
    side, _ = cache_geometry(CROP, 1.6)
    assert cache.pixels.shape == (len(source), side, side, 3)
    tf = FaceTransform(CROP, train=False)
    for i in range(len(source)):
        a, b = tf(source.load(i)), tf(cache.load(i))
        assert np.abs(a["landmarks"].numpy() - b["landmarks"].numpy()).max() < 1e-3  # crop pixels
        # pixels are interpolated twice instead of once: close, not identical
        assert np.abs(a["image"].numpy() - b["image"].numpy()).mean() < 0.15
        # the crop matrix maps the photo either way (a flip average's shift and evaluate's offset scale by it)
        assert np.abs(a["crop_matrix"].numpy() - b["crop_matrix"].numpy()).max() < 1e-3


def test_a_cached_face_is_mirrored_with_its_sources_shift(source, tmp_path):
    """flip_double copies and training flips of a cached face carry the labels' mirror shift as the photo's do."""
    from landmark_lab.datamodules.sources import FaceDataset
    from landmark_lab.datamodules.splits import Item

    source.mirror_shift = 1.0  # as open_sources sets it from data.real.mirror_shift
    cache = cached(source, CROP, tmp_path / "crops", margin=1.6, workers=1, progress=False)
    assert cache.mirror_shift == 1.0
    still = {**CROP, "shift_jitter": 0.0, "zoom_jitter": 0.0}
    for flip_p in (0.0, 1.0):  # a mirrored copy (flip_double), then also flipped back by the training flip
        tf = FaceTransform(still, train=True, flip_p=flip_p, seed=0)
        a = FaceDataset([source], [Item(0, 2, True)], tf)[0]
        b = FaceDataset([cache], [Item(0, 2, True)], tf)[0]
        assert np.abs(a["landmarks"].numpy() - b["landmarks"].numpy()).max() < 1e-3


def test_entries_are_keyed_reused_and_rebuilt(source, tmp_path):
    first = cached(source, CROP, tmp_path / "crops", progress=False)
    again = cached(source, CROP, tmp_path / "crops", progress=False)
    assert again.folder == first.folder
    assert json.loads((first.folder / "meta.json").read_text())["n"] == len(source)
    bigger = cached(source, {**CROP, "size": 96}, tmp_path / "crops", progress=False)
    assert bigger.folder != first.folder  # crop settings are part of the key
    st = os.stat(source.images[0])
    os.utime(source.images[0], ns=(1, 1))  # a changed file: a new entry, never a stale one
    try:
        assert cached(source, CROP, tmp_path / "crops", progress=False).folder != first.folder
    finally:
        os.utime(source.images[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ConfigError, match=r"crop\.box=landmarks"):
        cached(source, {**CROP, "box": "image"}, tmp_path / "crops", progress=False)


def test_training_from_the_crop_cache(make_cfg, tmp_path):
    cfg = make_cfg(["+experiment=synth_pretrain_ft50", "data.cache=crops", f"data.cache_dir={tmp_path / 'crops'}",
                    "data.real_budget=16", "trainer.fast_dev_run=true"])
    train(cfg)
    test = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["test"]
    assert test["metrics"]["count"] > 0
    # every test face's error, for a report's bootstrap over test faces: they average to the NME
    assert len(test["per_face_nme_io"]) == test["metrics"]["count"]
    assert np.mean(test["per_face_nme_io"]) == pytest.approx(test["metrics"]["nme_io"], abs=1e-5)
    assert len(list((tmp_path / "crops").glob("*/meta.json"))) >= 3  # synthetic, real train, real test
    bad = make_cfg(["data.cache=crops", "data.crop_imitation.enabled=true"])
    with pytest.raises(ConfigError, match="crop_imitation"):
        check_train_config(bad)


@pytest.mark.parametrize("damage", ["zeroed", "truncated", "deleted", "object array", "short"])
def test_a_damaged_entry_is_found_when_opened_and_rebuilt(source, tmp_path, damage, caplog):
    first = cached(source, CROP, tmp_path / "crops", progress=False)
    good = np.array(first.pixels)
    del first
    folder = next(p for p in (tmp_path / "crops").iterdir() if p.is_dir())
    images = folder / "images.npy"
    if damage == "zeroed":
        arr = np.load(images, mmap_mode="r+")
        arr[:] = 0
        arr.flush()
        del arr
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    elif damage == "deleted":
        images.unlink()
    elif damage == "object array":
        np.save(folder / "landmarks.npy", np.array([object()] * len(source)), allow_pickle=True)
    else:
        np.save(folder / "landmarks.npy", np.load(folder / "landmarks.npy")[:-1])
    with caplog.at_level("WARNING"):
        again = cached(source, CROP, tmp_path / "crops", progress=False)
    assert "rebuilding it" in caplog.text
    assert np.array_equal(np.array(again.pixels), good)


def test_an_interrupted_build_resumes_from_the_chunks_it_finished(source, tmp_path, monkeypatch):
    import landmark_lab.datamodules.crop_cache as cc

    monkeypatch.setattr(cc, "_BUILD_CHUNK", 4)  # several chunks from the tiny test set
    real, calls = cc._crop_chunk, []

    def dies_on_the_third(job):
        calls.append(job[1][0])
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill in the middle of the build
        return real(job)

    monkeypatch.setattr(cc, "_crop_chunk", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        cached(source, CROP, tmp_path / "crops", progress=False)
    (partial,) = (tmp_path / "crops").glob("*.partial")
    assert json.loads((partial / "done.json").read_text())["chunks"] == [0, 1]
    calls.clear()
    monkeypatch.setattr(cc, "_crop_chunk", lambda job: calls.append(job[1][0]) or real(job))
    resumed = cached(source, CROP, tmp_path / "crops", progress=False)
    assert calls[0] == 8 and 0 not in calls and 4 not in calls  # the two finished chunks were not cropped again
    fresh = cached(source, CROP, tmp_path / "fresh", progress=False)
    assert np.array_equal(np.array(resumed.pixels), np.array(fresh.pixels))
    assert not list((tmp_path / "crops").glob("*.partial"))
