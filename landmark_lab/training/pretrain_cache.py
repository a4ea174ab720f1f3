"""Cache of synthetic pre-training: it depends only on its own config, not on the real budget.

The key is a hash of everything that determines the pre-trained weights (synthetic data, crop and
augmentation, model, the stage's steps and learning rate, batch size, seed, validation settings).
The first run that needs an entry trains it and saves it atomically (temp file + rename) while
holding a lock, so parallel runs racing for the same entry train it once and never read a
half-written file; every later run loads it. A corrupt entry is moved aside and retrained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from landmark_lab.datamodules.splits import parse_budget
from landmark_lab.errors import DataError
from landmark_lab.models.checkpoint import apply_state, read_checkpoint
from landmark_lab.utils.io import torch_save_atomic

log = logging.getLogger(__name__)

KEY_VERSION = 3  # 3: optimiser and scheduler moved out of the model config (and norm/bias weight decay)
# Paths and process counts that do not change the weights.
_IGNORED = ("cache_dir", "workers")


def _strip(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in sorted(x.items()) if k not in _IGNORED}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _imitation_key(d: dict[str, Any]) -> dict[str, Any] | None:
    """Crop imitation fits on the first n_real real training images (capped at the budget): the real side
    and that count matter, not the budget itself."""
    ci = d.get("crop_imitation") or {}
    if not ci.get("enabled"):
        return None
    budget = parse_budget(d.get("real_budget", "all"))
    n = int(ci.get("n_real", 50))
    return {**ci, "n_real": n if budget is None else min(n, budget), "real": d["real"], "val_size": d["val_size"],
            "flip_double": d.get("flip_double")}


def key_material(cfg: DictConfig, stage: DictConfig) -> dict[str, Any]:
    """Everything the pre-trained weights depend on (and nothing they don't, like the real budget)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    d = c["data"]
    t = c["trainer"]
    return _strip({
        "version": KEY_VERSION,
        "synthetic": d["synthetic"],
        "synthetic_val_size": d.get("synthetic_val_size"),
        "synthetic_val_max": d.get("synthetic_val_max"),
        "split_seed": d.get("split_seed"),
        "batch_size": d["batch_size"],
        "transform": d["transform"],
        "crop_cache": [d.get("cache", "none"), d.get("cache_margin")],
        # Crop imitation fits on real calibration images: the real side and the budget's cap matter then.
        "crop_imitation": _imitation_key(d),
        "augment": c["augment"],
        "model": c["model"],
        "stage": {"steps": stage.steps, "lr": stage.lr},
        "seed": c["seed"],
        "trainer": {k: t.get(k) for k in ("precision", "deterministic")},
        "val_every": c["schedule"].get("val_every"),
        "optimizer": c.get("optimizer"),
        "scheduler": c.get("scheduler"),
        "early_stopping": (c.get("callbacks") or {}).get("early_stopping"),
    })


def cache_key(cfg: DictConfig, stage: DictConfig) -> str:
    """Short stable hash of :func:`key_material`."""
    return hashlib.sha256(_canonical(key_material(cfg, stage)).encode()).hexdigest()[:16]


class PretrainCache:
    """Folder of ``<key>.pt`` entries: ``{"state_dict": ..., "info": {...}, "material": {...}}``."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.pt"

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Exclusive lock for one key, across processes on this machine (and NFS with lock support)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.dir / f"{key}.lock")):
            yield

    def load(self, key: str, model: torch.nn.Module | None = None, material: dict | None = None) -> dict[str, Any] | None:
        """The entry (its weights loaded into ``model`` when given), or None when absent. An entry that is
        unreadable, holds anything but tensors and plain containers, whose stored key material is not ``material``
        (copied from another setup), whose weights do not match their checksum, or whose tensors do not fit
        ``model`` is moved to ``<key>.pt.corrupt`` and ignored (the stage is retrained); nothing in it runs."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            entry = read_checkpoint(p, "pre-training cache entry")
            if not isinstance(entry.get("info"), dict):
                raise DataError(f"{p}: not a pre-training cache entry (no 'info').")
            if material is not None and _canonical(entry.get("material")) != _canonical(material):
                raise DataError(f"{p}: its stored key material is not this run's (an entry from another setup)")
            if entry.get("checksum") != weights_checksum(entry["state_dict"]):
                raise DataError(f"{p}: its weights do not match their checksum (damaged, edited, or written by an "
                                "older version)")
            if model is not None:
                apply_state(model, entry["state_dict"], p, "pre-training cache entry")
            return entry
        except DataError as exc:
            bad = p.with_name(p.name + ".corrupt")
            os.replace(p, bad)
            log.warning("pre-training cache entry %s is unreadable (%s); moved to %s and retraining", p, exc, bad.name)
            return None

    def save(self, key: str, state_dict: dict[str, torch.Tensor], info: dict[str, Any], material: dict) -> Path:
        """Write an entry atomically, with the checksum of its weights."""
        entry = {"state_dict": state_dict, "info": info, "material": material, "checksum": weights_checksum(state_dict)}
        return torch_save_atomic(entry, self.path(key))


def _canonical(material: Any) -> str:
    """Key material as the one JSON text the key hashes and a stored entry's material is compared by."""
    return json.dumps(material, sort_keys=True, default=str)


def weights_checksum(state_dict: Any) -> str | None:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes (None for anything but a dict of tensors)."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        return None
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
