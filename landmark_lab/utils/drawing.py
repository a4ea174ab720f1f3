"""The one landmark drawer and the one matplotlib set-up every figure uses."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def draw_points(canvas: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], radius: int = 2,
                scale: float = 1.0) -> np.ndarray:
    """Draw ``(K, 2)`` landmarks (pixel-centre coordinates of the image ``canvas`` was made from, enlarged ``scale``
    times) onto ``canvas`` in place, as filled anti-aliased dots in ``colour`` (in the canvas's channel order);
    points that are not finite (masked pseudo-labels) are left out. Returns ``canvas``."""
    # pixel i of the image covers canvas pixels [i * scale, (i + 1) * scale): its centre is (i + 0.5) * scale - 0.5
    for x, y in (np.asarray(points, dtype=np.float64).reshape(-1, 2) + 0.5) * scale - 0.5:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(canvas, (int(round(x)), int(round(y))), radius, colour, -1, cv2.LINE_AA)
    return canvas


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (no screen needed). Imported when a figure is drawn, not
    at start-up: matplotlib adds about half a second to every command that never plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
