"""Sample -> model input: crop around the face, optional flip and augmentation, tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from landmark_lab.data.sample import Sample
from landmark_lab.errors import DataError
from landmark_lab.landmarks import flip_point_values, landmark_box
from landmark_lab.transforms.augment import build_pipeline
from landmark_lab.transforms.geometry import crop_matrix, crop_scale, hflip, warp

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0


CROP_BOXES = ("landmarks", "face_box", "image")


def check_crop_settings(crop: Any, where: str, input_size: int | None = None) -> dict[str, Any]:
    """The crop settings a model file carries (checkpoint hyper-parameters, ONNX metadata), checked before use:
    a side that is a whole number of at least 8 pixels (and the network's input side, where known), a positive
    scale, a known box. A :class:`DataError` names the file and the value."""
    if not isinstance(crop, Mapping) or "size" not in crop:
        raise DataError(f"{where}: its crop settings are missing or not a table (got {str(crop)[:60]!r}); the model "
                        "cannot be used without them. Export or save it again with landmark_lab.")
    size, scale, box = crop.get("size"), crop.get("scale", 1.25), crop.get("box", "landmarks")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise DataError(f"{where}: crop size {size!r} is not a side in pixels (a whole number of at least 8).")
    if input_size is not None and size != int(input_size):
        raise DataError(f"{where}: crop size {size} does not fit the network's {int(input_size)}-px input; the file's "
                        "settings were changed after training. Use the file as training wrote it.")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        raise DataError(f"{where}: crop scale {scale!r} must be a positive number.")
    if box not in CROP_BOXES:
        raise DataError(f"{where}: crop box {box!r} is not one of {list(CROP_BOXES)}.")
    return dict(crop)


@dataclass
class CropConfig:
    """How a face is cropped: the box it is centred on, its scale, and training-time jitter."""

    size: int = 64
    scale: float = 1.25
    # "landmarks": the ground-truth landmark box (the 300-W protocol); "face_box": sample.meta["face_box"];
    # "image": the whole image as it comes (pre-cropped photos), ``scale`` ignored.
    box: str = "landmarks"
    shift_jitter: float = 0.0  # std of the centre shift, fraction of the crop side
    zoom_jitter: float = 0.0  # std of the log crop-side change

    def matrix(self, landmarks: np.ndarray, image_wh: tuple[int, int] | None = None,
               face_box: tuple[float, float, float, float] | None = None, shift: tuple[float, float] = (0.0, 0.0),
               zoom: float = 1.0, who: str = "sample") -> np.ndarray:
        """2x3 affine from the image to this crop of a face with these ``landmarks`` (``image_wh`` is needed
        for ``box="image"``, ``face_box`` for ``box="face_box"``); the one place the crop box is chosen."""
        if self.box == "landmarks":
            return crop_matrix(landmark_box(landmarks), self.size, self.scale, shift, zoom)
        if self.box == "image":
            w, h = image_wh
            return crop_matrix((-0.5, -0.5, w - 0.5, h - 0.5), self.size, 1.0, shift, zoom)
        if self.box == "face_box":
            if face_box is None:
                raise DataError(f"{who} has no face box; use data.transform.crop.box=landmarks.")
            return crop_matrix(tuple(face_box), self.size, self.scale, shift, zoom)
        raise DataError(f"unknown crop box source {self.box!r}: use 'landmarks', 'face_box' or 'image'.")


class FaceTransform:
    """Turns a :class:`Sample` into ``{"image": (3,S,S) float, "landmarks": (68,2) crop pixels, ...}``."""

    def __init__(
        self,
        crop: CropConfig | Mapping[str, Any],
        train: bool = False,
        flip_p: float = 0.0,
        augment: Sequence[Mapping[str, Any]] | None = None,
        seed: int | None = None,
        synthetic_augment: Sequence[Mapping[str, Any]] | None = None,
        imitation: Any = None,
    ) -> None:
        self.crop = crop if isinstance(crop, CropConfig) else CropConfig(**crop)
        self.train = train
        self.flip_p = flip_p if train else 0.0
        self.augment = build_pipeline(augment) if train else None
        # Synthetic faces get the data-adaptation transforms after the shared ones.
        both = [*(augment or []), *(synthetic_augment or [])]
        self.synthetic_augment = build_pipeline(both) if train and synthetic_augment else self.augment
        # Crop imitation (training only): synthetic faces are framed the way real ones are.
        self.imitation = imitation if train else None
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple[int, int] | None = None

    @property
    def rng(self) -> np.random.Generator:
        """Random stream for this process: DataLoader workers get different, reproducible streams."""
        info = torch.utils.data.get_worker_info()
        key = (info.id if info else -1, info.seed if info else torch.initial_seed())
        if self._rng is None or key != self._rng_key:
            base = self.seed if self.seed is not None else key[1]
            self._rng = np.random.default_rng([base % 2**32, key[0] + 1, key[1] % 2**32])
            self._rng_key = key
            for pipe in {id(p): p for p in (self.augment, self.synthetic_augment) if p is not None}.values():
                pipe.set_random_seed(int(self._rng.integers(2**31)))
        return self._rng

    def geometry(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crop (with jitter when training), flip and augment; returns image, landmarks, crop matrix."""
        image, pts, matrix, _ = self._geometry(sample)
        return image, pts, matrix

    def _geometry(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """:meth:`geometry` and whether the crop was mirrored (per-point values then change order)."""
        c = self.crop
        rng = self.rng
        shift, zoom = (0.0, 0.0), 1.0
        if self.train:
            shift = tuple(rng.normal(0.0, c.shift_jitter, 2)) if c.shift_jitter else shift
            zoom = float(np.exp(rng.normal(0.0, c.zoom_jitter))) if c.zoom_jitter else zoom
        original = sample
        if self.imitation is not None and sample.domain == "synthetic":
            sample = self.imitation(sample, rng)
        h, w = sample.image.shape[:2]
        matrix = c.matrix(sample.landmarks, (w, h), sample.meta.get("face_box"), shift, zoom, f"sample {sample.id}")
        image, pts = warp(sample.image, sample.landmarks, matrix, c.size)
        shift = float(sample.meta.get("mirror_shift", 0.0)) * float(crop_scale(matrix))  # image pixels -> crop pixels
        if sample is not original:  # the reported crop matrix maps the original image, as for every sample
            matrix = (np.vstack([matrix, [0.0, 0.0, 1.0]]) @ np.vstack([sample.meta["reframe"], [0.0, 0.0, 1.0]]))[:2]
        if "cache_matrix" in original.meta:  # a pre-cropped face (data.cache=crops): from the photo, not the cached crop
            matrix = (np.vstack([matrix, [0.0, 0.0, 1.0]]) @ np.vstack([original.meta["cache_matrix"], [0.0, 0.0, 1.0]]))[:2]
        flipped = bool(self.flip_p and rng.random() < self.flip_p)
        if flipped:
            image, pts = hflip(image, pts, shift)
        pipe = self.synthetic_augment if sample.domain == "synthetic" else self.augment
        if pipe is not None:
            out = pipe(image=image, keypoints=pts)
            image, pts = out["image"], np.asarray(out["keypoints"], dtype=np.float32).reshape(-1, 2)
        return image, pts, matrix, flipped

    def __call__(self, sample: Sample) -> dict[str, Any]:
        image, pts, matrix, flipped = self._geometry(sample)
        # each point's weight in the loss: 1, or what the source gives (pseudo-labels the teacher is unsure of: 0)
        weight = sample.meta.get("point_weight")
        weight = np.ones(len(pts), np.float32) if weight is None else np.asarray(weight, np.float32)
        if flipped:
            weight = flip_point_values(weight)
        return {
            "image": torch.from_numpy(normalize(image)),
            "landmarks": torch.from_numpy(pts),
            "point_weight": torch.from_numpy(weight),
            "is_3d": torch.tensor(sample.convention == "3d"),
            "is_real": torch.tensor(sample.domain == "real"),
            "crop_matrix": torch.from_numpy(matrix.astype(np.float32)),
            "id": sample.id,
        }


def normalize(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> model input (3, H, W) float32, ImageNet-normalised. Plane by plane with in-place
    arithmetic (the same float32 operations as ``(image - MEAN) / STD``, so bit-identical): several times
    faster at 256 px, where it is the loader's hot path."""
    x = np.empty((3, *image.shape[:2]), np.float32)
    for c in range(3):
        np.subtract(image[..., c], MEAN[c], out=x[c], dtype=np.float32)
        x[c] /= STD[c]
    return x


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Model input tensor (3,S,S) back to an RGB uint8 image, for plots."""
    x = image.detach().cpu().numpy().transpose(1, 2, 0) * STD + MEAN
    return np.clip(x, 0, 255).astype(np.uint8)
