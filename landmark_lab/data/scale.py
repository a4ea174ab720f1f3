"""Large folders made from small ones, for measuring what indexing costs at the study's scale (100k renders).

:func:`link_farm` lays out ``n`` Face Synthetics entries under distinct names, each a hard link to one of a few
real renders copied into the folder first (hard links need one file system; a symbolic link to the shared data
would lead outside the folder, which the readers refuse), so 100,000 entries cost a few megabytes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from landmark_lab.errors import DataError


def link_farm(source: str | Path, dest: str | Path, n: int, progress: bool = True) -> Path:
    """``dest`` holding ``n`` entries ``NNNNNN.png`` + ``NNNNNN_ldmks.txt``, hard links to the Face Synthetics
    entries of ``source`` (copied into ``dest/_originals`` first), cycled in order. Reused if already complete."""
    source, dest = Path(source), Path(dest)
    labels = sorted(source.glob("*_ldmks.txt"))
    if not labels:
        raise DataError(f"{source}: no NNNNNN_ldmks.txt files to build a large folder from.")
    if (dest / f"{n - 1:06d}_ldmks.txt").is_file() and not (dest / f"{n:06d}_ldmks.txt").exists():
        return dest
    originals = dest / "_originals"  # a sub-folder: the reader lists only the folder's own files
    originals.mkdir(parents=True, exist_ok=True)
    pairs = []
    for lab in labels:
        img = lab.with_name(lab.name.replace("_ldmks.txt", ".png"))
        for f in (lab, img):
            if not (originals / f.name).exists():
                shutil.copyfile(f, originals / f.name)
        pairs.append((originals / lab.name, originals / img.name))
    for i in tqdm(range(n), desc=f"linking {n} entries", unit="entry", disable=not progress, leave=False):
        lab, img = pairs[i % len(pairs)]
        for src, name in ((lab, f"{i:06d}_ldmks.txt"), (img, f"{i:06d}.png")):
            target = dest / name
            if not target.exists():
                os.link(src, target)
    return dest
