"""dlib's 68-point ERT shape predictor as a peer model, behind the same ``predict`` as :class:`Predictor`.

dlib's predictor was trained on all of 300-W train (AFW, HELEN train, LFPW train, and iBUG): only test
folders it never saw are fair ground for comparing it with a model trained here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from landmark_lab.inference.detectors import DlibDetector, dlib_model_file, import_dlib
from landmark_lab.inference.predictor import Box, FacePrediction, _check_image

TRAINED_ON = ("afw", "helen/trainset", "lfpw/trainset", "ibug")
NOTE = ("dlib's 68-point predictor was trained on all of 300-W train (afw, helen/trainset, lfpw/trainset, ibug); "
        "its figures on those folders are optimistic. Only test folders it never saw are fair ground.")


# dlib's predictor starts from its own detector's framing. Given a tight landmark box instead (the 300-W
# protocol), it is moved to that framing first: centre shift and size relative to the landmark box, the
# medians over the 1237 faces of afw + helen/trainset where dlib's detector matched the labelled face.
LANDMARK_TO_DETECTOR = {"dx": -0.011, "dy": -0.083, "sx": 1.047, "sy": 1.054}


def detector_box_from_landmark_box(box: Box) -> Box:
    """The box dlib's detector would give for a face with this tight landmark box (see LANDMARK_TO_DETECTOR)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    c = LANDMARK_TO_DETECTOR
    cx, cy = (x0 + x1) / 2 + c["dx"] * w, (y0 + y1) / 2 + c["dy"] * h
    return cx - c["sx"] * w / 2, cy - c["sy"] * h / 2, cx + c["sx"] * w / 2, cy + c["sy"] * h / 2


def landmark_box_from_detector_box(box: Box) -> Box:
    """The tight landmark box a dlib detector box stands for: the inverse of :func:`detector_box_from_landmark_box`
    (for photos without labels, e.g. the framing of unlabelled photos)."""
    x0, y0, x1, y1 = box
    c = LANDMARK_TO_DETECTOR
    w, h = (x1 - x0) / c["sx"], (y1 - y0) / c["sy"]
    cx, cy = (x0 + x1) / 2 - c["dx"] * w, (y0 + y1) / 2 - c["dy"] * h
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


class DlibPeer:
    """``predict(image, boxes=None)`` with dlib's HOG detector (when no boxes are given) and 68-point predictor."""

    name = "dlib"

    def __init__(self, detector: DlibDetector | None = None) -> None:
        self.dlib = import_dlib()
        self.shape_predictor = self.dlib.shape_predictor(str(dlib_model_file()))
        self.detector = detector

    def detect(self, image: np.ndarray) -> list[Box]:
        if self.detector is None:
            self.detector = DlibDetector()
        return self.detector(image)

    def predict(self, image: np.ndarray, boxes: Sequence[Box] | None = None, flip: bool = False,
                box_kind: str = "face", refine: int | None = None) -> list[FacePrediction]:
        """68 points per face in image pixels; ``score`` is NaN (dlib's predictor gives none).
        ``box_kind="landmarks"`` boxes are moved to dlib's detector framing first; ``flip`` and ``refine`` are
        accepted for the common interface and ignored."""
        image = _check_image(image)
        boxes = self.detect(image) if boxes is None else [tuple(float(v) for v in b) for b in boxes]
        out = []
        for given in boxes:
            b = detector_box_from_landmark_box(given) if box_kind == "landmarks" else given
            rect = self.dlib.rectangle(int(round(b[0])), int(round(b[1])), int(round(b[2])), int(round(b[3])))
            shape = self.shape_predictor(image, rect)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            out.append(FacePrediction(pts, given, float("nan")))
        return out


def predictor_timer() -> Callable[..., list[float]]:
    """A function ``(runs, warmup=10) -> [ms, ...]`` timing dlib's 68-point predictor on one procedural face given
    its box (on the threads the caller set); raises :class:`ConfigError` where dlib is not installed."""
    from landmark_lab.data.procedural.domains import generate_face
    from landmark_lab.inference.quantize import call_ms
    from landmark_lab.landmarks import landmark_box

    face = generate_face("real", 7, 256)
    image = np.ascontiguousarray(face.image)
    peer, box = DlibPeer(), landmark_box(face.lm_2d)
    return lambda runs, warmup=10: call_ms(lambda: peer.predict(image, [box]), runs, warmup)
