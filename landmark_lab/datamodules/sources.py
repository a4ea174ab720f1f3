"""Data sources from config: which folders of which reader feed the synthetic and real sides."""

from __future__ import annotations

from collections.abc import Mapping
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
from landmark_lab.transforms.geometry import hflip

KINDS = ("procedural", "300w", "dgfaces", "facesynthetics", "folder", "multi")


def _kind(spec: Mapping[str, Any], side: str) -> str:
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"data.{side}.kind={kind!r} is not a known data source; use one of {KINDS}.")
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


def _open_one(spec: Mapping[str, Any], side: str, split: str, progress: bool) -> list[LandmarkFolder]:
    kind = _kind(spec, side)
    if kind == "procedural":
        folder = _procedural_set(spec, side, split, progress)
        convention = "3d" if spec["domain"] == "synthetic" else "2d"
        return [LandmarkFolder(folder, spec["domain"], convention, name=f"procedural-{spec['domain']}-{split}")]
    skip_bad, limit = bool(spec.get("skip_bad", False)), spec.get("limit")
    if kind == "folder":
        domain = "real" if side == "real" else "synthetic"
        key = "test_root" if side == "real" and split == "test" else "root"
        return [LandmarkFolder(_root(spec, side, key), domain, str(spec.get("convention", "2d" if domain == "real" else "3d")),
                               labels=spec.get("labels"), one_based=bool(spec.get("one_based", False)),
                               skip_bad=skip_bad, limit=limit)]
    root = _root(spec, side)
    if kind in ("dgfaces", "facesynthetics"):
        if side != "synthetic":
            raise ConfigError(f"data.{side}.kind={kind} is a synthetic dataset; use it as data/synthetic={kind}.")
        if kind == "dgfaces":
            return [DGFacesReader(root, tuple(spec.get("background", (128, 128, 128))), limit, skip_bad)]
        return [FaceSyntheticsReader(root, limit, skip_bad)]
    return load_split(root, spec[f"{split}_split"])


def open_sources(spec: Mapping[str, Any], side: str, split: str, progress: bool = True) -> list[LandmarkFolder]:
    """Readers for ``split`` ("train" or "test") of one side ("synthetic" or "real"); ``kind: multi``
    concatenates the readers of each of its ``sources``."""
    return [reader for part in _parts(spec, side) for reader in _open_one(part, side, split, progress)]


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
        if item.flip:
            sample.image, sample.landmarks = hflip(sample.image, sample.landmarks)
            sample.id += "#flip"
        return sample

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.transform(self.sample(i))

    def landmarks(self) -> np.ndarray:
        """Raw (un-transformed) labels of all items, (N, 68, 2): used e.g. for the mean-shape baseline."""
        return np.stack([self.sources[it.source].landmarks[it.index] for it in self.items])
