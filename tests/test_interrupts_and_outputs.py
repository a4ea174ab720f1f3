"""Reliability, round 2: a killed run says so, two runs never share a folder, and outputs never replace what a
user already has (export, predict, unwritable paths)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from landmark_lab.errors import ConfigError
from landmark_lab.utils.run import LOCK_FILE, run_folder_lock

from .conftest import ROOT, run_cli, tiny_overrides, train_command


def _wait_for(predicate, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first (status {proc.returncode}): {proc.stderr.read()[-3000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_ends_a_run_non_zero_with_failed_json_and_resume_continues(tmp_path, cache_dir):
    run = tmp_path / "run"
    cmd = train_command(run, cache_dir, "strategy.stages.0.steps=5000", "schedule.val_every=5")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (run / "checkpoints" / "train" / "last.ckpt").is_file(), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "interrupted by SIGTERM in stage train" in err and "Traceback" not in err
    failed = json.loads((run / "failed.json").read_text())
    assert failed["reason"] == "interrupted" and failed["stage"] == "train" and failed["last_step"] >= 5
    assert (run / "checkpoints" / "train" / "last.ckpt").is_file() and not (run / "metrics.json").exists()
    assert not (run / LOCK_FILE).exists()
    # the same command with resume=true continues from the last checkpoint (stopped again once it says so)
    proc = subprocess.Popen([*cmd, "resume=true"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    log = run / "train.log"
    _wait_for(lambda: log.is_file() and "resuming from" in log.read_text(), proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(run.glob("failed_*.json"))  # the first interruption's record is kept beside the new one


class _SignalsItself(torch.utils.data.Dataset):
    """Item 0: the worker sends itself SIGTERM and lives; item 1: what its SIGTERM handler is now."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        if i == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            return 0
        return int(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)


def test_a_loader_worker_leaves_the_first_sigterm_to_the_main_process():
    from landmark_lab.datamodules.base import worker_defers_sigterm

    loader = torch.utils.data.DataLoader(_SignalsItself(), num_workers=1, worker_init_fn=worker_defers_sigterm)
    assert [int(x) for x in loader] == [0, 1]  # it survived the first; a second one ends it (default handler)


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_with_loader_workers_still_ends_as_interrupted(tmp_path, cache_dir):
    """A scheduler's cancel or ``kill -- -PGID`` reaches the loader workers too: the run must still stop at a batch
    boundary with failed.json and status 143, not die with DataLoader's "worker is killed by signal" traceback."""
    run = tmp_path / "run"
    cmd = [a for a in train_command(run, cache_dir, "strategy.stages.0.steps=5000", "schedule.val_every=5")
           if a != "data.num_workers=0"] + ["data.num_workers=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _wait_for(lambda: (run / "checkpoints" / "train" / "last.ckpt").is_file(), proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "interrupted by SIGTERM in stage train" in err and "Traceback" not in err and "killed by signal" not in err
    assert json.loads((run / "failed.json").read_text())["reason"] == "interrupted"
    assert not (run / LOCK_FILE).exists()


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, cache_dir, capsys):
    run = tmp_path / "run"
    with run_folder_lock(run):
        with pytest.raises(ConfigError, match="in use by another run"), run_folder_lock(run):
            pass
        argv = ["+experiment=real_only", "strategy.stages.0.steps=2", f"hydra.run.dir={run}", *tiny_overrides(cache_dir)]
        assert run_cli("train", argv) == 2
        assert "is in use by another run" in capsys.readouterr().err
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # the refused run wrote nothing
    assert not run.exists() or not any(run.iterdir())


@pytest.fixture
def checkpoint(make_cfg, tmp_path) -> Path:
    """An untrained (mean-shape start) tiny model saved as a checkpoint the project writes."""
    import torch

    from landmark_lab.datamodules.sources import FaceDataset
    from landmark_lab.models.checkpoint import save_model
    from landmark_lab.training.builders import build_datamodule, build_model, mean_shape

    cfg = make_cfg(["+experiment=real_only"])
    dm = build_datamodule(cfg, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_mean_shape(mean_shape(FaceDataset(*dm.training_set(), dm.eval_tf)))
    return save_model(model.eval(), tmp_path / "model.ckpt")


def test_export_never_replaces_a_users_file_and_checks_the_suffix(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnx")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    for argv, says in (([f"out={notes}"], "writes a .onnx file"),
                       ([f"out={tmp_path / 'x.onnx'}", "format=torch_export"], "writes a .pt2 file"),
                       ([f"out={tmp_path / 'nowhere' / 'm.onnx'}"], "does not exist"),
                       (["opset=abc"], "opset='abc' must be a whole number")):
        assert run_cli("export", [f"ckpt_path={checkpoint}", *argv, f"hydra.run.dir={tmp_path / 'run'}"]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert notes.read_text() == "mine\n"
    # a folder: the model is written inside it; a second export there is refused unless overwrite=true
    folder = tmp_path / "models"
    folder.mkdir()
    argv = [f"ckpt_path={checkpoint}", f"out={folder}", "check=false", f"hydra.run.dir={tmp_path / 'run'}"]
    assert run_cli("export", argv) == 0 and (folder / "model.onnx").is_file() and (folder / "model.onnx.json").is_file()
    before = (folder / "model.onnx").read_bytes()
    assert run_cli("export", argv) == 2 and "exists; refusing to replace it" in capsys.readouterr().err
    assert (folder / "model.onnx").read_bytes() == before
    assert run_cli("export", [*argv, "overwrite=true"]) == 0


def test_predict_refuses_a_folder_with_files_backs_up_on_overwrite_and_never_mixes_two_inputs(checkpoint, tmp_path,
                                                                                               capsys):
    import cv2
    import numpy as np

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("face.jpg", "face.png", "other.png"):
        cv2.imwrite(str(photos / name), rng.integers(0, 255, (80, 80, 3), dtype=np.uint8))
    out = tmp_path / "preds"
    argv = [f"ckpt_path={checkpoint}", f"input={photos}", f"out_dir={out}", "detector=none", "write_pts=true",
            f"hydra.run.dir={tmp_path / 'run'}"]
    assert run_cli("predict", argv) == 0
    drawn = sorted(p.name for p in (out / "drawn").iterdir())
    assert drawn == ["face.jpg.jpg", "face.png.jpg", "other.jpg"]
    assert sorted(p.name for p in (out / "pts").iterdir()) == ["face.jpg_0.pts", "face.png_0.pts", "other_0.pts"]
    first = (out / "predictions.json").read_text()
    # again into the same folder: refused, nothing touched
    assert run_cli("predict", argv) == 2
    assert "already holds" in capsys.readouterr().err and (out / "predictions.json").read_text() == first
    # the input folder itself is a folder with files too
    assert run_cli("predict", [*argv[:2], f"out_dir={photos}", *argv[3:]]) == 2
    assert sorted(p.name for p in photos.iterdir()) == ["face.jpg", "face.png", "other.png"]
    # overwrite=true: the earlier predictions move to a backup first
    assert run_cli("predict", [*argv, "overwrite=true"]) == 0
    (backup,) = out.glob("backup_*")
    assert (backup / "predictions.json").read_text() == first and (out / "predictions.json").is_file()
    # out_dir naming a file: one line
    assert run_cli("predict", [*argv[:2], f"out_dir={photos / 'face.jpg'}", *argv[3:]]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_paths_that_cannot_be_used_are_one_line(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    empty = tmp_path / "sweep"
    empty.mkdir()
    recorded = ROOT / "experiments" / "budget_sweep" / "results.csv"
    assert run_cli("report", [str(empty), "--recorded", str(recorded), "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(a_file) in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("LANDMARK_LAB_CACHE", str(a_file))
    assert run_cli("train", ["+experiment=real_only", f"hydra.run.dir={tmp_path / 'run'}", "logger=none"]) == 2
    err = capsys.readouterr().err
    assert f"{a_file} is a file, not a folder" in err and "Traceback" not in err
    assert a_file.read_text() == "x"


def _edited_checkpoint(checkpoint: Path, tmp_path: Path, edit) -> Path:
    import torch

    ckpt = torch.load(checkpoint, weights_only=True)
    edit(ckpt)
    out = tmp_path / "edited.ckpt"
    torch.save(ckpt, out)
    return out


def test_nan_weights_are_refused_by_every_command_before_anything_is_written(checkpoint, tmp_path, capsys):
    def poison(ckpt):
        name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
        ckpt["state_dict"][name][...] = float("nan")

    bad = _edited_checkpoint(checkpoint, tmp_path, poison)
    photos = tmp_path / "photos"
    photos.mkdir()
    import cv2
    import numpy as np

    cv2.imwrite(str(photos / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    for command, argv in (("evaluate", []), ("predict", [f"input={photos}", "detector=none", f"out_dir={tmp_path / 'p'}"]),
                          ("export", [f"out={tmp_path / 'm.onnx'}"])):
        run = tmp_path / f"run_{command}"
        assert run_cli(command, [f"ckpt_path={bad}", *argv, f"hydra.run.dir={run}"]) == 2
        err = capsys.readouterr().err
        assert "hold NaN or inf" in err and "Traceback" not in err, err
        assert not run.exists()
    assert not (tmp_path / "p").exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(("crop", "says"), [
    ({"size": -64}, r"crop size -64 is not a side in pixels"),
    ({"size": 256}, r"crop size 256 does not fit the network's 64-px input"),
    ({"size": "abc"}, r"crop size 'abc' is not a side in pixels"),
    ({"size": 64, "scale": 0}, r"crop scale 0 must be a positive number"),
])
def test_checkpoint_crop_settings_that_make_no_sense_are_refused(checkpoint, tmp_path, crop, says):
    from landmark_lab.errors import DataError
    from landmark_lab.models.checkpoint import load_landmark_model

    bad = _edited_checkpoint(checkpoint, tmp_path, lambda c: c["hyper_parameters"]["crop"].update(crop))
    with pytest.raises(DataError, match=says):
        load_landmark_model(bad)


def test_onnx_metadata_that_is_not_json_or_lacks_the_crop_is_refused(checkpoint, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from landmark_lab.errors import DataError
    from landmark_lab.inference.predictor import Predictor

    assert run_cli("export", [f"ckpt_path={checkpoint}", f"out={tmp_path / 'm.onnx'}", "check=false",
                              f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    for value, says in (("{not json", "metadata is not JSON"), ('{"head": "regression"}', "crop settings are missing")):
        proto = onnx.load(str(tmp_path / "m.onnx"))
        next(p for p in proto.metadata_props if p.key == "landmark_lab").value = value
        onnx.save(proto, str(tmp_path / "bad.onnx"))
        with pytest.raises(DataError, match=says):
            Predictor.from_onnx(tmp_path / "bad.onnx")


def test_predict_validates_boxes_and_photos_and_fails_when_nothing_was_predicted(checkpoint, tmp_path, capsys):
    import cv2
    import numpy as np

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((80, 80, 3), 90, np.uint8))
    base = [f"ckpt_path={checkpoint}", f"input={photos}", f"hydra.run.dir={tmp_path / 'run'}"]
    # rows naming the image by a path are matched by its file name
    (tmp_path / "boxes.csv").write_text("image,x0,y0,x1,y1\nsome/where/a.png,10,10,70,70\n")
    assert run_cli("predict", [*base, "detector=boxes", f"boxes={tmp_path / 'boxes.csv'}", f"out_dir={tmp_path / 'o1'}"]) == 0
    assert len(json.loads((tmp_path / "o1" / "predictions.json").read_text())["images"]["a.png"]["faces"]) == 1
    # a box far outside the image: skipped and listed, and nothing predicted is a failure
    (tmp_path / "far.csv").write_text("image,x0,y0,x1,y1\na.png,90000,90000,90100,90100\n")
    assert run_cli("predict", [*base, "detector=boxes", f"boxes={tmp_path / 'far.csv'}", f"out_dir={tmp_path / 'o2'}"]) == 2
    assert "no face was predicted" in capsys.readouterr().err
    assert "lies outside" in json.loads((tmp_path / "o2" / "predictions.json").read_text())["skipped"][0]["reason"]
    for table, says in (("image,x0,y0,x1,y1\na.png,inf,0,10,10\n", "is not finite"),
                        ("image,x0,y0,x1,y1\nb.png,1,1,10,10\n", "no row names any of the 1 input image")):
        (tmp_path / "t.csv").write_text(table)
        assert run_cli("predict", [*base, "detector=boxes", f"boxes={tmp_path / 't.csv'}", f"out_dir={tmp_path / 'o3'}"]) == 2
        assert says in capsys.readouterr().err
    # a 0-byte image and a 1x1 image as the only inputs: listed under skipped, exit status 2
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(odd / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    assert run_cli("predict", [f"ckpt_path={checkpoint}", f"input={odd}", "detector=none", f"out_dir={tmp_path / 'o4'}",
                               f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    skipped = json.loads((tmp_path / "o4" / "predictions.json").read_text())["skipped"]
    assert sorted(Path(s["image"]).name for s in skipped) == ["dot.png", "empty.jpg"]
    assert "too small" in " ".join(s["reason"] for s in skipped)


def test_evaluate_refuses_a_peer_with_a_checkpoint(checkpoint, tmp_path, capsys):
    assert run_cli("evaluate", ["peer=dlib", f"ckpt_path={checkpoint}", f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    assert "takes no checkpoint" in capsys.readouterr().err


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header says ``width`` x ``height`` (a valid IHDR, one empty IDAT): the size a decoder sees
    before it allocates anything."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_a_huge_photo_is_skipped_not_decoded(checkpoint, tmp_path):
    import cv2
    import numpy as np

    photos = tmp_path / "photos"
    photos.mkdir()
    _png_header_only(photos / "huge.png", 50000, 50000)
    cv2.imwrite(str(photos / "ok.png"), np.full((80, 80, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert run_cli("predict", [f"ckpt_path={checkpoint}", f"input={photos}", "detector=none", f"out_dir={out}",
                               f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    saved = json.loads((out / "predictions.json").read_text())
    assert list(saved["images"]) == ["ok.png"] and "megapixels" in saved["skipped"][0]["reason"]


def test_a_sigterm_before_lightnings_handler_is_not_lost():
    """Lightning installs its SIGTERM handler only after setup and checkpoint restore; a signal in between reaches
    the run's own handler, which records it, and the stage stops at its next batch (or right after fit)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from landmark_lab.errors import Interrupted
    from landmark_lab.training import signals

    with signals.sigterm_interrupts():
        def fit() -> str:  # a fit during which the signal arrives before Lightning's handler exists
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # Python runs the handler between bytecodes
            with pytest.raises(SIGTERMException):
                signals.SigtermStop().on_train_batch_end(None)
            return "finished"

        with pytest.raises(Interrupted, match="interrupted by SIGTERM in stage s after step 7"):
            signals.fit_interrupted(fit, "s", lambda: 7)
    with signals.sigterm_interrupts():  # a new run starts without the old signal
        assert signals.fit_interrupted(lambda: "ok", "s", lambda: 0) == "ok"


def test_int8_export_reports_accuracy_and_speed_and_refuses_a_costly_one(checkpoint, tmp_path, capsys, monkeypatch):
    """quantize=int8: calibrated on training crops, NME and latency of fp32 and int8 printed; over the threshold the
    int8 model is refused and nothing is written."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from .conftest import run_cli, tiny_overrides

    cache = [o for o in tiny_overrides(tmp_path / "cache") if o.startswith(("paths.", "++data.", "data."))]
    base = [f"ckpt_path={checkpoint}", "quantize=int8", "calibration_faces=16", "check_faces=12", *cache]
    out = tmp_path / "model_int8.onnx"
    assert run_cli("export", [*base, f"out={out}", "max_nme_change=100", f"hydra.run.dir={tmp_path / 'e1'}"]) == 0
    text = capsys.readouterr().out
    assert "int8 vs fp32 on 12 held-out test faces" in text and "ms ->" in text
    info = json.loads(out.with_name(out.name + ".json").read_text())
    assert info["quantized"]["check_faces"] == 12 and info["quantized"]["ms_int8"] > 0
    from landmark_lab.inference.predictor import Predictor

    face = Predictor.from_onnx(out).predict(np.full((90, 80, 3), 128, np.uint8))[0]  # runs, with its metadata
    assert face.landmarks.shape == (68, 2) and np.isfinite(face.landmarks).all()
    # An int8 model that is 3 crop pixels off everywhere (its predictions come second) must be refused.
    from landmark_lab.inference import quantize

    calls, real = [], quantize.predict_crops

    def off_when_second(session, crops):
        calls.append(session)
        return real(session, crops) + (3.0 if len(calls) == 2 else 0.0)

    monkeypatch.setattr(quantize, "predict_crops", off_when_second)
    refused = tmp_path / "refused.onnx"
    assert run_cli("export", [*base, f"out={refused}", "max_nme_change=0.5", f"hydra.run.dir={tmp_path / 'e2'}"]) == 2
    assert "the int8 model was not written" in capsys.readouterr().err
    assert not refused.exists() and not list(tmp_path.glob("refused*")) and not list(tmp_path.glob("tmp*"))


def test_predict_tracks_a_video_and_a_folder_of_frames(checkpoint, tmp_path, capsys):
    """A video is tracked (detector on the first frame, then the last frame's points), frames.csv has a row per frame,
    annotated.mp4 plays back; a folder of frames with video=true too; a damaged video is one clear line."""
    import csv

    import cv2

    from landmark_lab.data.procedural.domains import generate_face
    from landmark_lab.inference.video import synthetic_clip

    from .conftest import run_cli

    clip = synthetic_clip([generate_face("real", k, 128).image for k in range(2)], frames=12, size=(160, 120))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for frame in clip:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "tracked"
    assert run_cli("predict", [f"ckpt_path={checkpoint}", f"input={video}", "detector=none", f"out_dir={out}",
                               "redetect_below=0", f"hydra.run.dir={tmp_path / 'p1'}"]) == 0
    assert "frames/s tracking" in capsys.readouterr().out
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["frames"] == 12 and summary["faces"] == 12 and summary["detector_runs"] == 1
    rows = list(csv.reader((out / "frames.csv").open()))
    assert len(rows) == 13 and len(rows[1]) == 3 + 136 and rows[1][1] == "1" and rows[2][1] == "0"
    played = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(played.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    played.release()
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, frame in enumerate(clip[:5]):
        cv2.imwrite(str(frames / f"f{k:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert run_cli("predict", [f"ckpt_path={checkpoint}", f"input={frames}", "video=true", "detector=none",
                               f"out_dir={tmp_path / 'tracked2'}", f"hydra.run.dir={tmp_path / 'p2'}"]) == 0
    assert json.loads((tmp_path / "tracked2" / "predictions.json").read_text())["frames"] == 5
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert run_cli("predict", [f"ckpt_path={checkpoint}", f"input={broken}", "detector=none",
                               f"out_dir={tmp_path / 'tracked3'}", f"hydra.run.dir={tmp_path / 'p3'}"]) == 2
    assert "broken.mp4: cannot open this video" in capsys.readouterr().err
