"""Self-training: a teacher model pseudo-labels unlabelled photos, a confidence rule keeps the likeliest.

The teacher predicts through :class:`~landmark_lab.inference.predictor.Predictor` (the code path users predict
with: detector or whole photo, re-cropped around its own prediction, flip-averaged), on the training device.
Predictions are cached under ``self_train.cache_dir``, keyed by the teacher's weights, the photos (path, size,
modification time) and the prediction settings, so a sweep pays for each teacher once. The rule that keeps photos
is applied after the cache, so rules can be compared on one set of predictions (``analyze pseudo``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from landmark_lab.data.folder import read_image
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.inference.detectors import build_detector
from landmark_lab.inference.predictor import Predictor
from landmark_lab.landmarks import NUM_LANDMARKS
from landmark_lab.utils.io import atomic_path

log = logging.getLogger("landmark_lab.train")

RULES = ("peak", "flip", "both")
CACHE_VERSION = 2  # 2: per-point flip gaps stored


@dataclass
class PseudoLabels:
    """A teacher's predictions on unlabelled photos: ``landmarks`` (N, 68, 2) image pixels, ``peak`` (N,) the
    head's confidence (heatmap peak height; flip agreement for regression heads), ``flip_gap`` (N,) the mean
    distance to the un-mirrored prediction of the mirrored crop in crop sides, ``found`` (N,) whether a face
    was found at all; ``point_gap`` (N, 68) the flip gap per point (None in files written before it was kept)."""

    images: list[Path]
    ids: list[str]
    landmarks: np.ndarray
    peak: np.ndarray
    flip_gap: np.ndarray
    found: np.ndarray
    point_gap: np.ndarray | None = None

    def confidence(self, rule: str) -> np.ndarray:
        """Higher is more trusted. ``both``: the mean of the two rules' ranks (their scales differ)."""
        if rule not in RULES:
            raise ConfigError(f"self_train.confidence={rule!r} is not a rule; use one of {list(RULES)}.")
        if rule == "peak":
            return self.peak.astype(np.float64)
        if rule == "flip":
            return -self.flip_gap.astype(np.float64)
        ranks = [np.argsort(np.argsort(v)) for v in (self.peak, -self.flip_gap)]
        return (ranks[0] + ranks[1]) / 2.0

    def keep(self, rule: str, share: float) -> np.ndarray:
        """Boolean mask of the ``share`` most confident photos among those where a face was found."""
        if not 0.0 < share <= 1.0:
            raise ConfigError(f"self_train.keep={share} must be in (0, 1]: the share of photos kept.")
        conf = np.where(self.found, self.confidence(rule), -np.inf)
        n = int(round(share * int(self.found.sum())))
        order = np.argsort(-conf, kind="stable")[:n]
        mask = np.zeros(len(conf), dtype=bool)
        mask[order] = True
        return mask

    def point_weights(self, kept: np.ndarray, drop: float) -> np.ndarray:
        """(N, 68) loss weights of the points: 0 for the ``drop`` share of the ``kept`` photos' points whose flip
        gap is largest (the points the teacher is least sure of), 1 for the rest."""
        if not 0.0 <= drop < 1.0:
            raise ConfigError(f"self_train.point_drop={drop} must be in [0, 1): the share of points left out.")
        weights = np.ones((len(self.images), NUM_LANDMARKS), np.float32)
        kept = np.asarray(kept, dtype=bool)
        if drop == 0.0 or not kept.any():
            return weights
        if self.point_gap is None:
            raise DataError("these pseudo-labels have no per-point flip gaps (written by an older version); delete "
                            "the file to predict again, or set self_train.point_drop=0.")
        gaps = self.point_gap[kept]
        if not np.isfinite(gaps).all():  # predicted without the mirrored pass (self_train.flip=false, a heatmap head)
            raise ConfigError("self_train.point_drop ranks points by the teacher's flip gap, and these pseudo-labels were "
                              "predicted without the mirrored crop: set self_train.flip=true, or point_drop=0.")
        n_drop = int(round(drop * gaps.size))
        if n_drop:
            order = np.argsort(-gaps, axis=None, kind="stable")[:n_drop]
            w = np.ones(gaps.size, np.float32)
            w[order] = 0.0
            weights[kept] = w.reshape(gaps.shape)
        return weights

    def save(self, path: Path, kept: np.ndarray | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write an ``.npz`` (atomically); ``kept`` and ``extra`` (a JSON record) are stored when given."""
        arrays = {"landmarks": self.landmarks, "peak": self.peak, "flip_gap": self.flip_gap, "found": self.found,
                  "images": np.array([str(p) for p in self.images]), "ids": np.array(self.ids)}
        if self.point_gap is not None:
            arrays["point_gap"] = self.point_gap
        if kept is not None:
            arrays["kept"] = kept
        arrays["record"] = np.array(json.dumps(extra or {}))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> tuple[PseudoLabels, np.ndarray | None, dict[str, Any]]:
        """(labels, kept mask or None, record) from :meth:`save`'s file (read without unpickling)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                labels = cls([Path(p) for p in z["images"]], [str(i) for i in z["ids"]], z["landmarks"], z["peak"],
                             z["flip_gap"], z["found"], z["point_gap"] if "point_gap" in z.files else None)
                kept = z["kept"] if "kept" in z.files else None
                record = json.loads(str(z["record"])) if "record" in z.files else {}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a readable pseudo-label file ({exc}); delete it to predict again.") from None
        if labels.landmarks.shape != (len(labels.images), NUM_LANDMARKS, 2):
            raise DataError(f"{path}: landmarks of shape {labels.landmarks.shape}; delete it to predict again.")
        return labels, kept, record


def check_self_train_config(cfg: Any) -> None:
    """``data.unlabelled`` and ``self_train``, checked before anything is read (only where a stage uses them)."""
    from landmark_lab.utils.checks import checkpoint_file, choice, integer, number, required

    kind = choice(cfg, "data.unlabelled.kind", ["none", "folder", "pool_rest"], default="none")
    if not any(str(st.get("train_on", "real")) == "pseudo" for st in cfg.strategy.stages):
        return
    if kind == "folder":
        required(cfg, "data.unlabelled.root", "/path/to/photos")
    if kind != "none":
        choice(cfg, "data.unlabelled.detector", ["dlib", "none"], default="none")
        integer(cfg, "data.unlabelled.refine", low=0, default=2)
        integer(cfg, "data.unlabelled.upsample", low=0, default=1)
        if str(cfg.data.unlabelled.get("detector", "none")) == "dlib":
            from landmark_lab.inference.detectors import import_dlib

            import_dlib()
    integer(cfg, "self_train.rounds", low=1, default=1)
    if number(cfg, "self_train.point_drop", low=0, high=1, default=0.0) == 1.0:
        raise ConfigError("self_train.point_drop=1 would leave every pseudo-labelled point out of the student's loss; "
                          "use a share below 1 (e.g. 0.1).")
    choice(cfg, "self_train.confidence", RULES, default="peak")
    number(cfg, "self_train.keep", low=0, high=1, strict_low=True, default=0.8)
    number(cfg, "self_train.labelled_share", low=0, high=1, default=0.25)
    teacher = cfg.self_train.get("teacher")
    if teacher:
        checkpoint_file("self_train.teacher", teacher)


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of the model's weights (names and values): the teacher's identity in the cache key."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(model: torch.nn.Module, photos: list[tuple[Path, str]], settings: dict[str, Any]) -> str:
    """Key of a teacher's predictions: its weights, each photo (path, size, modification time), the settings."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"version": CACHE_VERSION, "weights": weights_digest(model), "settings": settings},
                        sort_keys=True).encode())
    for path, _ in photos:
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def predict_photos(model: Any, photos: list[tuple[Path, str]], spec: dict[str, Any], flip: bool, device: str,
                   progress: bool = True) -> PseudoLabels:
    """The teacher's prediction on every photo: the largest face the detector finds (or the whole photo with
    ``detector: none``), refined ``refine`` times around its own landmarks, flip-averaged when ``flip``."""
    detector = build_detector(str(spec.get("detector", "none")), int(spec.get("upsample", 1)))
    was_training = model.training
    predictor = Predictor.from_model(model, device=device, detector=detector, refine=int(spec.get("refine", 2)))
    n = len(photos)
    lms = np.zeros((n, NUM_LANDMARKS, 2), np.float32)
    peak, gap, found = np.zeros(n), np.full(n, np.inf), np.zeros(n, dtype=bool)
    point_gap = np.full((n, NUM_LANDMARKS), np.inf, np.float32)
    for i, (path, _) in enumerate(tqdm(photos, desc="teacher: pseudo-labels", disable=not progress, unit="photo")):
        faces = predictor.predict(read_image(path), flip=flip)
        if faces:
            face = faces[0]  # the detector's largest face
            lms[i], peak[i], found[i] = face.landmarks, face.score, True
            gap[i] = face.flip_gap if face.flip_gap is not None else np.inf
            if face.point_gaps is not None:
                point_gap[i] = face.point_gaps
    model.train(was_training)
    return PseudoLabels([p for p, _ in photos], [i for _, i in photos], lms, peak, gap, found, point_gap)


def _cached_predictions(model: Any, photos: list[tuple[Path, str]], spec: dict[str, Any], settings: dict[str, Any],
                        cache_dir: Any, device: str, progress: bool) -> tuple[PseudoLabels, Path | None, bool]:
    """``model``'s predictions on ``photos``: from the cache when these weights saw these photos with these settings."""
    path = Path(str(cache_dir)) / f"{cache_key(model, photos, settings)}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            labels, _, _ = PseudoLabels.load(path)
            if [str(p) for p in labels.images] == [str(p) for p, _ in photos]:
                return labels, path, True
        except DataError as exc:
            log.warning("%s; predicting again", exc)
    labels = predict_photos(model, photos, spec, bool(settings["flip"]), device, progress)
    if path is not None:
        labels.save(path)
    return labels, path, False


def adapt_batchnorm(model: Any, labels: PseudoLabels, device: str, batch_size: int = 32, progress: bool = True) -> int:
    """AdaBN (Li et al. 2016): the BatchNorm layers' running statistics re-estimated on the unlabelled photos,
    cropped around the teacher's own predictions as training crops faces; weights are not touched. Returns the
    number of crops used (0 when the model has no BatchNorm)."""
    from torch.utils.data import DataLoader

    from landmark_lab.data.unlabelled import PseudoLabelled
    from landmark_lab.datamodules.sources import FaceDataset
    from landmark_lab.datamodules.splits import Item
    from landmark_lab.transforms.pipeline import FaceTransform

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    found = np.nonzero(labels.found)[0]
    if not norms or not len(found):
        return 0
    source = PseudoLabelled([labels.images[i] for i in found], labels.landmarks[found], [labels.ids[i] for i in found])
    dataset = FaceDataset([source], [Item(0, i) for i in range(len(source))], FaceTransform(dict(model.hparams.crop),
                                                                                             train=False))
    was_training, momenta = model.training, [m.momentum for m in norms]
    model.to(device).eval()
    for m in norms:  # a cumulative average over every crop, not an exponential one
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc="teacher: AdaBN", disable=not progress):
            model(batch["image"].to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return len(source)


def pseudo_label(model: Any, photos: list[tuple[Path, str]], spec: dict[str, Any], self_train: dict[str, Any],
                 device: str, progress: bool = True) -> tuple[PseudoLabels, dict[str, Any]]:
    """The teacher's pseudo-labels for ``photos`` (from the cache when this teacher saw these photos before) and a
    record of how they were made (for the stage record and metrics.json). With ``self_train.adabn`` the teacher's
    BatchNorm statistics are first re-estimated on the photos (:func:`adapt_batchnorm`, in place: the student
    starts from the adapted teacher) and the adapted teacher predicts."""
    if not photos:
        raise ConfigError("data.unlabelled holds no photo to pseudo-label (pool_rest: the budget and validation "
                          "take the whole real pool; use a smaller data.real_budget).")
    flip = bool(self_train.get("flip", True))
    settings = {"flip": flip, "detector": spec.get("detector", "none"), "upsample": int(spec.get("upsample", 1)),
                "refine": int(spec.get("refine", 2)), "crop": dict(model.hparams.crop or {})}
    cache_dir = self_train.get("cache_dir")
    t0 = time.perf_counter()
    labels, path, hit = _cached_predictions(model, photos, spec, settings, cache_dir, device, progress)
    adabn = 0
    if self_train.get("adabn"):
        # The crops come from the un-adapted teacher's predictions; the adapted weights key the second set.
        adabn = adapt_batchnorm(model, labels, device, progress=progress)
        labels, path, hit2 = _cached_predictions(model, photos, spec, settings, cache_dir, device, progress)
        hit = hit and hit2
    rule, share = str(self_train.get("confidence", "peak")), float(self_train.get("keep", 1.0))
    kept = labels.keep(rule, share)
    record = {"photos": len(photos), "found": int(labels.found.sum()), "kept": int(kept.sum()),
              "rule": rule, "keep": share, **settings, "adabn_crops": adabn, "cache_hit": hit,
              "cache_file": str(path.resolve()) if path is not None else None,
              "seconds": round(time.perf_counter() - t0, 1)}
    record.pop("crop")
    log.info("self-training: %d of %d photos kept (%s, keep %.2f)%s", record["kept"], len(photos), rule, share,
             " from the cache" if hit else "")
    return labels, {**record, "kept_mask": kept}
