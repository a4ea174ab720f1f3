"""The one sample type every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from landmark_lab.landmarks import NUM_LANDMARKS

DOMAINS = ("synthetic", "real")
CONVENTIONS = ("3d", "2d")  # projected 3D points vs. annotated 2D outline


@dataclass
class Sample:
    """One face.

    ``image`` is RGB uint8 (H, W, 3); ``landmarks`` are (68, 2) float32 image-pixel coordinates,
    0-based, x to the right, y down (the first pixel's centre is (0, 0)). ``domain`` is
    ``synthetic`` or ``real``; ``convention`` is ``3d`` (projected 3D points) or ``2d`` (the visible
    outline an annotator clicks). ``id`` is stable across runs.
    """

    image: np.ndarray
    landmarks: np.ndarray
    domain: str
    convention: str
    id: str
    visibility: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.landmarks.shape != (NUM_LANDMARKS, 2):
            raise ValueError(f"sample {self.id}: landmarks must be (68, 2), got {self.landmarks.shape}")
        if self.domain not in DOMAINS:
            raise ValueError(f"sample {self.id}: domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"sample {self.id}: convention must be one of {CONVENTIONS}, got {self.convention!r}")
