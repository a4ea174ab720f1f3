"""One way every reader indexes its files: parse each entry once, fail clearly or skip and count."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from landmark_lab.errors import DataError

log = logging.getLogger("landmark_lab.data")

E = TypeVar("E")
R = TypeVar("R")


def index_entries(entries: Iterable[E], parse: Callable[[E], R], name: str, skip_bad: bool = False,
                  limit: int | None = None) -> tuple[list[E], list[R], list[str]]:
    """``(kept entries, their parsed labels, skip messages)``.

    A :class:`DataError` from ``parse`` stops indexing (its message names the file) unless
    ``skip_bad``; then the entry is left out, counted, and one warning says how many were skipped.
    ``limit`` stops after that many good entries (e.g. 10k of Face Synthetics' 100k).
    """
    kept: list[E] = []
    parsed: list[R] = []
    skipped: list[str] = []
    for entry in entries:
        try:
            value = parse(entry)
        except DataError as exc:
            if not skip_bad:
                raise DataError(f"{exc} (or set skip_bad=true on this data source to skip and count bad items)") from None
            skipped.append(str(exc))
            continue
        kept.append(entry)
        parsed.append(value)
        if limit and len(kept) >= limit:
            break
    if skipped:
        log.warning("%s: skipped %d bad item(s) (skip_bad=true); first: %s", name, len(skipped), skipped[0])
    return kept, parsed, skipped


def within(folder: Path, path: Path) -> Path:
    """``path``, a file a reader found in ``folder``, resolved; a link leading outside the folder is refused.

    A reader opens only what lies inside its data folder (as a label table's entries must): a ``NAME.pts`` that
    links to another file on the disk would be read, and its lines shown in error messages.
    """
    real = path.resolve()
    if not real.is_relative_to(folder.resolve()):
        raise DataError(f"{path}: links to a file outside the data folder {folder}; a reader opens only files inside "
                        "its folder. Copy the file in, or point the source's root at a folder that holds it.")
    return real


# A label may leave its image by this fraction of the image side (faces cut by the border are normal);
# beyond it the file's coordinates are wrong (another scale, swapped axes, a typo).
OUTSIDE_MARGIN = 0.5


def check_image(image: Path, landmarks: np.ndarray | None = None, where: str | None = None,
                margin: float = OUTSIDE_MARGIN) -> tuple[int, int]:
    """Open ``image``'s header (it must exist and be a readable image) and, with ``landmarks``, check they lie
    within ``margin`` image sides of it. Returns (width, height); a :class:`DataError` names the file."""
    where = where or str(image)
    if not image.is_file():
        raise DataError(f"{where}: image {image} not found.")
    try:
        with Image.open(image) as im:
            w, h = im.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{image}: cannot open image (corrupt or not an image: {exc}). Replace or remove it.") from None
    if landmarks is not None:
        lo = np.array([-margin * w, -margin * h])
        hi = np.array([(1 + margin) * w, (1 + margin) * h])
        bad = np.nonzero(((landmarks < lo) | (landmarks > hi)).any(axis=1))[0]
        if len(bad):
            i = int(bad[0])
            x, y = (float(v) for v in landmarks[i])
            raise DataError(
                f"{where}: {len(bad)} landmark(s) lie far outside the {w}x{h} image (point {i + 1} at "
                f"({x:.1f}, {y:.1f}); allowed: {margin:g} image sides beyond the border). Check the file's "
                "coordinates (pixel units, x before y, the right image)."
            )
    return w, h
