"""Pre-cropped data cache (``data.cache=crops``): decode and crop every face once, read crops at memory speed.

Decoding a 512-px PNG (Face Synthetics) or a 16-bit RGBA PNG (DGFaces) for every sample at every epoch
starves a GPU. Each source's faces are cropped once, around their landmark box with ``margin`` times the
training crop's side (room for the shift/zoom jitter and the augmentations), at the training crop's
resolution, into one memory-mapped array per source. The cached sample's labels are the original labels
mapped by the same similarity, and the training crop is computed from those labels exactly as from the
original ones, so the two compose to the uncached crop (labels equal to float precision; pixels are
interpolated twice instead of once).

Entries are keyed by the source's files (path, size, modification time) and the crop settings, built in
parallel with a progress bar, written to a temporary folder and renamed (atomic), and rebuilt on mismatch.
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

from landmark_lab.data.sample import Sample
from landmark_lab.errors import ConfigError
from landmark_lab.landmarks import landmark_box
from landmark_lab.transforms.geometry import crop_matrix, warp

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
    side, scale = cache_geometry(crop, margin)
    key_material = {"version": VERSION, "files": _files_key(source), "side": side, "scale": scale, "n": len(source.ids)}
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir)
    final = root / f"{source.name.replace('/', '_')}_{side}px_{key}"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if not (final / "meta.json").is_file():
            _build(source, final, side, scale, key_material, workers, progress)
    return CachedSource(source, final)


def _build(source: Any, final: Path, side: int, scale: float, material: dict, workers: int, progress: bool) -> None:
    n = len(source.ids)
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, side, side, 3)).flush()
        mats = np.stack([crop_matrix(landmark_box(lm), side, scale) for lm in source.landmarks.astype(np.float64)])
        lms = np.einsum("nij,nkj->nki", mats[:, :, :2], source.landmarks.astype(np.float64)) + mats[:, None, :, 2]
        np.save(tmp / "landmarks.npy", lms.astype(np.float32))
        np.save(tmp / "matrices.npy", mats)
        chunks = [list(range(a, min(a + 64, n))) for a in range(0, n, 64)]
        bar = tqdm(total=n, desc=f"caching crops of {source.name}", unit="face", disable=not progress, leave=False)
        jobs = [(source, c, str(tmp / "images.npy"), side, scale, 0) for c in chunks]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for done in pool.map(_crop_chunk, jobs):
                    bar.update(done)
        else:
            for job in jobs:
                bar.update(_crop_chunk(job))
        bar.close()
        (tmp / "meta.json").write_text(json.dumps({**material, "source": source.name}, indent=2))
        shutil.rmtree(final, ignore_errors=True)  # a stale or half-built entry of the same key
        os.replace(tmp, final)
        log.info("crop cache for %s: %d faces at %d px in %s", source.name, n, side, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
