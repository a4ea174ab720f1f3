"""Read and write the 300-W ``.pts`` landmark format (1-based pixel coordinates in the file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landmark_lab.errors import DataError
from landmark_lab.landmarks import NUM_LANDMARKS
from landmark_lab.utils.io import snippet, write_text_atomic


def read_pts(path: str | Path, expected: int = NUM_LANDMARKS) -> np.ndarray:
    """Landmarks of a ``.pts`` file as (N, 2) float32, converted to 0-based pixel-centre coordinates."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read landmark file ({exc}).") from exc
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    try:
        start, end = lines.index("{"), lines.index("}")
    except ValueError:
        raise DataError(
            f"{path}: not a .pts file: expected a header ('version: 1', 'n_points: 68') and the points "
            "between '{' and '}' lines."
        ) from None
    declared = None
    for ln in lines[:start]:
        if ln.lower().startswith("n_points"):
            try:
                declared = int(ln.split(":", 1)[1])
            except (IndexError, ValueError):
                raise DataError(f"{path}: unparsable header line {snippet(ln)!r}.") from None
    rows = lines[start + 1 : end]
    if declared is not None and declared != len(rows):
        raise DataError(f"{path}: header says n_points: {declared} but the file lists {len(rows)} points.")
    if len(rows) != expected:
        raise DataError(
            f"{path}: has {len(rows)} points, expected {expected} (the 68-point iBUG scheme). "
            "Fix or remove this file."
        )
    pts = np.empty((len(rows), 2), dtype=np.float32)
    for i, row in enumerate(rows):
        parts = row.split()
        try:
            if len(parts) != 2:
                raise ValueError
            pts[i] = float(parts[0]), float(parts[1])
        except ValueError:
            raise DataError(f"{path}: point {i + 1} is {snippet(row)!r}; expected two numbers 'x y'.") from None
    if not np.isfinite(pts).all():
        raise DataError(f"{path}: contains non-finite coordinates (nan/inf).")
    return pts - 1.0


def write_pts(path: str | Path, landmarks: np.ndarray) -> None:
    """Write 0-based (N, 2) landmarks as a 1-based ``.pts`` file (atomically)."""
    path = Path(path)
    body = "\n".join(f"{x + 1.0:.3f} {y + 1.0:.3f}" for x, y in np.asarray(landmarks, dtype=np.float64))
    write_text_atomic(path, f"version: 1\nn_points: {len(landmarks)}\n{{\n{body}\n}}\n")
