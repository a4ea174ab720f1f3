"""Figures a person reads faster than numbers: predictions over faces, CED curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from landmark_lab.utils.drawing import draw_points, pyplot


def draw_landmarks(image: np.ndarray, pred: np.ndarray, target: np.ndarray | None = None, scale: int = 3) -> np.ndarray:
    """An RGB image enlarged ``scale`` times with ground truth (green) and prediction (red) drawn on it."""
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for pts, colour in ((target, (0, 200, 0)), (pred, (255, 0, 0))):
        if pts is None:
            continue
        draw_points(big, pts, colour, 2, scale)
    return big


def prediction_grid(images: list[np.ndarray], preds: np.ndarray, targets: np.ndarray, path: Path,
                    cols: int = 8, scale: int = 3) -> None:
    """Save a grid of faces with ground truth (green) and prediction (red) landmarks."""
    tiles = [cv2.cvtColor(draw_landmarks(img, p, t, scale), cv2.COLOR_RGB2BGR)
             for img, p, t in zip(images, preds, targets, strict=True)]
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    cv2.imwrite(str(path), np.vstack(rows))


def ced_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "") -> None:
    """Save cumulative error distribution curves (inter-ocular NME)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, (xs, ys) in curves.items():
        ax.plot(np.asarray(xs) * 100, np.asarray(ys) * 100, label=name)
    ax.set_xlabel("NME, inter-ocular (%)")
    ax.set_ylabel("faces with NME <= x (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "Cumulative error distribution")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluation_figures(result: Any, run_dir: Path, title: str, baseline: Any = None) -> None:
    """``test_predictions.png`` (a few faces) and ``ced.png`` (with the mean-shape baseline if given) of an
    :class:`~landmark_lab.evaluation.EvalResult`."""
    if result.images:
        prediction_grid(result.images, result.preds, result.targets, run_dir / "test_predictions.png")
    curves = {"model": (result.ced["nme_io"], result.ced["fraction"])}
    if baseline is not None:
        curves["mean shape"] = (baseline.ced["nme_io"], baseline.ced["fraction"])
    ced_plot(curves, run_dir / "ced.png", title=title)
