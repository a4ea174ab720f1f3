"""Label ambiguity (the study's Figure 6): how much each landmark varies once pose and size are removed.

Every face is aligned to the mean shape by a similarity transform (generalised Procrustes analysis);
the per-landmark standard deviation of the aligned labels, in units of the mean shape's inter-ocular
distance, is what is left: true shape variation (identity, expression, 3D pose) plus labelling noise.
Shape variation is smooth and low-dimensional, labelling noise is neither, so a second measure takes
the residual after the first ``k`` principal components of the aligned shapes: mostly noise. Points an
annotator cannot pin down (jaw, brow ends, nose bridge) stand out there on hand-labelled data.
"""

from __future__ import annotations

import numpy as np

from landmark_lab.landmarks import OUTER_EYE_CORNERS, REGIONS


def _align(shape: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``shape`` (centred) rotated and scaled onto ``ref`` (centred) by least squares (no reflection)."""
    u, s, vt = np.linalg.svd(shape.T @ ref)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, d]) @ vt
    scale = (s * [1.0, d]).sum() / (shape**2).sum()
    return scale * shape @ rot


def _level(mean: np.ndarray) -> np.ndarray:
    """``mean`` scaled to unit inter-ocular distance and rotated so the eye line is horizontal."""
    v = mean[OUTER_EYE_CORNERS[1]] - mean[OUTER_EYE_CORNERS[0]]
    iod = np.linalg.norm(v)
    c, s = v / iod
    return mean @ np.array([[c, -s], [s, c]]) / iod


def procrustes(shapes: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(aligned shapes, mean shape) of (N, 68, 2) ``shapes`` (generalised Procrustes analysis); the mean
    is upright (eyes level) with unit inter-ocular distance."""
    x = shapes.astype(np.float64) - shapes.mean(1, keepdims=True)
    mean = _level(x[0])
    for _ in range(iterations):
        aligned = np.stack([_align(s, mean) for s in x])
        mean = _level(aligned.mean(0))
    aligned = np.stack([_align(s, mean) for s in x])
    return aligned, aligned.mean(0)


def point_std(shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(68,) per-landmark std (fraction of the inter-ocular distance) and the (68, 2) mean shape."""
    aligned, mean = procrustes(shapes)
    return np.sqrt(((aligned - mean) ** 2).sum(-1).mean(0)), mean


def region_std(std: np.ndarray) -> dict[str, float]:
    """Mean per-point std by region (jaw, brows, nose, eyes, mouth)."""
    return {name: float(std[list(idx)].mean()) for name, idx in REGIONS.items()}


def shape_residual_std(shapes: np.ndarray, components: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(68,) per-landmark std of what a ``components``-mode linear shape model (PCA of the aligned
    shapes) cannot explain, as a fraction of the inter-ocular distance, and the mean shape."""
    aligned, mean = procrustes(shapes)
    d = (aligned - mean).reshape(len(aligned), -1)
    k = min(components, min(d.shape) - 1)
    _, _, vt = np.linalg.svd(d, full_matrices=False)
    residual = (d - (d @ vt[:k].T) @ vt[:k]).reshape(aligned.shape)
    return np.sqrt((residual**2).sum(-1).mean(0)), mean
