"""Crop imitation: the framing distributions match after it, and landmarks stay on the face."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ks_2samp

from landmark_lab.cli.train import train
from landmark_lab.data.sample import Sample
from landmark_lab.transforms.crop_imitation import CropImitation, measure
from landmark_lab.transforms.pipeline import FaceTransform

from .test_transforms import MARKED, _colour_at, _marked_sample


def _faces(rng, n, centre_jitter, size_range, image_wh):
    base = rng.uniform(-1, 1, (68, 2))
    out = []
    for _ in range(n):
        side = rng.uniform(*size_range)
        c = np.asarray(image_wh) / 2 + rng.normal(0, centre_jitter, 2)
        out.append(c + base * side / 2)
    return np.stack(out)


def test_imitated_framing_matches_the_real_distribution():
    rng = np.random.default_rng(0)
    real_wh = np.c_[rng.integers(100, 200, 300), rng.integers(100, 200, 300)].astype(float)
    real_lm = np.stack([_faces(rng, 1, 10, (40, 80), wh)[0] for wh in real_wh])
    syn_lm = _faces(rng, 300, 1, (50, 55), (128, 128))
    real, syn = measure(real_lm, real_wh), measure(syn_lm, np.full((300, 2), 128.0))
    after = CropImitation(real).imitated(syn_lm, seed=1)
    for key in real.columns():
        before_d = ks_2samp(syn.columns()[key], real.columns()[key]).statistic
        after_d = ks_2samp(after.columns()[key], real.columns()[key]).statistic
        assert after_d < 0.15 < before_d, (key, before_d, after_d)


def test_reframed_image_keeps_landmarks_on_their_pixels():
    s = _marked_sample()
    target = measure(np.stack([s.landmarks * 0.7 + 5]), np.array([[90.0, 120.0]]))
    syn = Sample(s.image, s.landmarks, "synthetic", "3d", "syn")
    out = CropImitation(target)(syn, np.random.default_rng(0))
    assert out.image.shape[:2] == (120, 90)
    for k, colour in MARKED.items():
        assert np.abs(_colour_at(out.image, out.landmarks[k]) - colour).max() < 60, k
    # through the training transform (whole-image crop): points still follow and the matrix maps the original
    tf = FaceTransform({"size": 64, "box": "image"}, train=True, imitation=CropImitation(target), seed=0)
    batch = tf(syn)
    m = batch["crop_matrix"].numpy().astype(np.float64)
    np.testing.assert_allclose(s.landmarks @ m[:, :2].T + m[:, 2], batch["landmarks"].numpy(), atol=1e-3)


@pytest.mark.slow
def test_training_with_crop_imitation_on_whole_images(make_cfg):
    cfg = make_cfg(["+experiment=synth_only", "data.crop_imitation.enabled=true", "data.crop_imitation.n_real=20",
                    "data.transform.crop.box=image", "augment=domain_adapt", "trainer.fast_dev_run=true"])
    train(cfg)
    out = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert out["config"]["data"]["crop_imitation"]["enabled"] and out["test"]["metrics"]["count"] > 0
