"""Figures a person reads faster than numbers: predictions over faces, CED curves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def prediction_grid(images: list[np.ndarray], preds: np.ndarray, targets: np.ndarray, path: Path,
                    cols: int = 8, scale: int = 3) -> None:
    """Save a grid of faces with ground truth (green) and prediction (red) landmarks."""
    tiles = []
    for img, p, t in zip(images, preds, targets, strict=True):
        big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        big = cv2.cvtColor(big, cv2.COLOR_RGB2BGR)
        for pts, colour in ((t, (0, 200, 0)), (p, (0, 0, 255))):
            for x, y in (pts + 0.5) * scale:
                cv2.circle(big, (int(round(x)), int(round(y))), 2, colour, -1, cv2.LINE_AA)
        tiles.append(big)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    cv2.imwrite(str(path), np.vstack(rows))


def ced_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "") -> None:
    """Save cumulative error distribution curves (inter-ocular NME)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
