"""Landmarks on video: the detector finds the face once, then each frame's crop comes from the last frame's points.

``python -m landmark_lab.predict ckpt_path=CKPT input=VIDEO.mp4`` (or ``input=FRAMES_DIR video=true``, frames in name
order). A detector per frame costs more than any landmark model (dlib's HOG: 30-95 ms per photo), so the detector
runs on the first frame and again whenever the tracked face's score drops below ``redetect_below`` or the face is
lost; in between, the model's crop is the (smoothed) landmark box of the previous frame, exactly the training crop.
Writes ``annotated.mp4``, ``frames.csv`` (one row per frame: 68 points or empty) and ``predictions.json``; prints
the frames per second.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from landmark_lab.errors import ConfigError, DataError
from landmark_lab.inference.detectors import build_detector
from landmark_lab.inference.predictor import FacePrediction, Predictor
from landmark_lab.landmarks import landmark_box

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass
class TrackedFrame:
    """One frame's face (None when there is none), and whether the detector ran on this frame."""

    face: FacePrediction | None
    detected: bool


class FaceTracker:
    """Track the largest face of a stream: detect, then follow it frame to frame with the landmark model.

    ``smooth`` in (0, 1]: the weight of the new frame in an exponential average of the points (1: none). A frame whose
    score is below ``redetect_below`` (the heatmap peak; the flip agreement for regression heads) is detected again.
    """

    def __init__(self, predictor: Predictor, redetect_below: float = 0.3, smooth: float = 0.7,
                 flip: bool = False) -> None:
        if not 0.0 < smooth <= 1.0:
            raise ConfigError(f"smooth={smooth} must be in (0, 1]: the weight of the new frame (1 = no smoothing).")
        self.predictor, self.redetect_below, self.smooth, self.flip = predictor, float(redetect_below), smooth, flip
        self.previous: np.ndarray | None = None

    def _detect(self, frame: np.ndarray) -> FacePrediction | None:
        faces = self.predictor.predict(frame, flip=self.flip)  # the detector (or the whole frame), refined
        return faces[0] if faces else None

    def step(self, frame: np.ndarray) -> TrackedFrame:
        """The face in ``frame`` (RGB uint8)."""
        detected = self.previous is None
        if detected:
            face = self._detect(frame)
        else:
            face = self.predictor.predict(frame, boxes=[landmark_box(self.previous)], flip=self.flip,
                                          box_kind="landmarks")[0]
            if not np.isfinite(face.score) or face.score < self.redetect_below:
                detected, face = True, self._detect(frame)
        if face is None:
            self.previous = None
            return TrackedFrame(None, detected)
        if self.previous is not None and not detected:
            face.landmarks = (self.smooth * face.landmarks + (1 - self.smooth) * self.previous).astype(np.float32)
        self.previous = face.landmarks
        return TrackedFrame(face, detected)


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def read_frames(path: Path) -> tuple[Iterator[np.ndarray], float, int]:
    """(RGB frames, frames per second, frame count or 0 if unknown) of a video file or a folder of frames (in
    name order; 25 fps assumed)."""
    from landmark_lab.data.folder import IMAGE_EXTENSIONS, read_image

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ConfigError(f"input={str(path)!r}: no frame ({', '.join(IMAGE_EXTENSIONS)}) in this folder.")
        return (read_image(p) for p in files), 25.0, len(files)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: cannot open this video (damaged, or a codec OpenCV lacks); convert it to H.264 MP4.")
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames(), fps, count


def track_video(predictor: Predictor, frames: Iterator[np.ndarray], out: Path | None, fps: float,
                redetect_below: float = 0.3, smooth: float = 0.7, flip: bool = False, total: int = 0,
                draw: Callable[[np.ndarray, list[FacePrediction]], np.ndarray] | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Track through ``frames``; with ``out``, write ``frames.csv`` there and, given ``draw`` (frame, faces -> BGR
    image), ``annotated.mp4``. Returns the summary (frames, faces found, detector runs, frames per second of the
    tracking alone and of everything, reading and writing included)."""
    from tqdm.auto import tqdm

    tracker = FaceTracker(predictor, redetect_below, smooth, flip)
    writer, rows = None, []
    n = found = detections = 0
    track_s = 0.0
    t0 = time.perf_counter()
    for frame in tqdm(frames, total=total or None, desc="tracking", unit="frame", disable=not progress):
        t = time.perf_counter()
        result = tracker.step(frame)
        track_s += time.perf_counter() - t
        n += 1
        detections += int(result.detected)
        face = result.face
        if face is not None and not np.isfinite(face.landmarks).all():
            raise DataError(f"{predictor.source or 'the model'}: non-finite landmarks on frame {n - 1}; the model "
                            "diverged or the file is damaged.")
        found += face is not None
        rows.append([n - 1, int(result.detected), "" if face is None else round(float(face.score), 4),
                     *([] if face is None else np.round(face.landmarks.reshape(-1).astype(np.float64), 2).tolist())])
        if out is not None and draw is not None:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(out / "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            writer.write(draw(frame, [] if face is None else [face]))
    if writer is not None:
        writer.release()
    if n == 0:
        raise DataError("the video has no frame that could be read.")
    if out is not None:
        with (out / "frames.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["frame", "detected", "score", *[f"{a}{i}" for i in range(68) for a in "xy"]])
            w.writerows(rows)
    wall = time.perf_counter() - t0
    return {"frames": n, "faces": found, "detector_runs": detections, "fps_tracking": round(n / max(track_s, 1e-9), 1),
            "fps_total": round(n / max(wall, 1e-9), 1), "seconds": round(wall, 2), "smooth": smooth,
            "redetect_below": redetect_below}


def synthetic_clip(faces: list[np.ndarray], frames: int = 300, size: tuple[int, int] = (640, 480),
                   seed: int = 0) -> list[np.ndarray]:
    """A clip with no download: face photos pasted on a plain 640x480 background, drifting slowly, a new photo every
    ``frames // len(faces)`` frames (so the tracker loses the face and detects again). RGB frames."""
    w, h = size
    rng = np.random.default_rng(seed)
    out = []
    per = max(1, frames // max(1, len(faces)))
    for k in range(frames):
        face = faces[(k // per) % len(faces)]
        side = min(h, w) // 2
        face = cv2.resize(face, (side, side))
        t = (k % per) / per
        x = int((w - side) * (0.3 + 0.4 * t))
        y = int((h - side) * (0.5 + 0.1 * np.sin(2 * np.pi * t)))
        frame = np.full((h, w, 3), 90, np.uint8) + rng.integers(0, 3, (1, 1, 3), dtype=np.uint8)
        frame[y:y + side, x:x + side] = face
        out.append(frame)
    return out


def time_tracking(model: Any, faces: list[np.ndarray], frames: int = 300) -> dict[str, Any]:
    """Tracking speed of ``model`` (a LandmarkModule) on a 640x480 clip of ``frames`` frames made from ``faces``
    (:func:`synthetic_clip`), on one thread, as deployed: exported to ONNX (eager PyTorch where ONNX is not
    installed), dlib's detector on the first frame and wherever the tracked face's score drops (no detector where
    dlib is not installed: the first crop is then the whole frame). The tracking summary, with what ran."""
    from landmark_lab.inference.export import export_model  # timm and onnx: only the timing needs them

    clip = synthetic_clip(faces, frames)
    try:
        detector, detector_name = build_detector("dlib"), "dlib HOG"
    except ConfigError:  # dlib is optional (the predict extra)
        detector, detector_name = None, "none (dlib not installed)"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path, _ = export_model(model, Path(tmp) / "model.onnx")
                predictor, runtime = Predictor.from_onnx(path, detector, threads=1), "ONNX Runtime fp32"
            except ConfigError:  # onnx / onnxruntime are optional (the predict extra)
                predictor, runtime = Predictor.from_model(model, "cpu", detector), "eager PyTorch"
            summary = track_video(predictor, iter(clip), None, 25.0, progress=False)
    finally:
        torch.set_num_threads(threads)
    return {**summary, "runtime": runtime, "detector": detector_name, "frame_size": "640x480", "threads": 1}
