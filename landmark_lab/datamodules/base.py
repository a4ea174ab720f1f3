"""The shared data module: sources, real pool splits and budgets, loaders; what trains and validates when is the
strategy's (:mod:`landmark_lab.datamodules.strategies`)."""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from landmark_lab.data.folder import LazyLabels
from landmark_lab.data.unlabelled import UnlabelledFolder
from landmark_lab.datamodules.label_translation import adapt_labels
from landmark_lab.datamodules.samplers import CyclingSampler
from landmark_lab.datamodules.sources import FaceDataset, check_held_out, open_sources, prepare, with_lazy_labels
from landmark_lab.datamodules.splits import budget_items, expand, groups_of, holdout, parse_budget, validation_count
from landmark_lab.errors import ConfigError
from landmark_lab.transforms.crop_imitation import CropImitation, measure_sources
from landmark_lab.transforms.pipeline import FaceTransform

log = logging.getLogger(__name__)


def _restore_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def worker_defers_sigterm(worker_id: int) -> None:
    """A loader worker's ``worker_init_fn``: it survives its first SIGTERM, and a second one ends it as before.

    A SIGTERM sent to every process of a run (a scheduler cancelling a job, ``kill -- -PGID``, ``pkill -f``) would
    otherwise kill the workers while the main process waits for a batch boundary to stop, and the main process would
    die with DataLoader's "worker is killed by signal" traceback instead of its interruption record. Deferred, the
    main process stops the stage and shuts the workers down itself; a second SIGTERM (multiprocessing terminating a
    worker at exit) still ends one, so nothing can hang on it."""
    signal.signal(signal.SIGTERM, _restore_sigterm)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):  # seed_everything(workers=True): what Lightning adds to a loader
        pl_worker_init_function(worker_id)           # without a worker_init_fn of its own, so the streams are unchanged


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class LandmarkDataModule(L.LightningDataModule):
    """Builds every split once; :class:`~landmark_lab.datamodules.strategies.StrategyDataModule` decides what
    trains and what validates in each stage.

    The real training pool is split into validation and train groups first (an image and its
    flip always on the same side), then the budget takes an exact, nested subset of the train
    groups. The test split is a different set of files and is only used by ``test_dataloader``.
    """

    strategy = "base"

    def __init__(
        self,
        data: Mapping[str, Any],
        augment: Mapping[str, Any] | None = None,
        seed: int = 0,
        train_steps: int = 1000,
        progress: bool = True,
        calibrate_on_real: bool = False,
    ) -> None:
        super().__init__()
        self.cfg = _plain(data)
        # {"transforms": [...] for every training image, "synthetic_transforms": [...] for synthetic ones}
        self.augment = _plain(augment) or {}
        self.seed = seed
        self.train_steps = train_steps
        self.progress = progress
        # Real training labels are needed beyond training itself (e.g. to fit a post-hoc label adapter).
        self.calibrate_on_real = calibrate_on_real
        self._ready = False

    # -- building ------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        for side in ("synthetic", "real"):
            if self.uses(side) or side == "real":
                prepare(self.cfg[side], side, self.progress)

    def uses(self, side: str) -> bool:
        """Whether this strategy trains on ``side`` ("synthetic"/"real"); the real test set is always used."""
        return True

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        c = self.cfg
        tcfg = c["transform"]
        self.train_tf = FaceTransform(tcfg["crop"], train=True, flip_p=tcfg.get("flip_p", 0.0),
                                      augment=self.augment.get("transforms"),
                                      synthetic_augment=self.augment.get("synthetic_transforms"))
        self.eval_tf = FaceTransform(tcfg["crop"], train=False)
        flip = bool(c.get("flip_double", False))

        imitate = bool((c.get("crop_imitation") or {}).get("enabled", False)) and self.uses("synthetic")
        # Crop imitation measures real training faces even when the strategy trains on synthetic only.
        need_real = self.uses("real") or imitate or self.calibrate_on_real
        unlabelled = dict(c.get("unlabelled") or {})
        pool_rest = unlabelled.get("kind") == "pool_rest"
        # pool_rest: the photos of the pool beyond the budget are training's unlabelled photos, so their label
        # files are never read: every label is read on demand, and only the budget's and validation's are asked for.
        real_spec = with_lazy_labels(c["real"], "real") if pool_rest else c["real"]
        real_sources = open_sources(real_spec, "real", "train", self.progress) if need_real or pool_rest else []
        test_sources = open_sources(c["real"], "real", "test", self.progress)
        check_held_out(real_sources, test_sources)
        self.real_sources = self._cached(real_sources)
        if self.real_sources:
            groups = groups_of([len(s) for s in self.real_sources])
            train_g, val_g = holdout(groups, int(c["val_size"]), self.seed_data)
            self.real_pool = train_g
            self.real_train_items = budget_items(train_g, c.get("real_budget", "all"), flip, self.seed_data,
                                                 cap=bool(c.get("cap_budget", False)))
            self.real_val_items = expand(val_g, flip)
            if pool_rest:
                for it in self.real_train_items + self.real_val_items:  # bad label files named before training
                    self.real_sources[it.source].landmarks[it.index]
        self.unlabelled = self._unlabelled(unlabelled)
        if imitate:
            self.train_tf.imitation = self.fit_crop_imitation()
        if self.uses("synthetic"):
            self.syn_sources = self._cached(open_sources(c["synthetic"], "synthetic", "train", self.progress))
            groups = groups_of([len(s) for s in self.syn_sources])
            n_val = validation_count(c.get("synthetic_val_size", 0), len(groups), c.get("synthetic_val_max"))
            syn_train, syn_val = holdout(groups, n_val, self.seed_data)
            self.syn_train_items, self.syn_val_items = expand(syn_train, False), expand(syn_val, False)
        self.test_sources = self._cached(test_sources)
        test_groups = groups_of([len(s) for s in self.test_sources])
        self.test_items = expand(test_groups, bool(c.get("mirror_test", False)))
        self._ready = True

    def _unlabelled(self, spec: dict[str, Any]) -> list[tuple[Path, str]]:
        """(image path, id) of every unlabelled photo (``data.unlabelled``): a folder's, or the real training pool's
        photos outside the budget and validation (``pool_rest``), in a stable order."""
        kind = spec.get("kind", "none")
        limit = spec.get("limit")
        if kind == "folder":
            root = spec.get("root")
            if not root:
                raise ConfigError("data.unlabelled.root is not set: point it at your folder of unlabelled photos.")
            folder = UnlabelledFolder(str(root), skip_bad=bool(spec.get("skip_bad", False)), limit=limit)
            return list(zip(folder.images, folder.ids, strict=True))
        if kind == "pool_rest":
            taken = {(it.source, it.index) for it in self.real_train_items}
            rest = [(s, i) for s, i in self.real_pool if (s, i) not in taken][: limit or None]
            return [(Path(self.real_sources[s].images[i]), self.real_sources[s].ids[i]) for s, i in rest]
        if kind not in (None, "none"):
            raise ConfigError(f"data.unlabelled.kind={kind!r} is not known; use data/unlabelled=folder or pool_rest.")
        return []

    def _cached(self, sources: list) -> list:
        """``sources`` served from the pre-cropped cache when ``data.cache=crops`` (built on first use). A source whose
        labels must stay unread (``data/unlabelled=pool_rest``: its unlabelled photos are in it) stays uncached: the
        cache cuts every photo around its labels."""
        if self.cfg.get("cache", "none") != "crops":
            return sources
        from landmark_lab.datamodules.crop_cache import cached

        c = self.cfg
        workers = max(1, int(c.get("num_workers", 1) or 1))
        out = []
        for s in sources:
            if isinstance(getattr(s, "landmarks", None), LazyLabels):
                log.info("crop cache: %s stays uncached (its unlabelled photos' labels are never read)", s.name)
                out.append(s)
            else:
                out.append(cached(s, c["transform"]["crop"], c["cache_dir"], float(c.get("cache_margin", 1.6)), workers,
                                  self.progress))
        return out

    def calibration_items(self, n: int) -> list:
        """The first ``n`` real training images (capped at the budget), for statistics fitted on real data:
        budgets are nested, so these are inside every budget of at least ``n`` and nothing beyond it is used."""
        budget = parse_budget(self.cfg.get("real_budget", "all"))
        n = min(n, budget) if budget is not None else n
        if self.cfg.get("flip_double"):  # a budget counts mirrored copies: n of them are n/2 photos
            n = math.ceil(n / 2)
        return budget_items(self.real_pool, min(n, len(self.real_pool)), False, self.seed_data)

    def fit_crop_imitation(self) -> CropImitation:
        """Measure the framing of the calibration images (``data.crop_imitation.n_real``)."""
        ci = self.cfg["crop_imitation"]
        target = measure_sources(self.real_sources, self.calibration_items(int(ci.get("n_real", 50))))
        return CropImitation(target, resolution=bool(ci.get("resolution", True)))

    @property
    def seed_data(self) -> int:
        """Seed of splits and budgets: ``data.split_seed`` if set, else the run seed."""
        s = self.cfg.get("split_seed")
        return int(self.seed if s is None else s)

    # -- loaders -------------------------------------------------------------------------------
    def _loader(self, dataset: FaceDataset, train: bool, **kw: Any) -> DataLoader:
        workers = int(self.cfg.get("num_workers", 0))
        pin = self.cfg.get("pin_memory", "auto")
        pin = torch.cuda.is_available() if pin == "auto" else bool(pin)
        return DataLoader(
            dataset,
            num_workers=workers,
            persistent_workers=workers > 0 and train and bool(self.cfg.get("persistent_workers", True)),
            pin_memory=pin,
            worker_init_fn=worker_defers_sigterm if workers > 0 else None,
            **kw,
        )

    def training_set(self) -> tuple[list, list]:
        """(sources, items) this strategy trains on now."""
        raise NotImplementedError

    def rank_world(self) -> tuple[int, int]:
        """(this process's rank, number of ranks) of the trainer running this data module; (0, 1) alone."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.global_rank), int(trainer.world_size)
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def train_dataloader(self) -> DataLoader:
        bs = int(self.cfg["batch_size"])
        ds = FaceDataset(*self.training_set(), self.train_tf)
        # The sampler shards itself across DDP ranks (each rank: its own train_steps * bs samples).
        sampler = CyclingSampler(len(ds), self.train_steps * bs, self.seed, *self.rank_world())
        return self._loader(ds, True, batch_size=bs, sampler=sampler, drop_last=True)

    def _eval_loader(self, sources: list, items: list) -> DataLoader:
        ds = FaceDataset(sources, items, self.eval_tf)
        return self._loader(ds, False, batch_size=int(self.cfg.get("eval_batch_size", 64)), shuffle=False)

    def real_train_eval_dataloader(self) -> DataLoader:
        """The real training budget without augmentation (to fit a post-hoc label adapter)."""
        return self._eval_loader(self.real_sources, self.real_train_items)

    def adapt_synthetic_labels(self, adapter: Any, input_size: int) -> None:
        """Translate the synthetic labels to the real convention with ``adapter`` (data adaptation)."""
        crop = self.cfg["transform"]["crop"]
        self.syn_sources = [adapt_labels(adapter, s, crop, input_size) for s in self.syn_sources]

    def real_val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.real_sources, self.real_val_items)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_sources, self.test_items)

    def summary(self) -> dict[str, Any]:
        """Sizes of every split, for logs and metrics.json."""
        out: dict[str, Any] = {"strategy": self.strategy, "test": len(self.test_items)}
        if self.uses("real") or self.calibrate_on_real:
            out.update(real_pool=len(self.real_pool) * (2 if self.cfg.get("flip_double") else 1),
                       real_train=len(self.real_train_items), real_val=len(self.real_val_items))
        if self.uses("synthetic"):
            out.update(synthetic_train=len(self.syn_train_items), synthetic_val=len(self.syn_val_items))
        if self.unlabelled:
            out.update(unlabelled=len(self.unlabelled))
        return out
