"""What each command checks in its composed config before any work: every registry name, number, range, path and
device. The training, evaluation and adaptation commands call these before reading data or building a model, so a
typo costs a second, not a training run. The value checks themselves are :mod:`landmark_lab.utils.checks`."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from landmark_lab.errors import ConfigError
from landmark_lab.utils.checks import (
    _get,
    _has,
    budget,
    check_checkpoint_path,
    checkpoint_file,
    choice,
    integer,
    kwargs_fit,
    number,
    user_key,
)
from landmark_lab.utils.device import device, hub_reachable

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


def _check_target(cfg: DictConfig, key: str) -> None:
    """``cfg[key]._target_`` names an importable class or function, and its other keys are arguments it takes."""
    from hydra.utils import get_object

    target = _get(cfg, f"{key}._target_")
    if not target:
        raise ConfigError(f"{key} needs a _target_ (the class to build), e.g. {key}._target_=torch.optim.AdamW.")
    try:
        obj = get_object(str(target))
    except Exception:
        raise ConfigError(f"{key}._target_={target!r} cannot be imported; check the spelling "
                          "(a full dotted path, e.g. torch.optim.AdamW).") from None
    fixed = {"optimizer": ("params", "lr"), "scheduler": ("optimizer", "total_steps")}.get(key, ("dirpath", "stage"))
    kwargs_fit(cfg, key, obj, fixed=fixed, skip=("_target_", "_partial_", "_recursive_", "_convert_"))


def _check_model(cfg: DictConfig) -> None:
    import timm

    from landmark_lab.models.adapter import ADAPTERS
    from landmark_lab.models.heads import HEADS
    from landmark_lab.models.losses import LOSSES, CoordLoss

    name = _get(cfg, "model.backbone.name")
    if not isinstance(name, str) or not timm.is_model(name):
        from landmark_lab.models.backbone import _check_name

        _check_name(str(name))
    head = choice(cfg, "model.head.name", HEADS, default="regression")
    kwargs_fit(cfg, "model.head", HEADS[head], fixed=("in_channels",))
    if head == "heatmap":
        from landmark_lab.models.heatmaps import DECODERS

        choice(cfg, "model.head.decode", DECODERS, default="dark")
        integer(cfg, "model.head.stride", low=1, default=4)
        number(cfg, "model.head.sigma", low=0, strict_low=True, default=1.5)
    elif head == "simcc":
        integer(cfg, "model.head.stride", low=1, allow_none=True)
    adapter = choice(cfg, "model.adapter.name", ADAPTERS, default="mlp")
    kwargs_fit(cfg, "model.adapter", ADAPTERS[adapter])
    choice(cfg, "model.loss.name", LOSSES, default="wing")
    kwargs_fit(cfg, "model.loss", CoordLoss, skip=())
    if _get(cfg, "model.loss.scale") is not None:  # null: derived from the crop size
        number(cfg, "model.loss.scale", low=0, strict_low=True)
    _check_target(cfg, "optimizer")
    number(cfg, "optimizer.weight_decay", low=0, default=0.0)
    _check_target(cfg, "scheduler")
    if str(_get(cfg, "scheduler._target_", "")).endswith("warmup_cosine"):
        number(cfg, "scheduler.warmup_frac", low=0, high=1, default=0.05)
        number(cfg, "scheduler.min_lr_ratio", low=0, high=1, default=0.01)
    for name in _get(cfg, "callbacks") or {}:
        if _get(cfg, f"callbacks.{name}") is not None:
            _check_target(cfg, f"callbacks.{name}")
    ckpt = _get(cfg, "model.backbone.checkpoint_path")
    if ckpt and not Path(str(ckpt)).expanduser().is_file():
        raise ConfigError(f"model.backbone.checkpoint_path={ckpt!r}: file not found.")
    if bool(_get(cfg, "model.backbone.pretrained", False)) and not ckpt and not hub_reachable():
        raise ConfigError(
            "model.backbone.pretrained=true needs the model hub (huggingface.co), which this machine cannot reach. "
            "Use model.backbone.pretrained=false, or download the weights elsewhere and set "
            "model.backbone.checkpoint_path=/path/to/weights.safetensors."
        )


def _check_data(cfg: DictConfig, train: bool = True) -> None:
    if _has(cfg, "data.flip_test"):
        raise ConfigError("data.flip_test was renamed data.mirror_test (it adds mirrored copies to the test set); "
                          "test-time flip averaging is eval.flip=true in evaluate.")
    from landmark_lab.datamodules.sources import KINDS
    from landmark_lab.transforms.augment import build_pipeline
    from landmark_lab.transforms.pipeline import CROP_BOXES

    integer(cfg, "data.batch_size", low=1)
    integer(cfg, "data.eval_batch_size", low=1, default=64)
    integer(cfg, "data.num_workers", low=0, default=0)
    integer(cfg, "data.val_size", low=0, default=0)
    if isinstance(_get(cfg, "data.synthetic_val_size"), float) and not float(_get(cfg, "data.synthetic_val_size")).is_integer():
        number(cfg, "data.synthetic_val_size", low=0, high=1, strict_low=True)  # a share of the synthetic pool
        integer(cfg, "data.synthetic_val_max", low=1, allow_none=True)
    else:
        integer(cfg, "data.synthetic_val_size", low=0, default=0)
    integer(cfg, "data.split_seed", low=0, allow_none=True)
    budget(cfg)
    number(cfg, "data.synth_share", low=0, high=1, default=0.5)
    integer(cfg, "data.crop_imitation.n_real", low=1, default=50)
    integer(cfg, "data.transform.crop.size", low=16)
    number(cfg, "data.transform.crop.scale", low=0, strict_low=True, default=1.25)
    choice(cfg, "data.transform.crop.box", CROP_BOXES, default="landmarks")
    if choice(cfg, "data.cache", ["none", "crops"], default="none") == "crops":
        number(cfg, "data.cache_margin", low=1.0, default=1.6)
        if _get(cfg, "data.transform.crop.box", "landmarks") != "landmarks":
            raise ConfigError("data.cache=crops needs data.transform.crop.box=landmarks (it crops around the labels).")
        if _get(cfg, "data.crop_imitation.enabled", False):
            raise ConfigError("data.cache=crops cannot be combined with data.crop_imitation.enabled=true "
                              "(imitation re-frames the whole image); use data.cache=none.")
    number(cfg, "data.transform.crop.shift_jitter", low=0, default=0.0)
    number(cfg, "data.transform.crop.zoom_jitter", low=0, default=0.0)
    number(cfg, "data.transform.flip_p", low=0, high=1, default=0.0)
    for side in ("synthetic", "real"):
        _check_source(cfg, f"data.{side}", KINDS)
    if train and _has(cfg, "augment"):
        for key in ("transforms", "synthetic_transforms"):
            specs = _get(cfg, f"augment.{key}")
            if specs:
                try:
                    build_pipeline(OmegaConf.to_container(specs, resolve=True))
                except ConfigError as exc:
                    raise ConfigError(f"augment.{key}: {exc}") from None


def _check_source(cfg: DictConfig, key: str, kinds: Iterable[str]) -> None:
    spec = _get(cfg, key)
    if spec is None:
        return
    kind = choice(cfg, f"{key}.kind", kinds)
    if kind == "multi":
        for name in spec.get("sources") or {}:
            _check_source(cfg, f"{key}.sources.{name}", [k for k in kinds if k != "multi"])
        return
    if kind == "procedural":
        return
    integer(cfg, f"{key}.limit", low=1, allow_none=True)
    roots = ["root"] + (["test_root"] if kind == "folder" and key.endswith("real") else [])
    for r in roots:
        value = _get(cfg, f"{key}.{r}")
        if not value:
            raise ConfigError(f"{user_key(cfg, f'{key}.{r}')} is not set: point it at the {kind} folder.")
        if not Path(str(value)).expanduser().is_dir():
            raise ConfigError(f"{user_key(cfg, f'{key}.{r}')}={value}: folder not found.")


def _check_trainer(cfg: DictConfig) -> None:
    import warnings

    import lightning as L
    import torch

    integer(cfg, "schedule.val_every", low=1, default=150)
    integer(cfg, "callbacks.early_stopping.patience", low=0, default=0)
    accel = choice(cfg, "trainer.accelerator", ACCELERATORS, default="auto")
    if accel in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accel}: no CUDA GPU is visible on this machine; "
                          "use trainer=default (CPU) or trainer.accelerator=auto.")
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    # Constructing a Trainer checks every Trainer argument (names, precision, devices) in milliseconds;
    # its start-up lines (GPU available ...) are silenced here: the real Trainer prints them.
    quiet = [logging.getLogger(n) for n in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            L.Trainer(**{**tcfg, "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                         "enable_model_summary": False})
        except TypeError as exc:
            m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            bad = f"trainer.{m.group(1)}" if m else "trainer"
            raise ConfigError(f"{bad} is not a lightning.Trainer argument ({exc}).") from None
        except Exception as exc:
            raise ConfigError(f"trainer: {type(exc).__name__}: {exc}") from None
        finally:
            for lg, level in zip(quiet, levels, strict=True):
                lg.setLevel(level)


def _check_stages(cfg: DictConfig) -> None:
    from landmark_lab.datamodules.strategies import TRAIN_ON, VALIDATE_ON

    stages = _get(cfg, "strategy.stages") or []
    if not stages:
        raise ConfigError("strategy.stages is empty: a strategy needs at least one stage.")
    names = [str(_get(cfg, f"strategy.stages.{i}.name", i)) for i in range(len(stages))]
    if len(set(names)) < len(names):
        raise ConfigError(f"strategy.stages: two stages share a name ({', '.join(names)}); each stage's checkpoints "
                          "live in a folder of its name, so give each its own.")
    for i in range(len(stages)):
        k = f"strategy.stages.{i}"
        if _get(cfg, f"{k}.train_on", None) is None:
            raise ConfigError(f"{k}.train_on is not set: say what stage {names[i]} trains on "
                              f"({' | '.join(TRAIN_ON)}; see the stage keys in conf/train.yaml).")
        choice(cfg, f"{k}.train_on", TRAIN_ON)
        choice(cfg, f"{k}.validate_on", VALIDATE_ON, default="real")
        for share in ("synth_share", "labelled_share"):
            number(cfg, f"{k}.{share}", low=0, high=1, default=0.5)
        if _get(cfg, f"{k}.steps") not in (None, "auto"):
            integer(cfg, f"{k}.steps", low=1)
        number(cfg, f"{k}.lr", low=0, strict_low=True)
        number(cfg, f"{k}.epochs", low=0, strict_low=True, default=20)
        lo = integer(cfg, f"{k}.min_steps", low=1, default=100)
        hi = integer(cfg, f"{k}.max_steps", low=1, default=1000)
        if hi < lo:
            raise ConfigError(f"{user_key(cfg, f'{k}.max_steps')}={hi} is below {user_key(cfg, f'{k}.min_steps')}={lo}.")


def check_posthoc(cfg: DictConfig) -> None:
    """The post-hoc label adapter's settings (``posthoc_adapter.*``)."""
    from landmark_lab.models.adapter import ADAPTERS

    choice(cfg, "posthoc_adapter.name", [a for a in ADAPTERS if a != "none"])
    integer(cfg, "posthoc_adapter.steps", low=1)
    number(cfg, "posthoc_adapter.lr", low=0, strict_low=True)
    number(cfg, "posthoc_adapter.weight_decay", low=0)


def check_train_config(cfg: DictConfig) -> None:
    """Everything ``python -m landmark_lab.train`` will use, checked before data is read."""
    integer(cfg, "seed", low=0)
    integer(cfg, "threads", low=1, default=None, allow_none=True)
    _check_stages(cfg)
    _check_model(cfg)
    _check_data(cfg)
    _check_trainer(cfg)
    if any(bool(st.get("fit_adapter", False)) for st in cfg.strategy.stages):
        check_posthoc(cfg)
    _check_distill(cfg)
    _check_init_from(cfg)


def _check_distill(cfg: DictConfig) -> None:
    """A distilling stage needs its teacher, a checkpoint; a teacher no stage learns from is a mistake, not a no-op."""
    teacher = _get(cfg, "distill.teacher", None)
    if not any(bool(st.get("distill", False)) for st in cfg.strategy.stages):
        if teacher:
            raise ConfigError(f"distill.teacher={teacher} is set but no stage of strategy={cfg.strategy.name} learns "
                              "from it; use strategy=distill (or a stage with distill: true), or drop distill.teacher.")
        return
    if not teacher:
        raise ConfigError(f"strategy={cfg.strategy.name} distils from a teacher: set distill.teacher to a checkpoint "
                          "this project wrote (e.g. the recipe's RUN/checkpoints/train/best.ckpt).")
    checkpoint_file("distill.teacher", teacher)
    number(cfg, "distill.weight", low=0, strict_low=True, default=1.0)


def _check_init_from(cfg: DictConfig) -> None:
    """``init_from``: an existing checkpoint (its shape is checked when it loads), and not beside the other start."""
    init = _get(cfg, "init_from", None)
    if not init:
        return
    checkpoint_file("init_from", init)
    if (cfg.get("self_train") or {}).get("teacher"):
        raise ConfigError(f"init_from={init} and self_train.teacher={cfg.self_train.teacher} both give the model's "
                          "start; self_train.teacher skips the stages before its first round, so drop init_from.")


def check_eval_config(cfg: DictConfig, adapt: bool = False) -> None:
    """What ``evaluate`` (and, with ``adapt``, ``adapt``) will use, checked before anything is created."""
    if _has(cfg, "peer") and _get(cfg, "peer") is not None:
        choice(cfg, "peer", ["dlib"])
        ckpt = None if OmegaConf.is_missing(cfg, "ckpt_path") else cfg.get("ckpt_path")
        if ckpt:  # it would be ignored: the peer's own predictor is what is evaluated
            raise ConfigError(f"peer={_get(cfg, 'peer')} evaluates dlib's own predictor and takes no checkpoint "
                              f"(got ckpt_path={ckpt}). Evaluate one or the other: drop ckpt_path, or drop peer.")
        from landmark_lab.inference.detectors import dlib_model_file, import_dlib

        import_dlib()
        dlib_model_file()
    else:
        check_checkpoint_path(cfg)
    if _has(cfg, "eval"):
        choice(cfg, "eval.box", ["landmarks", "detector"])
        if _get(cfg, "eval.box") == "detector":
            from landmark_lab.inference.detectors import import_dlib

            import_dlib()
    integer(cfg, "seed", low=0, default=0)
    if _has(cfg, "device"):
        device(_get(cfg, "device"), "device")
    _check_data(cfg, train=False)
    if adapt:
        check_posthoc(cfg)
