"""Generate procedural faces once into a cache folder in the 300-W file format, and reuse them.

Each (domain, split, count, size, seed) set lives in its own folder: ``NAME.png`` (synthetic) or
``NAME.jpg`` (real-like, at its sampled JPEG quality) + ``NAME.pts``, plus ``labels.npz`` with the
noise-free labels of both conventions, visibility and head pose, and ``info.json``. A set is written
into a temporary folder and renamed when complete, so an interrupted generation is never read.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from landmark_lab.data.procedural.domains import DOMAINS, Face, generate_face
from landmark_lab.data.pts import write_pts

FORMAT_VERSION = 2  # bump when generated faces or labels change: old caches are then ignored


def face_seed(seed: int, domain: str, split: str, index: int) -> int:
    """Per-face seed: independent streams for every (seed, domain, split, index)."""
    key = [seed, DOMAINS.index(domain), zlib.crc32(split.encode()), index]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def set_dir(cache_dir: str | Path, domain: str, split: str, n: int, size: int, seed: int) -> Path:
    """Cache folder of one generated set."""
    return Path(cache_dir) / f"procedural_v{FORMAT_VERSION}" / f"{domain}_{split}_n{n}_size{size}_seed{seed}"


def _one(args: tuple[str, str, int, int, int]) -> tuple[int, Face]:
    domain, split, size, seed, index = args
    cv2.setNumThreads(1)
    return index, generate_face(domain, face_seed(seed, domain, split, index), size)


def _write(folder: Path, index: int, face: Face) -> None:
    stem = f"{index:06d}"
    bgr = cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR)
    if face.jpeg_quality is None:
        ok = cv2.imwrite(str(folder / f"{stem}.png"), bgr)
    else:
        ok = cv2.imwrite(str(folder / f"{stem}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, face.jpeg_quality])
    if not ok:
        raise OSError(f"could not write image {stem} into {folder}")
    write_pts(folder / f"{stem}.pts", face.landmarks)


def ensure_set(
    cache_dir: str | Path,
    domain: str,
    split: str,
    n: int,
    size: int = 128,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Return the folder of a generated set, generating it first if it is not cached yet."""
    final = set_dir(cache_dir, domain, split, n, size, seed)
    if (final / "info.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    workers = workers or min(4, os.cpu_count() or 1)
    lm3d = np.zeros((n, 68, 2), np.float32)
    lm2d = np.zeros((n, 68, 2), np.float32)
    vis = np.zeros((n, 68), np.float32)
    pose = np.zeros((n, 3), np.float32)
    t0 = time.perf_counter()
    jobs = [(domain, split, size, seed, i) for i in range(n)]
    bar = tqdm(total=n, desc=f"generating {domain}/{split} faces", unit="img", disable=not progress)

    def store(i: int, face: Face) -> None:
        _write(tmp, i, face)
        lm3d[i], lm2d[i], vis[i], pose[i] = face.lm_3d, face.lm_2d, face.visibility, face.pose
        bar.update()

    try:
        if workers > 1 and n > 16:
            # spawn, not fork: forking a process whose torch/OpenMP threads already ran can deadlock
            # (a multirun job generating data after an earlier job trained).
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for i, face in pool.map(_one, jobs, chunksize=8):
                    store(i, face)
        else:
            for job in jobs:
                store(*_one(job))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    np.savez_compressed(tmp / "labels.npz", lm_3d=lm3d, lm_2d=lm2d, visibility=vis, pose=pose)
    info = {
        "generator": "landmark_lab procedural faces (toy stand-in, not real data)",
        "format_version": FORMAT_VERSION,
        "domain": domain,
        "split": split,
        "n": n,
        "size": size,
        "seed": seed,
        "convention": "3d" if domain == "synthetic" else "2d",
        "seconds": round(seconds, 2),
        "workers": workers,
    }
    (tmp / "info.json").write_text(json.dumps(info, indent=2))
    try:
        os.rename(tmp, final)
    except OSError:
        # Another process finished the same set first: theirs is identical (deterministic), keep it.
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "info.json").is_file():
            raise
    return final
