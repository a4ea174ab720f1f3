"""The one way weights are read: pickle-free (``weights_only=True``), checked, errors that name the file.

Serves training checkpoints (``best.ckpt``, ``last.ckpt``), models with a post-hoc adapter
(``adapted.ckpt``) and pre-training cache entries: all are dicts of tensors and plain containers.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landmark_lab.errors import DataError
from landmark_lab.transforms.pipeline import check_crop_settings
from landmark_lab.utils.io import load_torch_file


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """The dict of a checkpoint file, with a ``state_dict``; nothing in the file can run code."""
    ckpt = load_torch_file(path, what)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise DataError(f"{path}: not a landmark_lab {what} (no 'state_dict' in it).")
    return ckpt


def load_weights(model: nn.Module, path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """Load ``path``'s ``state_dict`` into ``model`` (every tensor must fit); returns the checkpoint dict."""
    ckpt = read_checkpoint(path, what)
    apply_state(model, ckpt["state_dict"], path, what)
    return ckpt


def apply_state(model: nn.Module, state: dict[str, Any], path: str | Path, what: str = "checkpoint") -> None:
    """``model.load_state_dict(state)``, a mismatch reported as a :class:`DataError` naming ``path``."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise DataError(f"{path}: the weights in this {what} do not fit the model ({first}).") from None


def load_landmark_model(path: str | Path) -> Any:
    """A :class:`LandmarkModule` from any checkpoint the project writes (train stages, ``adapted.ckpt``),
    on the CPU, in eval mode, with the crop settings it was trained with (``model.hparams.crop``)."""
    from landmark_lab.models.module import LandmarkModule

    ckpt = read_checkpoint(path)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict):
        raise DataError(f"{path}: not a landmark_lab checkpoint (no hyper-parameters to rebuild the model from).")
    names = [p for p in inspect.signature(LandmarkModule.__init__).parameters if p != "self"]
    try:
        model = LandmarkModule(**{k: hp[k] for k in names if k in hp})
    except Exception as exc:
        raise DataError(f"{path}: cannot rebuild the model from its hyper-parameters ({type(exc).__name__}: {exc}).") from None
    apply_state(model, ckpt["state_dict"], path)
    if hp.get("crop") is not None:  # older checkpoints carry none: the data config's crop is used instead
        check_crop_settings(hp["crop"], str(path), model.input_size)
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:  # a diverged or damaged model would predict NaN: refused before anything is predicted or written
        raise DataError(f"{path}: {len(bad)} weight tensor(s) hold NaN or inf (e.g. {bad[0]}); the model diverged or "
                        "the file is damaged. Use another checkpoint (each stage keeps best.ckpt and last.ckpt).")
    return model.eval()


def load_checkpoint(path: str | Path, key: str = "ckpt_path") -> Any:
    """:func:`load_landmark_model` for a path the user gave as ``key``: a missing file is named as such."""
    from landmark_lab.utils.checks import checkpoint_file

    return load_landmark_model(checkpoint_file(key, path))


def save_model(model: Any, path: str | Path) -> Path:
    """A checkpoint :func:`load_landmark_model` (and ``evaluate``) reads: weights + hyper-parameters, atomically."""
    import lightning as L

    from landmark_lab.utils.io import torch_save_atomic

    return torch_save_atomic({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                              "pytorch-lightning_version": L.__version__}, path)
