"""Data sources from config: which folders of which reader feed the synthetic and real sides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from landmark_lab.data.folder import LandmarkFolder
from landmark_lab.data.procedural.generate import ensure_set
from landmark_lab.data.sample import Sample
from landmark_lab.data.synthetic_readers import DGFacesReader, FaceSyntheticsReader
from landmark_lab.data.w300 import load_split
from landmark_lab.datamodules.splits import Item
from landmark_lab.errors import ConfigError
from landmark_lab.landmarks import flip_point_values
from landmark_lab.registry import Registry
from landmark_lab.transforms.geometry import crop_scale, hflip


def _kind(spec: Mapping[str, Any], side: str) -> str:
    kind = spec.get("kind")
    if kind not in SOURCES:
        raise ConfigError(f"data.{side}.kind={kind!r} is not a known data source; use one of {list(SOURCES)}.")
    return str(kind)


def _parts(spec: Mapping[str, Any], side: str) -> list[Mapping[str, Any]]:
    """The sources a spec stands for: itself, or each entry of ``sources`` for ``kind: multi``."""
    if _kind(spec, side) != "multi":
        return [spec]
    parts = spec.get("sources") or {}
    if not isinstance(parts, Mapping) or not parts:
        raise ConfigError(f"data.{side}.kind=multi needs data.{side}.sources: a mapping name -> source config.")
    for name, part in parts.items():
        if not isinstance(part, Mapping) or _kind(part, f"{side}.sources.{name}") == "multi":
            raise ConfigError(f"data.{side}.sources.{name} must be one source config (kind: dgfaces, folder, ...).")
    return list(parts.values())


def _procedural_set(spec: Mapping[str, Any], side: str, split: str, progress: bool) -> Path:
    n = int(spec["n"] if side == "synthetic" else spec[f"n_{split}"])
    return ensure_set(spec["cache_dir"], spec["domain"], split, n, int(spec["size"]), int(spec["seed"]),
                      workers=spec.get("workers"), progress=progress)


def prepare(spec: Mapping[str, Any], side: str, progress: bool = True) -> None:
    """Generate what a source needs before it can be read (procedural sets); no-op for files on disk."""
    for part in _parts(spec, side):
        if _kind(part, side) == "procedural":
            for split in ("train", "test") if side == "real" else ("train",):
                _procedural_set(part, side, split, progress)


def _root(spec: Mapping[str, Any], side: str, key: str = "root") -> Path:
    root = spec.get(key)
    if not root:
        raise ConfigError(f"data.{side}.{key} is not set: point it at the {spec['kind']} folder.")
    return Path(str(root)).expanduser()


# kind -> opener(spec, side, split, progress) -> readers. "multi" pools the sources listed under it.
SOURCES: Registry[Callable[..., list[Any]]] = Registry("data source", "data.<side>.kind")


@SOURCES.register("procedural")
def _open_procedural(spec: Mapping[str, Any], side: str, split: str, progress: bool) -> list[LandmarkFolder]:
    folder = _procedural_set(spec, side, split, progress)
    convention = "3d" if spec["domain"] == "synthetic" else "2d"
    return [LandmarkFolder(folder, spec["domain"], convention, name=f"procedural-{spec['domain']}-{split}",
                           lazy=bool(spec.get("lazy_labels", False)))]


@SOURCES.register("folder")
def _open_folder(spec: Mapping[str, Any], side: str, split: str, progress: bool) -> list[LandmarkFolder]:
    domain = "real" if side == "real" else "synthetic"
    key = "test_root" if side == "real" and split == "test" else "root"
    return [LandmarkFolder(_root(spec, side, key), domain, str(spec.get("convention", "2d" if domain == "real" else "3d")),
                           labels=spec.get("labels"), one_based=bool(spec.get("one_based", False)),
                           skip_bad=bool(spec.get("skip_bad", False)), limit=spec.get("limit"),
                           lazy=bool(spec.get("lazy_labels", False)))]


def _synthetic_only(kind: str, side: str) -> None:
    if side != "synthetic":
        raise ConfigError(f"data.{side}.kind={kind} is a synthetic dataset; use it as data/synthetic={kind}.")


@SOURCES.register("dgfaces")
def _open_dgfaces(spec: Mapping[str, Any], side: str, split: str, progress: bool) -> list[Any]:
    _synthetic_only("dgfaces", side)
    return [DGFacesReader(_root(spec, side), tuple(spec.get("background", (128, 128, 128))), spec.get("limit"),
                          bool(spec.get("skip_bad", False)))]


@SOURCES.register("facesynthetics")
def _open_facesynthetics(spec: Mapping[str, Any], side: str, split: str, progress: bool) -> list[Any]:
    _synthetic_only("facesynthetics", side)
    return [FaceSyntheticsReader(_root(spec, side), spec.get("limit"), bool(spec.get("skip_bad", False)),
                                 cache_dir=spec.get("cache_dir"), workers=spec.get("workers"))]


@SOURCES.register("300w")
def _open_300w(spec: Mapping[str, Any], side: str, split: str, progress: bool) -> list[LandmarkFolder]:
    return load_split(_root(spec, side), spec[f"{split}_split"], lazy=bool(spec.get("lazy_labels", False)))


SOURCES.register("multi")(lambda spec, side, split, progress: [])  # opened part by part (see _parts)
KINDS = tuple(SOURCES)


def with_lazy_labels(spec: Mapping[str, Any], side: str) -> dict[str, Any]:
    """``spec`` with every part asked to read its label files on demand (only the faces a run trains or validates
    on are opened; the rest of the pool stays unlabelled as far as training can tell)."""
    for part in _parts(spec, side):
        if _kind(part, side) not in ("300w", "folder", "procedural"):
            raise ConfigError(f"data/unlabelled=pool_rest needs a real side whose labels sit beside each image "
                              f"(300w, folder, procedural); data.{side}.kind={part['kind']} cannot leave them unread.")
    if _kind(spec, side) == "multi":
        return {**spec, "sources": {k: {**v, "lazy_labels": True} for k, v in spec["sources"].items()}}
    return {**spec, "lazy_labels": True}


def mirror_shift(spec: Mapping[str, Any], side: str) -> float:
    """A source's ``mirror_shift`` (image pixels, 0 when not set): how far right of a mirror-symmetric labelling its
    labels sit, kept when a face is mirrored (see :func:`~landmark_lab.landmarks.flip_landmarks`)."""
    value = spec.get("mirror_shift", 0.0)
    try:
        shift = float(0.0 if value is None else value)
    except (TypeError, ValueError):
        shift = float("nan")
    if not np.isfinite(shift) or abs(shift) > 16:
        raise ConfigError(f"data.{side}.mirror_shift={value!r} must be a number of pixels (about -2 to 2; 0 for labels "
                          "that mirror exactly, e.g. synthetic projections). It is measured by `evaluate`'s "
                          "'offset' line on held-out faces a flip-trained model has not seen.")
    return shift


def _open_one(spec: Mapping[str, Any], side: str, split: str, progress: bool) -> list[Any]:
    readers = SOURCES.get(_kind(spec, side))(spec, side, split, progress)
    shift = mirror_shift(spec, side)
    for reader in readers:  # read by FaceDataset wherever a face of this source is mirrored
        reader.mirror_shift = shift
    return readers


def open_sources(spec: Mapping[str, Any], side: str, split: str, progress: bool = True) -> list[LandmarkFolder]:
    """Readers for ``split`` ("train" or "test") of one side ("synthetic" or "real"); ``kind: multi``
    concatenates the readers of each of its ``sources``."""
    return [reader for part in _parts(spec, side) for reader in _open_one(part, side, split, progress)]


def check_held_out(train: list[Any], test: list[Any]) -> None:
    """Refuse a real test set that shares image files with the real training pool (validation included): its NME
    would measure faces the model was trained or selected on. The same file is caught however it is reached (a
    300-W split and a listed folder, a symbolic or a hard link: device and inode), and so is a copy under another
    name (same size, then same content digest: only files of equal size are read)."""
    import hashlib

    def files(sources: list[Any]) -> list[tuple[Path, str]]:
        return [(Path(p), f"{s.name}/{Path(p).name}") for s in sources for p in getattr(s, "images", [])]

    digests: dict[Path, str] = {}

    def digest(path: Path) -> str:
        if path not in digests:
            digests[path] = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        return digests[path]

    by_inode: dict[tuple[int, int], str] = {}
    by_size: dict[int, list[Path]] = {}
    for path, name in files(train):
        st = path.stat()
        by_inode[(st.st_dev, st.st_ino)] = name
        by_size.setdefault(st.st_size, []).append(path)
    shared = []
    for path, name in files(test):
        st = path.stat()
        same_file = (st.st_dev, st.st_ino) in by_inode
        if same_file or any(digest(other) == digest(path) for other in by_size.get(st.st_size, [])):
            shared.append(name)
    shared.sort()
    if shared:
        raise ConfigError(
            f"the real test set shares {len(shared)} image(s) with the real training pool (e.g. {shared[0]}) as the "
            "same file, a link to it or a copy: its NME would measure faces the model was trained or validated on. Test "
            "on folders you do not train on, e.g. data.train_split=[afw,helen/trainset] data.split=[lfpw/trainset] "
            "(300-W), or a data.real.test_root apart from data.real.root (data/real=folder).")


class FaceDataset(Dataset):
    """Items of several sources through one transform; flipped items are mirrored before it."""

    def __init__(self, sources: list[LandmarkFolder], items: list[Item], transform) -> None:
        self.sources, self.items, self.transform = sources, items, transform

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, i: int) -> Sample:
        """Item ``i`` before the transform: the source's image and labels (mirrored for flipped items)."""
        item = self.items[i]
        sample = self.sources[item.source].load(item.index)
        shift = float(getattr(self.sources[item.source], "mirror_shift", 0.0))
        if shift and "cache_matrix" in sample.meta:  # a pre-cropped face (data.cache=crops): its crop's pixels
            shift *= float(crop_scale(sample.meta["cache_matrix"]))
        if shift:  # in this sample's image pixels: the training flip (FaceTransform) mirrors its labels the same way
            sample.meta = {**sample.meta, "mirror_shift": shift}
        if item.flip:
            sample.image, sample.landmarks = hflip(sample.image, sample.landmarks, shift)
            sample.id += "#flip"
            if sample.visibility is not None:
                sample.visibility = flip_point_values(sample.visibility)
            if "point_weight" in sample.meta:
                sample.meta = {**sample.meta, "point_weight": flip_point_values(sample.meta["point_weight"])}
        return sample

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.transform(self.sample(i))

    def landmarks(self) -> np.ndarray:
        """Raw (un-transformed) labels of all items, (N, 68, 2): used e.g. for the mean-shape baseline."""
        return np.stack([self.sources[it.source].landmarks[it.index] for it in self.items])
