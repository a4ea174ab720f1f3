"""Pre-cropped data cache (``data.cache=crops``): decode and crop every face once, read crops at memory speed.

Decoding a 512-px PNG (Face Synthetics) or a 16-bit RGBA PNG (DGFaces) for every sample at every epoch
starves a GPU. Each source's faces are cropped once, around their landmark box with ``margin`` times the
training crop's side (room for the shift/zoom jitter and the augmentations), at the training crop's
resolution, into one memory-mapped array per source. The cached sample's labels are the original labels
mapped by the same similarity, and the training crop is computed from those labels exactly as from the
original ones, so the two compose to the uncached crop (labels equal to float precision; pixels are
interpolated twice instead of once).

Entries are keyed by the source's files (path, size, modification time) and the crop settings, built in
parallel with a progress bar, written to a ``.partial`` folder and renamed (atomic), and rebuilt on mismatch; an
interrupted build resumes from the chunks it finished. An
entry is verified when it is opened (shapes, dtypes, row count, a digest of its labels and of sampled crops): a
damaged one is rebuilt, with a log line saying why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from landmark_lab.data.folder import LazyLabels
from landmark_lab.data.sample import Sample
from landmark_lab.errors import ConfigError
from landmark_lab.landmarks import landmark_box
from landmark_lab.transforms.geometry import crop_matrix, warp
from landmark_lab.utils.io import write_text_atomic

log = logging.getLogger(__name__)
VERSION = 1


def cache_geometry(crop: dict[str, Any], margin: float) -> tuple[int, float]:
    """(cached crop side in pixels, crop scale relative to the landmark box) for a training crop config."""
    return int(math.ceil(int(crop["size"]) * margin)), float(crop.get("scale", 1.25)) * margin


def _files_key(source: Any) -> str:
    h = hashlib.sha256()
    for path in source.images:
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(np.ascontiguousarray(source.landmarks, dtype=np.float32).tobytes())
    return h.hexdigest()


def _crop_chunk(args: tuple[Any, list[int], str, int, float, int]) -> int:
    source, indices, images_path, side, scale, offset = args
    images = np.load(images_path, mmap_mode="r+")
    for i in indices:
        s = source.load(i)
        m = crop_matrix(landmark_box(s.landmarks), side, scale)
        images[i - offset], _ = warp(s.image, s.landmarks, m, side)
    images.flush()
    return len(indices)


class CachedSource:
    """A reader's faces, pre-cropped: the same interface (``load``, ``landmarks``, ``images``, ``ids``, ...)
    with images and labels in the cached crop's pixels."""

    def __init__(self, source: Any, folder: Path) -> None:
        self.source, self.folder = source, folder
        self.images, self.ids = source.images, source.ids
        self.domain, self.convention = source.domain, source.convention
        self.name = f"{source.name}(cached)"
        self.pixels = np.load(folder / "images.npy", mmap_mode="r")
        self.landmarks = np.load(folder / "landmarks.npy")
        self.matrices = np.load(folder / "matrices.npy")
        self.visibility = getattr(source, "visibility", None)
        self.mirror_shift = float(getattr(source, "mirror_shift", 0.0))  # image pixels, as the source's labels

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Sample:
        vis = self.visibility[index].copy() if self.visibility is not None else None
        return Sample(np.array(self.pixels[index]), self.landmarks[index].copy(), self.domain, self.convention,
                      self.ids[index], visibility=vis, meta={"cache_matrix": self.matrices[index]})


def cached(source: Any, crop: dict[str, Any], cache_dir: str | Path, margin: float = 1.6, workers: int = 1,
           progress: bool = True) -> CachedSource:
    """``source`` served from its crop cache under ``cache_dir`` (built first if absent or stale)."""
    if crop.get("box", "landmarks") != "landmarks":
        raise ConfigError("data.cache=crops crops around the landmark box; it needs data.transform.crop.box=landmarks "
                          f"(got {crop.get('box')!r}). Use data.cache=none for whole-image or face-box crops.")
    if isinstance(getattr(source, "landmarks", None), LazyLabels):
        raise ConfigError(f"data.cache=crops: {source.name}'s labels must stay unread (it holds unlabelled photos), and "
                          "the cache cuts every photo around its labels; serve it uncached.")
    side, scale = cache_geometry(crop, margin)
    key_material = {"version": VERSION, "files": _files_key(source), "side": side, "scale": scale, "n": len(source.ids)}
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir)
    final = root / f"{source.name.replace('/', '_')}_{side}px_{key}"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        problem = verify(final, len(source.ids), side) if (final / "meta.json").is_file() else "absent"
        if problem != "absent" and problem is not None:
            log.warning("crop cache %s: %s; rebuilding it", final, problem)
        if problem is not None:
            _build(source, final, side, scale, key_material, workers, progress)
    return CachedSource(source, final)


# What each array of an entry must be: (shape after the face count, dtype).
_ARRAYS = {"images": (None, np.uint8), "landmarks": ((68, 2), np.float32), "matrices": ((2, 3), np.float64)}
_DIGEST_ROWS = 64  # image rows read for the digest: a cheap check that still catches zeroed or swapped crops
_BUILD_CHUNK = 64  # faces per task; a resumed build redoes at most the chunks that were running


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(arrays["landmarks"]).tobytes())
    h.update(np.ascontiguousarray(arrays["matrices"]).tobytes())
    images = arrays["images"]
    rows = np.unique(np.linspace(0, len(images) - 1, min(len(images), _DIGEST_ROWS)).astype(int))
    h.update(np.ascontiguousarray(images[rows]).tobytes())
    return h.hexdigest()


def verify(folder: Path, n: int, side: int) -> str | None:
    """What is wrong with the entry in ``folder`` (None: nothing): every array must load without pickles, have
    ``n`` rows of the right shape and dtype, and match the digest recorded when it was built."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    except (OSError, ValueError, json.JSONDecodeError) as exc:  # truncated, deleted, object arrays, not JSON
        return f"unreadable ({type(exc).__name__}: {str(exc)[:80]})"
    for name, (tail, dtype) in _ARRAYS.items():
        shape = (n, *(tail or (side, side, 3)))
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            return f"{name}.npy holds {arrays[name].dtype} {arrays[name].shape}, expected {np.dtype(dtype)} {shape}"
    if not isinstance(meta, dict) or meta.get("digest") != _digest(arrays):
        return "its contents do not match the digest recorded when it was built"
    return None


def _build(source: Any, final: Path, side: int, scale: float, material: dict, workers: int, progress: bool) -> None:
    """Crop every face into ``final`` (via ``final.partial``, renamed when complete). A build that was interrupted
    (killed, preempted) resumes: the chunks it finished are recorded in ``final.partial/done.json`` and skipped."""
    n = len(source.ids)
    tmp = final.with_name(f"{final.name}.partial")  # one builder at a time: cached() holds the entry's lock
    record = tmp / "done.json"
    done: set[int] = set()
    if record.is_file():
        try:
            state = json.loads(record.read_text())
            if state.get("material") == material and (tmp / "images.npy").is_file():
                done = {int(c) for c in state.get("chunks", [])}
        except (OSError, ValueError):
            done = set()
    if not done:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, side, side, 3)).flush()
        mats = np.stack([crop_matrix(landmark_box(lm), side, scale) for lm in source.landmarks.astype(np.float64)])
        lms = np.einsum("nij,nkj->nki", mats[:, :, :2], source.landmarks.astype(np.float64)) + mats[:, None, :, 2]
        np.save(tmp / "landmarks.npy", lms.astype(np.float32))
        np.save(tmp / "matrices.npy", mats)
    else:
        log.info("crop cache for %s: resuming an interrupted build (%d of %d chunks done)", source.name, len(done),
                 math.ceil(n / _BUILD_CHUNK))
    chunks = [(k, list(range(a, min(a + _BUILD_CHUNK, n)))) for k, a in enumerate(range(0, n, _BUILD_CHUNK))]
    todo = [(k, c) for k, c in chunks if k not in done]
    bar = tqdm(total=n, initial=n - sum(len(c) for _, c in todo), desc=f"caching crops of {source.name}", unit="face",
               disable=not progress, leave=False)

    def finished(k: int, count: int) -> None:
        done.add(k)
        bar.update(count)
        write_text_atomic(record, json.dumps({"material": material, "chunks": sorted(done)}))

    jobs = [(source, c, str(tmp / "images.npy"), side, scale, 0) for _, c in todo]
    if workers > 1 and jobs:
        with ProcessPoolExecutor(workers) as pool:
            for (k, _), count in zip(todo, pool.map(_crop_chunk, jobs), strict=True):
                finished(k, count)
    else:
        for (k, _), job in zip(todo, jobs, strict=True):
            finished(k, _crop_chunk(job))
    bar.close()
    arrays = {name: np.load(tmp / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    meta = {**material, "source": source.name, "digest": _digest(arrays)}
    del arrays  # the memory maps close before the folder is renamed
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    record.unlink()
    shutil.rmtree(final, ignore_errors=True)  # a stale or damaged entry of the same key
    os.replace(tmp, final)
    log.info("crop cache for %s: %d faces at %d px in %s", source.name, n, side, final)
