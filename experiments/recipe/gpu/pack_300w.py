"""Pack the 300-W folders of the recipe's protocol small enough to travel to a GPU machine without storage.

The GPU recipe trains from the crop cache (``data.cache=crops``), which keeps of each photo only a square
window of 2.0 x the landmark box, at 410 px for a 256-px training crop (crop_cache.cache_geometry). This
script cuts exactly that window from every training photo (AFW, HELEN train) and a 1.4 x window from every
test photo (LFPW train; the test crop is the 1.25 x window), re-encodes them as JPEG (quality 85: they, the
wheels and the project must fit the 64 MiB one device call carries) with their labels mapped by the same
affine, and writes NAME.jpg + NAME.pts folders in the 300-W layout under --dest.
On the GPU machine the crop cache then cuts the same window again (an identity warp), so training and test see
what they would from the original photos, up to one JPEG re-encoding. The packed copy is for transfer only:
write it outside the project (the data's licence), never commit it.

Two options for the unlabelled-photos protocol (experiments/unlabelled/gpu/):
- ``--whole-train SIDE`` writes the training photos whole instead, their longer side at most SIDE px: that pool is
  also the unlabelled one, pseudo-labelled from the whole photo; a window cut around its labels would hand the
  teacher the framing of the labels it must not read.
- ``--synthetic DATA_DIR`` also writes the study's synthetic sets (DGFaces in both export layouts, Face Synthetics:
  data/synthetic=study) under DEST/synthetic/ as one folder of NAME.jpg + NAME.pts (read with ``kind: folder``,
  ``convention: 3d``), each face the crop cache's training window.

    python experiments/recipe/gpu/pack_300w.py --root ../shared/data/300w --dest /tmp/300w_packed
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from omegaconf import OmegaConf

from landmark_lab.data.pts import write_pts
from landmark_lab.data.sample import Sample
from landmark_lab.data.synthetic_readers import DGFacesReader, FaceSyntheticsReader
from landmark_lab.data.w300 import load_split
from landmark_lab.datamodules.crop_cache import cache_geometry
from landmark_lab.errors import DataError
from landmark_lab.landmarks import landmark_box
from landmark_lab.transforms.geometry import crop_matrix, warp

PROJECT = Path(__file__).resolve().parents[3]
# What the crop cache keeps around the 1.25 x crop window: the config's data.cache_margin for training photos;
# 1.12 (a 1.4 x window) for test photos, whose crop is the 1.25 x window itself
TRAIN_MARGIN = float(OmegaConf.load(PROJECT / "conf" / "data" / "_base.yaml").cache_margin)
TEST_MARGIN = 1.12


def _write(name: Path, image: np.ndarray, pts: np.ndarray, quality: int, source: object) -> int:
    """``name``.jpg (RGB ``image`` at JPEG ``quality``) and ``name``.pts; returns the JPEG's bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SystemExit(f"could not encode {source}")
    name.with_suffix(".jpg").write_bytes(buf.tobytes())
    write_pts(name.with_suffix(".pts"), pts)
    return len(buf)


def _window(side: int, scale: float) -> Callable[[Sample], tuple[np.ndarray, np.ndarray]]:
    """The cut of a face: the ``scale`` x window of its landmark box at ``side`` px, its labels mapped with it."""
    def cut(s: Sample) -> tuple[np.ndarray, np.ndarray]:
        return warp(s.image, s.landmarks, crop_matrix(landmark_box(s.landmarks), side, scale), side)
    return cut


def _whole(side: int) -> Callable[[Sample], tuple[np.ndarray, np.ndarray]]:
    """The whole photo, its longer side at most ``side`` px (never enlarged; labels scaled, pixel centres kept)."""
    def cut(s: Sample) -> tuple[np.ndarray, np.ndarray]:
        h, w = s.image.shape[:2]
        f = min(1.0, side / max(h, w))
        image = s.image if f == 1.0 else cv2.resize(s.image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        return image, (s.landmarks + 0.5) * np.array([image.shape[1] / w, image.shape[0] / h], np.float32) - 0.5
    return cut


def _pack_folders(root: Path, dest: Path, folders: list[str], quality: int,
                  cut: Callable[[Sample], tuple[np.ndarray, np.ndarray]], what: str) -> int:
    """Each face of the 300-W ``folders`` cut by ``cut`` into ``dest`` (same folder names); returns the bytes."""
    total = 0
    for folder in load_split(root, folders):
        out = dest / folder.name
        out.mkdir(parents=True, exist_ok=True)
        for i in range(len(folder)):
            image, pts = cut(folder.load(i))
            total += _write(out / Path(folder.images[i]).stem, image, pts, quality, folder.images[i])
        print(f"{folder.name}: {len(folder)} {what} -> {out}")
    return total


def pack(root: Path, dest: Path, folders: list[str], crop: int, margin: float, quality: int) -> int:
    """Write the packed copy of ``folders`` (the crop cache's window for ``crop`` and ``margin``); returns the
    bytes written."""
    side, scale = cache_geometry({"size": crop, "scale": 1.25}, margin)
    return _pack_folders(root, dest, folders, quality, _window(side, scale), f"faces at {side} px ({scale:.2f} x box)")


def pack_whole(root: Path, dest: Path, folders: list[str], side: int, quality: int) -> int:
    """Write ``folders`` as whole photos, the longer side at most ``side`` px (never enlarged; labels scaled with
    them, pixel centres kept); returns the bytes written."""
    return _pack_folders(root, dest, folders, quality, _whole(side), f"whole photos, longer side at most {side} px")


def pack_synthetic(data_dir: Path, dest: Path, crop: int, quality: int) -> int:
    """Write the study's synthetic sets under ``data_dir`` (dgfaces/, dgfaces_v1/, facesynthetics/) into one folder
    ``dest``, each face the crop cache's training window for ``crop``; returns the bytes written."""
    side, scale = cache_geometry({"size": crop, "scale": 1.25}, TRAIN_MARGIN)
    readers = [DGFacesReader(data_dir / "dgfaces"), DGFacesReader(data_dir / "dgfaces_v1"),
               FaceSyntheticsReader(data_dir / "facesynthetics")]
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    cut = _window(side, scale)
    for tag, reader in zip(("dgfaces", "dgfaces_v1", "facesynthetics"), readers, strict=True):
        for i in range(len(reader)):
            image, pts = cut(reader.load(i))
            total += _write(dest / f"{tag}_{i:05d}", image, pts, quality, reader.images[i])
        print(f"{tag}: {len(reader)} synthetic faces at {side} px ({scale:.2f} x box) -> {dest}")
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True, help="300-W root (afw/, helen/trainset/, lfpw/trainset/)")
    p.add_argument("--dest", type=Path, required=True, help="output folder, outside the project")
    p.add_argument("--crop", type=int, default=256, help="training crop side of the GPU recipe (px)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality")
    p.add_argument("--whole-train", type=int, default=0, metavar="SIDE",
                   help="write the training photos whole, longer side at most SIDE px (0: the crop cache's window)")
    p.add_argument("--synthetic", type=Path, metavar="DATA_DIR",
                   help="also pack the synthetic sets under DATA_DIR (dgfaces/, dgfaces_v1/, facesynthetics/) into "
                        "DEST/synthetic")
    a = p.parse_args()
    if a.dest.resolve().is_relative_to(PROJECT):
        p.error(f"--dest {a.dest} is inside the project ({PROJECT}): the data's licence keeps copies out of it. "
                "Write it elsewhere and link it (ln -s /tmp/devdata .devdata, ignored by .git/info/exclude).")
    if not a.root.is_dir():  # checked here so that the message names this script's flag, not a config key
        p.error(f"--root {a.root}: folder not found; give the 300-W root holding afw/, helen/trainset/ and "
                "lfpw/trainset/ (../shared/data/300w here)")
    if a.synthetic is not None and not a.synthetic.is_dir():
        p.error(f"--synthetic {a.synthetic}: folder not found; give the folder holding dgfaces/, dgfaces_v1/ and "
                "facesynthetics/ (../shared/data here)")
    train = ["afw", "helen/trainset"]
    try:
        if a.whole_train:
            n = pack_whole(a.root, a.dest, train, a.whole_train, a.quality)
        else:
            n = pack(a.root, a.dest, train, a.crop, TRAIN_MARGIN, a.quality)
        n += pack(a.root, a.dest, ["lfpw/trainset"], a.crop, TEST_MARGIN, a.quality)
        if a.synthetic is not None:
            n += pack_synthetic(a.synthetic, a.dest / "synthetic", a.crop, a.quality)
    except DataError as e:
        raise SystemExit(f"pack_300w: {e}") from None
    print(f"{n / 2**20:.1f} MiB of JPEG under {a.dest}")


if __name__ == "__main__":
    main()
