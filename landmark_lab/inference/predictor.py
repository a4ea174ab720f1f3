"""Use a trained model on photos: faces in, 68 points per face in original image pixels out.

    from landmark_lab import Predictor
    predictor = Predictor.from_checkpoint("RUN/checkpoints/finetune/best.ckpt")
    faces = predictor.predict(rgb_uint8_image)          # detector's faces, or the whole image as one face
    faces[0].landmarks, faces[0].box, faces[0].score

The crop is the one the model was trained with (its checkpoint's ``crop`` settings). A face box from a
detector, a table or the whole image frames the face differently from the landmark box training used,
so the first prediction is re-cropped around its own landmarks and predicted again (``refine`` passes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landmark_lab.errors import ConfigError, DataError
from landmark_lab.landmarks import landmark_box
from landmark_lab.transforms.flip import crop_shift, flip_average, mirror_images, model_mirror_shift, unmirror
from landmark_lab.transforms.geometry import crop_matrix
from landmark_lab.transforms.pipeline import check_crop_settings

Box = tuple[float, float, float, float]
# Runs a batch of (B, 3, S, S) float32 crops (RGB, 0..255) -> (B, 68, 2) crop pixels, (B,) confidence.
Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
# Regression heads have no confidence of their own: the stand-in is the agreement between the prediction
# and the un-mirrored prediction on the mirrored crop, exp(-disagreement / this), disagreement in crop sides.
CONSISTENCY_SCALE = 0.02


@dataclass
class FacePrediction:
    """One face: ``landmarks`` (68, 2) in original image pixels (0-based pixel centres, x right, y down, the
    real/2D labelling convention), the ``box`` (x0, y0, x1, y1) it was found in, and a ``score`` in [0, 1]."""

    landmarks: np.ndarray
    box: Box
    score: float
    # Mean distance between the prediction and the un-mirrored prediction on the mirrored crop, in crop sides
    # (computed when predicting with flip averaging or with a head that has no score of its own); else None.
    flip_gap: float | None = None
    # The same per point (68,), in crop sides: which of the face's points the two passes disagree on.
    point_gaps: np.ndarray | None = None

    def as_json(self) -> dict[str, Any]:
        return {"box": [round(float(v), 2) for v in self.box],
                "score": None if not math.isfinite(self.score) else round(float(self.score), 4),
                "landmarks": np.round(self.landmarks.astype(np.float64), 3).tolist()}


def _invert(matrix: np.ndarray) -> np.ndarray:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]


class Predictor:
    """A trained landmark model plus its crop settings (and optionally a face detector), for photos.

    Build it with :meth:`from_checkpoint` (any checkpoint the project writes) or :meth:`from_onnx` (an
    ``export``-ed model); both share the pre- and post-processing below.
    """

    def __init__(self, runner: Runner, crop: dict[str, Any], detector: Any = None, refine: int = 1,
                 head: str = "regression", source: str = "", mirror_shift: float = 0.0) -> None:
        self.runner, self.crop, self.detector = runner, dict(crop), detector
        self.mirror_shift = float(mirror_shift)  # image pixels: the flip average un-mirrors as training mirrored
        self.size = int(self.crop.get("size", 64))
        self.scale = float(self.crop.get("scale", 1.25))
        self.box_mode = str(self.crop.get("box", "landmarks"))
        self.refine, self.head, self.source = int(refine), head, source

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", detector: Any = None, refine: int = 1) -> Predictor:
        """From a training checkpoint or ``adapted.ckpt`` (read pickle-free), on ``device`` (auto: GPU if any)."""
        from landmark_lab.models.checkpoint import load_landmark_model

        return cls.from_model(load_landmark_model(path), device, detector, refine, str(path))

    @classmethod
    def from_model(cls, model: Any, device: str = "auto", detector: Any = None, refine: int = 1,
                   source: str = "") -> Predictor:
        """From a LandmarkModule already in memory (its crop settings in ``model.hparams.crop``)."""
        from landmark_lab.utils.device import device as resolve_device

        dev = torch.device(resolve_device(device, "device"))
        net = model.inference_net().to(dev).eval()

        @torch.no_grad()
        def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pts, score = net(torch.from_numpy(np.ascontiguousarray(batch)).to(dev))
            return pts.float().cpu().numpy(), score.float().cpu().numpy()

        head = dict(model.hparams.head).get("name", "regression")
        return cls(run, dict(model.hparams.crop or {}), detector, refine, head, source,
                   model_mirror_shift(model))

    @classmethod
    def from_onnx(cls, path: str | Path, detector: Any = None, refine: int = 1, threads: int | None = None) -> Predictor:
        """From an ONNX file written by ``python -m landmark_lab.export``, run by onnxruntime on the CPU (``threads``:
        its intra-op threads; None: onnxruntime's default, every core)."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError('running an ONNX model needs onnxruntime: pip install -e ".[predict]"') from None
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: ONNX file not found.")
        try:
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads, options.inter_op_num_threads = int(threads), 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DataError(f"{path}: not a readable ONNX model ({exc}).") from None
        meta = session.get_modelmeta().custom_metadata_map
        if "landmark_lab" not in meta:
            raise DataError(f"{path}: not exported by landmark_lab (no 'landmark_lab' metadata); "
                            "export with python -m landmark_lab.export.")
        try:
            info = json.loads(meta["landmark_lab"])
        except json.JSONDecodeError:
            raise DataError(f"{path}: its 'landmark_lab' metadata is not JSON; export the model again.") from None
        if not isinstance(info, dict):
            raise DataError(f"{path}: its 'landmark_lab' metadata is not a table; export the model again.")
        side = session.get_inputs()[0].shape[-1]
        info["crop"] = check_crop_settings(info.get("crop"), str(path), side if isinstance(side, int) else None)
        name = session.get_inputs()[0].name

        def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pts, score = session.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})
            return pts, score

        shift = info.get("mirror_shift", 0.0)  # files exported before it was recorded: 0, as they were trained
        if not isinstance(shift, (int, float)) or isinstance(shift, bool) or not np.isfinite(shift):
            raise DataError(f"{path}: its 'landmark_lab' metadata has mirror_shift={shift!r}, not a number of pixels; "
                            "export the model again.")
        return cls(run, info["crop"], detector, refine, info.get("head", "regression"), str(path), float(shift))

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", detector: Any = None, refine: int = 1) -> Predictor:
        """:meth:`from_onnx` for ``.onnx`` files, else :meth:`from_checkpoint`."""
        if Path(path).suffix.lower() == ".onnx":
            return cls.from_onnx(path, detector, refine)
        return cls.from_checkpoint(path, device, detector, refine)

    # -- geometry ----------------------------------------------------------------------------------
    def crop_for(self, box: Box, kind: str) -> np.ndarray:
        """2x3 affine from the image to the model's crop for a face in ``box``.

        ``kind="landmarks"``: ``box`` is the tight landmark box, exactly as in training and ``evaluate``;
        ``kind="face"``: a detector/user box (or the whole image), framed as the model's crop mode asks.
        """
        # A model trained on photos as they come, or a whole image given as the box: the box is the crop itself.
        whole = self.box_mode == "image" or kind == "image"
        return crop_matrix(box, self.size, 1.0 if whole else self.scale)

    def _run(self, image: np.ndarray, matrices: list[np.ndarray], flip: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Landmarks in image pixels, scores and per-point flip distances (n, 68) in crop pixels (None without the
        mirrored pass) of the crops given by ``matrices``."""
        import cv2

        crops = np.stack([cv2.warpAffine(image, m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE) for m in matrices])
        batch = crops.astype(np.float32).transpose(0, 3, 1, 2)
        consistency = flip or not self.head_has_score
        gap = None
        if consistency:  # one batch: the crops and their mirrors
            pts, score = self.runner(np.concatenate([batch, mirror_images(batch)]))
            n = len(batch)
            direct, mirrored = pts[:n], pts[n:]
            shift = crop_shift(self.mirror_shift, np.stack(matrices))
            averaged = flip_average(direct, mirrored, self.size, shift)
            gap = np.linalg.norm(direct - unmirror(mirrored, self.size, shift), axis=-1)
            if not self.head_has_score:
                score = np.exp(-(gap.mean(-1) / self.size) / CONSISTENCY_SCALE)
            else:
                score = (score[:n] + score[n:]) / 2
            pts = averaged if flip else direct
        else:
            pts, score = self.runner(batch)
        out = np.stack([_apply(_invert(m), p) for m, p in zip(matrices, pts, strict=True)])
        return out.astype(np.float32), np.asarray(score, dtype=np.float64), gap

    @property
    def head_has_score(self) -> bool:
        return self.head != "regression"

    # -- prediction --------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes of the detector, or the whole image when there is none."""
        if self.detector is not None:
            return list(self.detector(image))
        h, w = image.shape[:2]
        return [(-0.5, -0.5, w - 0.5, h - 0.5)]

    def predict(self, image: np.ndarray, boxes: Sequence[Box] | None = None, flip: bool = False,
                box_kind: str = "face", refine: int | None = None) -> list[FacePrediction]:
        """68 points per face of an RGB uint8 ``image`` (H, W, 3) of any size.

        ``boxes``: (x0, y0, x1, y1) per face; None asks the detector (or takes the whole image as the face).
        ``box_kind``: ``face`` (detector or user boxes) or ``landmarks`` (tight landmark boxes: the training
        crop, no refinement needed). ``flip``: average with the prediction on the mirrored crop.
        """
        image = _check_image(image)
        whole = boxes is None and self.detector is None
        boxes = self.detect(image) if boxes is None else [tuple(float(v) for v in b) for b in boxes]
        if not boxes:
            return []
        kind = "image" if whole else box_kind
        matrices = [self.crop_for(b, kind) for b in boxes]
        pts, score, gap = self._run(image, matrices, flip)
        passes = self.refine if refine is None else int(refine)
        if kind != "landmarks" and self.box_mode == "landmarks":
            for _ in range(passes):  # re-crop around the predicted landmarks, as the model was trained
                matrices = [self.crop_for(landmark_box(p), "landmarks") for p in pts]
                pts, score, gap = self._run(image, matrices, flip)
        if gap is None:
            return [FacePrediction(p, b, float(s)) for p, b, s in zip(pts, boxes, score, strict=True)]
        means, per_point = gap.mean(-1) / self.size, (gap / self.size).astype(np.float32)
        return [FacePrediction(p, b, float(s), float(m), g)
                for p, b, s, m, g in zip(pts, boxes, score, means, per_point, strict=True)]


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise DataError(f"predict needs an RGB uint8 image array (H, W, 3); got {type(image).__name__}"
                        f"{getattr(image, 'shape', '')}.")
    if image.dtype != np.uint8:
        raise DataError(f"predict needs a uint8 image; got {image.dtype} (convert with np.clip(x, 0, 255).astype('uint8')).")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[..., :3]
    if image.shape[2] != 3:
        raise DataError(f"predict needs 3 colour channels; got {image.shape[2]}.")
    return np.ascontiguousarray(image)
