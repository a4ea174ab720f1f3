"""Domain-gap analyses: Procrustes ambiguity, the analyze CLI and its figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from landmark_lab.analysis.label_ambiguity import point_std, shape_residual_std

from .conftest import needs_shared, run_cli


def _rotate(pts, angle, scale, shift):
    c, s = np.cos(angle), np.sin(angle)
    return scale * pts @ np.array([[c, s], [-s, c]]) + shift


def test_procrustes_removes_pose_and_size_and_measures_noise():
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, (68, 2))
    base[36], base[45] = (-0.5, -0.2), (0.5, -0.2)
    clean = np.stack([_rotate(base, rng.uniform(-0.5, 0.5), rng.uniform(50, 150), rng.uniform(0, 300, 2))
                      for _ in range(200)])
    std, mean = point_std(clean)
    assert std.max() < 1e-6
    assert np.isclose(np.linalg.norm(mean[45] - mean[36]), 1.0) and abs(mean[45, 1] - mean[36, 1]) < 1e-9
    noisy = clean.copy()
    scale = np.linalg.norm(clean[:, 45] - clean[:, 36], axis=1)  # inter-ocular distance of each face
    noisy[:, 8] += rng.normal(0, 0.05, (200, 2)) * scale[:, None]  # the chin point gets 5% IOD noise per axis
    std, _ = point_std(noisy)
    assert np.argmax(std) == 8 and 0.05 < std[8] < 0.09 and np.delete(std, 8).max() < 0.01
    # Shape variation (two modes, larger than the noise) hides the chin noise in the Procrustes std but
    # not in the residual of a small shape model.
    modes = rng.normal(0, 0.1, (2, 68, 2))
    canon = base + np.einsum("nm,mkd->nkd", rng.normal(0, 1, (300, 2)), modes)
    canon[:, 8] += rng.normal(0, 0.02, (300, 2))
    varied = np.stack([_rotate(c, rng.uniform(-0.5, 0.5), rng.uniform(50, 150), rng.uniform(0, 300, 2)) for c in canon])
    assert np.argmax(point_std(varied)[0]) != 8
    residual, _ = shape_residual_std(varied, components=3)  # the 2 modes + the size change alignment makes of them
    assert np.argmax(residual) == 8


def _tiny(cache_dir, out):
    return [f"out_dir={out}", f"paths.cache_dir={cache_dir}", "++data.synthetic.n=60", "++data.real.n_train=60",
            "++data.real.n_test=8", "++data.synthetic.workers=1", "++data.real.workers=1", "max_faces=60",
            "data.crop_imitation.n_real=30"]


@pytest.mark.slow
def test_analyze_all_writes_figures_and_closes_the_framing_gap(tmp_path, cache_dir, capsys):
    assert run_cli("analyze", ["all", *_tiny(cache_dir, tmp_path)]) == 0
    for name in ("crops.png", "augment.png", "labels.png", "conventions.png", "crops.md", "labels.md"):
        assert (tmp_path / name).stat().st_size > (1000 if name.endswith(".png") else 200), name
    ks = json.loads((tmp_path / "crops.json").read_text())["ks"]
    assert ks["face size / image side"]["after"] < ks["face size / image side"]["before"]
    assert ks["face offset y"]["after"] < ks["face offset y"]["before"]
    labels = json.loads((tmp_path / "labels.json").read_text())
    for measure in ("procrustes", "shape_residual"):
        assert len(labels[measure]["real"]) == 68
        assert set(labels[measure]["regions"]["real"]) == {"jaw", "brows", "nose", "eyes", "mouth"}


def test_analyze_bad_input_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli("analyze", ["crop"]) == 2
    err = capsys.readouterr().err
    assert "command='crop' is not valid" in err and "Did you mean 'crops'" in err
    assert not (tmp_path / "analysis").exists()  # the refused command leaves no folder behind
    assert run_cli("analyze", ["crops", "augment=nonexistent"]) == 2
    assert "augment/nonexistent" in capsys.readouterr().err
    assert run_cli("analyze", ["--help"]) == 0 and "crops" in capsys.readouterr().out


@needs_shared("300w", "dgfaces", "facesynthetics")
def test_label_ambiguity_on_300w_vs_synthetic_datasets(tmp_path):
    assert run_cli("analyze", ["labels", f"out_dir={tmp_path}", "data=300w", "data/synthetic=dgfaces_facesynthetics",
                 "max_faces=400"]) == 0
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert labels["procrustes"]["regions"]["real"]["jaw"] > labels["procrustes"]["regions"]["real"]["eyes"]
    # Hand-clicked 300-W jaws are noisier than the rendered ones, beyond shape variation.
    residual = labels["shape_residual"]["regions"]
    assert residual["real"]["jaw"] > 1.3 * residual["synthetic"]["jaw"]
