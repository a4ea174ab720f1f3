"""Label translation: post-hoc adapter (saved with the checkpoint), adapted synthetic labels, data adaptation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from landmark_lab.cli.evaluate import evaluate_checkpoint as run_evaluate
from landmark_lab.cli.train import train
from landmark_lab.data.folder import LandmarkFolder
from landmark_lab.data.pts import write_pts
from landmark_lab.datamodules.label_translation import adapt_labels
from landmark_lab.errors import ConfigError
from landmark_lab.models.adapter import PointAffineAdapter
from landmark_lab.models.checkpoint import load_checkpoint


def test_adapted_labels_move_by_the_adapter_in_image_pixels(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((100, 120, 3), np.uint8))
        write_pts(tmp_path / f"{i}.pts", rng.uniform(20, 80, (68, 2)))
    src = LandmarkFolder(tmp_path, "synthetic", "3d")
    adapter = PointAffineAdapter()
    with torch.no_grad():
        adapter.offset[8] = torch.tensor([0.0, 0.1])  # chin down by 10% of the crop side
    out = adapt_labels(adapter, src, {"box": "landmarks", "scale": 1.25}, 64)
    side = 1.25 * np.ptp(src.landmarks, axis=1).max(1)
    moved = out.landmarks - src.landmarks
    np.testing.assert_allclose(moved[:, 8, 1], 0.1 * side, rtol=1e-4)
    np.testing.assert_allclose(np.delete(moved, 8, axis=1), 0.0, atol=1e-4)
    s = out.load(1)
    assert s.convention == "2d" and s.domain == "synthetic" and np.allclose(s.landmarks, out.landmarks[1])
    with pytest.raises(ConfigError, match=r"crop\.box='face_box' is not supported"):
        adapt_labels(adapter, src, {"box": "face_box"}, 64)


@pytest.mark.slow
def test_posthoc_adapter_is_fitted_saved_and_applied_by_evaluate(make_cfg, tmp_path):
    cfg = make_cfg(["+experiment=synth_only_adapted", "data.real_budget=30", "strategy.stages.0.steps=60",
                    "schedule.val_every=30", "posthoc_adapter.steps=100"])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    out = json.loads((run / "metrics.json").read_text())
    info = out["stages"][0]["posthoc_adapter"]
    assert info["fitted_on"] == 30 and info["after"]["val_nme_io"] <= info["before"]["val_nme_io"]
    assert out["data"]["real_train"] == 30  # the labels the adapter saw are reported
    m, raw = out["test"]["metrics"], out["test"]["metrics_without_adapter"]
    assert {"nme_io_jaw", "nme_io_inner"} <= set(raw)
    assert m["nme_io"] != raw["nme_io"] or info["best_step"] == 0
    model = load_checkpoint(run / info["checkpoint"])
    assert isinstance(model.adapter, PointAffineAdapter)
    ecfg = make_cfg([f"ckpt_path={run / info['checkpoint']}"], name="evaluate", run_dir=tmp_path / "eval")
    again = run_evaluate(ecfg)
    assert abs(again["nme_io"] - m["nme_io"]) < 1e-5
    # The conventions figure shows this model's base vs adapted output on a real test face.
    from .conftest import run_cli

    assert run_cli("analyze", ["conventions", f"ckpt_path={run / info['checkpoint']}", f"out_dir={tmp_path / 'fig'}",
                    f"paths.cache_dir={cfg.paths.cache_dir}", "++data.real.n_train=70", "++data.real.n_test=16"]) == 0
    assert (tmp_path / "fig" / "conventions.png").stat().st_size > 1000


@pytest.mark.slow
def test_adapt_cli_fits_an_existing_synthetic_model(make_cfg, tmp_path):
    from landmark_lab.cli.adapt import adapt_checkpoint as run_adapt

    cfg = make_cfg(["+experiment=synth_only", "strategy.stages.0.steps=40", "schedule.val_every=20"])
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "train" / "best.ckpt"
    acfg = make_cfg([f"ckpt_path={ckpt}", "data.real_budget=20", "posthoc_adapter.steps=60"], name="adapt",
                    run_dir=tmp_path / "adapt")
    out = run_adapt(acfg)
    assert out["posthoc_adapter"]["fitted_on"] == 20 and (tmp_path / "adapt" / "adapted.ckpt").is_file()
    assert "metrics_without_adapter" in out["test"]


@pytest.mark.slow
def test_data_adaptation_and_mixing_train_on_translated_labels(make_cfg):
    cfg = make_cfg(["+experiment=mixing", "data.real_budget=20", "strategy.stages.0.steps=40",
                    "strategy.stages.1.steps=30", "schedule.val_every=20", "posthoc_adapter.steps=50"])
    train(cfg)
    out = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert [s["name"] for s in out["stages"]] == ["label_map", "train"]
    assert "posthoc_adapter" in out["stages"][0] and out["stages"][1]["steps"] == 30
    assert out["test"]["metrics"]["nme_io"] < out["baseline_mean_shape"]["nme_io"] * 1.5
