"""One way every reader indexes its files: parse each entry once, fail clearly or skip and count."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from landmark_lab.errors import DataError
from landmark_lab.utils.io import atomic_path

log = logging.getLogger("landmark_lab.data")

E = TypeVar("E")
R = TypeVar("R")


# Below this many entries a folder is indexed in this process: starting worker processes costs more than it saves.
PARALLEL_FROM = 2000
_CHUNK = 500


def _parse_chunk(parse: Callable[[E], R], chunk: list[E]) -> list[tuple[bool, Any]]:
    out: list[tuple[bool, Any]] = []
    for entry in chunk:
        try:
            out.append((True, parse(entry)))
        except DataError as exc:
            out.append((False, str(exc)))
    return out


def _parsed_in_order(entries: list[E], parse: Callable[[E], R], workers: int, name: str) -> Iterator[tuple[bool, Any]]:
    """``parse`` of each entry, in order: in ``workers`` processes for large folders (``parse`` must then be
    picklable: a module-level function or a ``functools.partial`` of one), with a progress bar."""
    bar = tqdm(total=len(entries), desc=f"indexing {name}", unit="file", disable=len(entries) < PARALLEL_FROM,
               leave=False)
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(entries) >= PARALLEL_FROM else None
    try:
        if pool is None:
            for entry in entries:
                yield from _parse_chunk(parse, [entry])
                bar.update()
            return
        chunks = [entries[a:a + _CHUNK] for a in range(0, len(entries), _CHUNK)]
        # a few chunks ahead of the one consumed: a limit (10k of 100k) stops the work soon after it is reached
        pending = [pool.submit(_parse_chunk, parse, c) for c in chunks[: 2 * workers]]
        for i in range(len(chunks)):
            results = pending[i].result()
            if i + 2 * workers < len(chunks):
                pending.append(pool.submit(_parse_chunk, parse, chunks[i + 2 * workers]))
            bar.update(len(results))
            yield from results
    finally:  # also when the caller stops early (a limit, a bad file): chunks not started are dropped
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def index_entries(entries: Iterable[E], parse: Callable[[E], R], name: str, skip_bad: bool = False,
                  limit: int | None = None, workers: int = 1) -> tuple[list[E], list[R], list[str]]:
    """``(kept entries, their parsed labels, skip messages)``.

    A :class:`DataError` from ``parse`` stops indexing (its message names the file) unless
    ``skip_bad``; then the entry is left out, counted, and one warning says how many were skipped.
    ``limit`` stops after that many good entries (e.g. 10k of Face Synthetics' 100k). ``workers`` > 1 parses
    large folders in that many processes; the result is the same, in the same order.
    """
    kept: list[E] = []
    parsed: list[R] = []
    skipped: list[str] = []
    entries = list(entries)
    results = _parsed_in_order(entries, parse, workers, name)
    for entry, (ok, value) in zip(entries, results, strict=False):
        if not ok:
            if not skip_bad:
                results.close()
                raise DataError(f"{value} (or set skip_bad=true on this data source to skip and count bad items)")
            skipped.append(value)
            continue
        kept.append(entry)
        parsed.append(value)
        if limit and len(kept) >= limit:
            break
    results.close()
    if skipped:
        log.warning("%s: skipped %d bad item(s) (skip_bad=true); first: %s", name, len(skipped), skipped[0])
    return kept, parsed, skipped


INDEX_VERSION = 1


def files_key(folder: Path, files: Iterable[Path | os.DirEntry], **params: Any) -> str:
    """A key for an index of ``files`` in ``folder`` (paths, or the entries of an ``os.scandir``): their names,
    sizes and modification times, and ``params`` (the reader's settings); any added, removed, replaced or touched
    file changes it."""
    h = hashlib.sha256(json.dumps({"version": INDEX_VERSION, "folder": str(folder.resolve()), **params},
                                  sort_keys=True, default=str).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def load_index(cache_dir: str | Path | None, key: str) -> dict[str, np.ndarray] | None:
    """A folder's cached index (arrays, no pickles), or None when absent or unreadable (then rebuilt)."""
    if not cache_dir:
        return None
    path = Path(cache_dir) / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        log.warning("index cache %s is unreadable (%s); indexing the folder again", path, exc)
        return None


def save_index(cache_dir: str | Path | None, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Store a folder's index atomically (a half-written file is never read)."""
    if not cache_dir:
        return
    with atomic_path(Path(cache_dir) / f"{key}.npz") as tmp:
        np.savez(tmp, **arrays)


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
