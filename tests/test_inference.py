"""Using a trained model: Predictor parity with evaluate, flip averaging, ONNX parity, the predict and export
commands, and dlib's predictor as a peer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from landmark_lab.datamodules.sources import FaceDataset
from landmark_lab.errors import ConfigError
from landmark_lab.evaluation.core import evaluate, evaluate_images
from landmark_lab.inference.predictor import Predictor
from landmark_lab.landmarks import FLIP_68, flip_landmarks
from landmark_lab.models.checkpoint import save_model
from landmark_lab.training.builders import build_datamodule, build_model, mean_shape
from landmark_lab.transforms.flip import flip_average, unmirror

from .conftest import ROOT, W300, needs_shared


@pytest.fixture
def model_and_data(make_cfg, tmp_path):
    """A small untrained model (mean-shape start) saved as a checkpoint, and the tiny procedural test set."""

    def _make(head: str = "regression", extra: tuple[str, ...] = ()):
        cfg = make_cfg(["+experiment=real_only", f"model.head.name={head}", *extra])
        dm = build_datamodule(cfg, progress=False)
        dm.prepare_data()
        dm.setup("fit")
        torch.manual_seed(0)
        model = build_model(cfg)
        if head == "heatmap":  # untrained maps are near-flat; distinct peaks keep argmax parity meaningful
            torch.nn.init.normal_(model.head.maps.weight, std=0.5)
        model.init_mean_shape(mean_shape(FaceDataset(*dm.training_set(), dm.eval_tf)))
        ckpt = save_model(model.eval(), tmp_path / f"{head}.ckpt")
        return model, dm, ckpt

    return _make


def _nme(metrics):
    return metrics["nme_io"]


def test_unmirror_is_an_involution_and_matches_the_sample_flip():
    pts = np.random.default_rng(0).uniform(0, 63, (68, 2)).astype(np.float32)
    assert np.allclose(unmirror(unmirror(pts, 64), 64), pts)
    assert np.allclose(unmirror(pts, 64), flip_landmarks(pts, 64))
    t = torch.from_numpy(pts)[None]
    assert torch.allclose(flip_average(t, torch.from_numpy(unmirror(pts, 64))[None], 64), t)
    assert (FLIP_68[FLIP_68] == np.arange(68)).all()


def test_a_mirror_shift_survives_the_flip_average():
    """A model trained on labels that sit ``s`` px right of mirror-symmetric ones (their mirrors labelled the same
    way) predicts such points on the mirrored crop too; un-mirrored with the same shift, the average keeps them."""
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 63, (3, 68, 2)).astype(np.float32)
    shift = np.array([0.3, 0.5, 1.0], np.float32)  # per face: the shift in crop pixels
    on_mirrored = np.stack([flip_landmarks(p, 64, s) for p, s in zip(pts, shift, strict=True)])
    assert np.allclose(flip_average(pts, on_mirrored, 64, shift), pts, atol=1e-5)
    assert np.allclose(unmirror(on_mirrored, 64, shift), pts, atol=1e-5)
    # without the shift the average lands half way: the x offset the labels have is lost
    assert np.allclose((flip_average(pts, on_mirrored, 64) - pts)[..., 0], -shift[:, None], atol=1e-5)
    t = torch.from_numpy(pts)
    assert torch.allclose(flip_average(t, torch.from_numpy(on_mirrored), 64, torch.from_numpy(shift)), t, atol=1e-5)


@pytest.mark.parametrize(("flip", "shift"), [(False, 0.0), (True, 0.0), (True, 1.5)])
def test_predictor_on_photos_gives_evaluate_nme(model_and_data, flip, shift):
    model, dm, ckpt = model_and_data(extra=(f"data.real.mirror_shift={shift}",))
    assert model.hparams.mirror_shift == shift  # the real labels' shift, recorded for every flip average
    loader = dm.test_dataloader()
    reference = evaluate(model, loader, progress=False, flip=flip)
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    ds = FaceDataset(dm.test_sources, dm.test_items, dm.eval_tf)
    result, info = evaluate_images(predictor, ds, box="landmarks", flip=flip, progress=False)
    assert info["misses"] == 0 and result.metrics["count"] == len(ds)
    assert _nme(result.metrics) == pytest.approx(_nme(reference.metrics), abs=1e-4)
    if flip:  # flip averaging really changes the prediction
        assert _nme(reference.metrics) != pytest.approx(_nme(evaluate(model, loader, progress=False).metrics), abs=1e-6)
    # the offset (image pixels) is the same by both paths; a mirror shift moves the flip average right by it
    assert reference.offset["x"] == pytest.approx(result.offset["x"], abs=1e-3)
    if shift:
        model.hparams.mirror_shift = 0.0
        unshifted = evaluate(model, loader, progress=False, flip=True)
        assert reference.offset["x"] - unshifted.offset["x"] == pytest.approx(shift, abs=1e-3)
        assert reference.offset["y"] == pytest.approx(unshifted.offset["y"], abs=1e-5)


def test_a_base_trained_on_3d_labels_is_flip_averaged_without_the_shift(model_and_data):
    """The output without the label adapter learnt the synthetic labels, which mirror exactly: its flip average
    (evaluate's "without adapter" figure) ignores the real labels' shift, which moves the adapted output's only."""
    model, dm, _ = model_and_data(extra=("data.real.mirror_shift=1.5", "model.adapter.name=affine"))
    model.hparams.base_supervised = True
    loader = dm.test_dataloader()
    shifted = evaluate(model, loader, progress=False, flip=True)
    model.hparams.mirror_shift = 0.0
    unshifted = evaluate(model, loader, progress=False, flip=True)
    assert shifted.without_adapter == pytest.approx(unshifted.without_adapter, abs=1e-6)
    assert shifted.offset["x"] - unshifted.offset["x"] == pytest.approx(1.5, abs=1e-3)


def test_predictor_api_whole_image_boxes_and_scores(model_and_data):
    _model, dm, ckpt = model_and_data("integral")
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    sample = dm.test_sources[0].load(0)
    faces = predictor.predict(sample.image)  # no detector: the whole image is the face
    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)
    h, w = sample.image.shape[:2]
    assert faces[0].box == (-0.5, -0.5, w - 0.5, h - 0.5)
    assert 0.0 <= faces[0].score <= 1.0
    # several faces per image, in original pixels: a face pasted twice into a larger photo
    big = np.zeros((h * 2, w * 3, 3), np.uint8)
    big[:h, :w] = sample.image
    big[h:, 2 * w :] = sample.image
    boxes = [(0, 0, w - 1, h - 1), (2 * w, h, 3 * w - 1, 2 * h - 1)]
    two = predictor.predict(big, boxes=boxes)
    assert len(two) == 2
    assert np.allclose(two[1].landmarks - two[0].landmarks, [2 * w, h], atol=0.05)
    with pytest.raises(Exception, match="uint8"):
        predictor.predict(sample.image.astype(np.float32))
    assert predictor.predict(big, boxes=[]) == []


@pytest.mark.parametrize(("head", "extra"), [("regression", ()), ("integral", ()), ("heatmap", ()), ("simcc", ()),
                                             ("simcc", ("+model.head.stride=16",))], ids=str)
def test_onnx_export_matches_eager_on_real_faces(model_and_data, tmp_path, head, extra):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from landmark_lab.cli.export import export_checkpoint as run_export

    # a mirror shift rides along in the metadata (not with the heatmap head: its untrained, nearly flat maps make
    # DARK's rounding differences depend on where the shifted flip average puts the crop)
    shift = 0.0 if head == "heatmap" else 0.8
    model, dm, ckpt = model_and_data(head, (*extra, f"data.real.mirror_shift={shift}"))
    out = tmp_path / f"{head}.onnx"
    from omegaconf import OmegaConf

    run_export(OmegaConf.create({"ckpt_path": str(ckpt), "format": "onnx", "out": str(out), "opset": 17,
                                 "check": False}))
    info = json.loads(Path(str(out) + ".json").read_text())
    assert info["crop"]["size"] == model.input_size and info["convention"].startswith("2d")
    eager, exported = Predictor.from_checkpoint(ckpt, device="cpu"), Predictor.from_onnx(out)
    assert info["mirror_shift"] == exported.mirror_shift == eager.mirror_shift == shift  # the flip below uses it
    if W300.is_dir():  # real faces where they are available
        from landmark_lab.data.folder import LandmarkFolder

        faces = LandmarkFolder(W300 / "lfpw" / "trainset", "real", "2d", limit=6)
    else:
        faces = dm.test_sources[0]
    for i in range(min(6, len(faces))):
        s = faces.load(i)
        a = eager.predict(s.image, flip=True)[0]
        b = exported.predict(s.image, flip=True)[0]
        # in crop pixels: image-pixel differences scaled by the crop's zoom
        zoom = model.input_size / (max(b.box[2] - b.box[0], b.box[3] - b.box[1]) * 1.25)
        # DARK's Newton step divides by the map's curvature, which amplifies float rounding (thread count and
        # kernel choice differ between torch and ONNX Runtime) on these untrained, nearly flat maps: a twentieth of
        # a crop pixel is still far below any landmark error
        assert np.abs(a.landmarks - b.landmarks).max() * zoom < (5e-2 if head == "heatmap" else 1e-3)
        assert a.score == pytest.approx(b.score, abs=1e-4) or (np.isnan(a.score) and np.isnan(b.score))


def test_torch_export_writes_a_loadable_program(model_and_data, tmp_path):
    from landmark_lab.inference.export import export_model, parity

    model, _, _ = model_and_data()
    path, side = export_model(model, tmp_path / "m.pt2", "torch_export")
    crops = np.random.default_rng(0).uniform(0, 255, (3, 3, 64, 64)).astype(np.float32)
    assert parity(model, path, crops) < 1e-3 and side.is_file()


def test_predict_cli_folder_with_a_bad_image(model_and_data, make_cfg, tmp_path):
    from landmark_lab.cli.predict import predict_photos as run_predict

    _model, dm, ckpt = model_and_data()
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        cv2.imwrite(str(photos / f"p{i}.png"), cv2.cvtColor(dm.test_sources[0].load(i).image, cv2.COLOR_RGB2BGR))
    (photos / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "boxes.csv").write_text("image,x0,y0,x1,y1\np0.png,10,10,100,100\np0.png,0,0,60,60\n")
    cfg = make_cfg([f"ckpt_path={ckpt}", f"input={photos}", f"out_dir={tmp_path / 'out'}", "detector=boxes",
                    f"boxes={tmp_path / 'boxes.csv'}", "write_pts=true"], name="predict", tiny=False)
    payload = run_predict(cfg)
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert saved["skipped"][0]["image"].endswith("broken.jpg")
    assert [len(saved["images"][k]["faces"]) for k in ("p0.png", "p1.png")] == [2, 0]
    assert len(saved["images"]["p0.png"]["faces"][0]["landmarks"]) == 68 and payload["detector"] == "boxes"
    assert sorted(p.name for p in (tmp_path / "out" / "pts").iterdir()) == ["p0_0.pts", "p0_1.pts"]
    assert (tmp_path / "out" / "drawn" / "p1.png").with_suffix(".jpg").is_file()
    cfg = make_cfg([f"ckpt_path={ckpt}", f"input={photos / 'p1.png'}", f"out_dir={tmp_path / 'o2'}", "detector=none"],
                   name="predict", tiny=False)
    assert len(run_predict(cfg)["images"]["p1.png"]["faces"]) == 1
    cfg = make_cfg([f"ckpt_path={ckpt}", f"input={photos}", "detector=boxes"], name="predict", tiny=False)
    with pytest.raises(ConfigError, match="detector=boxes needs boxes=PATH"):
        run_predict(cfg)


needs_dlib = needs_shared("300w", also=__import__("importlib").util.find_spec("dlib") is not None,
                          why=" and dlib (pip install -e '.[predict]')")


@needs_dlib
def test_dlib_peer_on_real_faces_with_its_detector():
    from landmark_lab.data.folder import LandmarkFolder
    from landmark_lab.datamodules.splits import expand, groups_of
    from landmark_lab.inference.dlib_peer import DlibPeer

    src = LandmarkFolder(W300 / "lfpw" / "trainset", "real", "2d", limit=40)
    ds = FaceDataset([src], expand(groups_of([len(src)]), False), None)
    result, info = evaluate_images(DlibPeer(), ds, box="detector", progress=False)
    # dlib saw these faces in training; on all 805 of them it measures 2.89 % (README), so well under 6 %
    assert info["evaluated"] + info["misses"] == 40 and info["evaluated"] >= 30
    assert result.metrics["nme_io"] < 0.06


@needs_dlib
def test_evaluate_peer_dlib_cli_writes_metrics_with_its_note(make_cfg, tmp_path):
    from landmark_lab.cli.evaluate import evaluate_checkpoint as run_evaluate

    folder = tmp_path / "few"
    folder.mkdir()
    for p in sorted((W300 / "afw").glob("*.jpg"))[:8]:
        for f in (p, p.with_suffix(".pts")):
            (folder / f.name).write_bytes(f.read_bytes())
    cfg = make_cfg(["peer=dlib", "eval.box=detector", "data/real=folder", f"data.real.root={folder}",
                    f"data.real.test_root={folder}"], name="evaluate",
                   run_dir=tmp_path / "ev", tiny=False)
    metrics = run_evaluate(cfg)
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["peer"] == "dlib" and saved["protocol"]["box"] == "detector"
    assert saved["protocol"]["evaluated"] + saved["protocol"]["misses"] == 8
    assert "trained on all of 300-W train" in saved["notes"][0] and metrics["count"] >= 1


def test_readme_python_example_runs_as_printed(model_and_data, tmp_path, monkeypatch):
    """The README's "Use a trained model" example, executed verbatim in a folder laid out like a fresh run."""
    _model, dm, ckpt = model_and_data()
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- example: predictor -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README has no predictor example"
    run = tmp_path / "logs" / "train" / "runs" / "2026-01-01_00-00-00" / "checkpoints" / "finetune"
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(ckpt.read_bytes())
    img_dir = tmp_path / ".cache" / "procedural_v2" / "real_test_n16_size128_seed0"
    img_dir.mkdir(parents=True)
    cv2.imwrite(str(img_dir / "000000.jpg"), cv2.cvtColor(dm.test_sources[0].load(0).image, cv2.COLOR_RGB2BGR))
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})


def test_a_reparameterisable_backbone_is_exported_folded_and_the_model_kept(tmp_path):
    """RepGhost's training-time branches are folded into single convolutions in the exported file (fewer Conv nodes
    than the model has Conv2d layers), the file agrees with the eager model, and the model itself is left unfolded."""
    pytest.importorskip("onnx")
    import onnx

    from landmark_lab.inference.export import export_model, parity
    from landmark_lab.models.module import LandmarkModule

    torch.manual_seed(0)
    model = LandmarkModule(backbone={"name": "repghostnet_050"}, head={"name": "heatmap", "stride": 4},
                           adapter={"name": "none"}, loss={"name": "wing"}, input_size=64,
                           crop={"size": 64, "scale": 1.25, "box": "landmarks"}).eval()
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    path, _ = export_model(model, tmp_path / "rep.onnx")
    nodes = sum(n.op_type == "Conv" for n in onnx.load(str(path)).graph.node)
    assert nodes < convs and sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == convs
    crops = np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 64)).astype(np.float32)
    assert parity(model, path, crops) < 0.01


def test_a_detector_box_maps_back_to_the_landmark_box_it_came_from():
    from landmark_lab.inference.dlib_peer import detector_box_from_landmark_box, landmark_box_from_detector_box

    box = (40.0, 52.0, 140.0, 170.0)
    detector = detector_box_from_landmark_box(box)
    assert detector != box  # the mapping moves and grows the box ...
    assert np.allclose(landmark_box_from_detector_box(detector), box)  # ... and its inverse undoes it
