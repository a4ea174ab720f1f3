"""The 68-point iBUG landmark scheme: indices, regions and the horizontal-flip permutation.

All indices are 0-based. "Right" means the subject's right, which is the image's left.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68

# Named index ranges (half-open) of the 68-point scheme.
REGIONS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)),
    "mouth": tuple(range(48, 68)),
}
# Everything but the jaw: the label gap between 3D-projected and 2D-outline labels lives on the jaw.
INNER_FACE: tuple[int, ...] = tuple(range(17, 68))

RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
# Outer eye corners: the 300-W inter-ocular normaliser.
OUTER_EYE_CORNERS = (36, 45)

# New index i takes old point FLIP_68[i]; applying it twice is the identity.
FLIP_68: np.ndarray = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
     26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
     27, 28, 29, 30,
     35, 34, 33, 32, 31,
     45, 44, 43, 42, 47, 46,
     39, 38, 37, 36, 41, 40,
     54, 53, 52, 51, 50, 49, 48,
     59, 58, 57, 56, 55,
     64, 63, 62, 61, 60,
     67, 66, 65],
    dtype=np.int64,
)  # fmt: skip


def flip_point_values(values: np.ndarray) -> np.ndarray:
    """Per-point values (68, ...) of a face (visibility, loss weights) in the mirrored face's point order."""
    return np.asarray(values)[FLIP_68]  # an index array: numpy returns a new array


def flip_landmarks(landmarks: np.ndarray, width: int, shift: float = 0.0) -> np.ndarray:
    """Mirror (68, 2) pixel-centre landmarks of an image of ``width`` and swap left/right indices.

    ``shift``: how far (pixels) the label set puts its points right of where a mirror-symmetric labelling would
    (``data.real.mirror_shift``): the mirrored labels keep that offset, x' = (width - 1) - x + 2 * shift, so a
    mirrored face is labelled the way the annotators label every face.
    """
    out = flip_point_values(landmarks)
    out[:, 0] = (width - 1) - out[:, 0] + 2.0 * shift
    return out


def landmark_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """Tight box ``(x0, y0, x1, y1)`` around the landmarks."""
    x0, y0 = landmarks.min(axis=0)
    x1, y1 = landmarks.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)
