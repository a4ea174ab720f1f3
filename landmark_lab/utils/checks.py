"""The checks every config value goes through: a name from a list, a whole number, a number in a range, a required
key, a file. Each problem is a :class:`ConfigError` naming the key the user typed (``data.root``, not the
``data.real.root`` it is copied into) and, for names, the valid values. What each command checks with them is in
:mod:`landmark_lab.cli.checks`."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from landmark_lab.errors import ConfigError

_INTERP = re.compile(r"^\$\{(\.*)([A-Za-z0-9_.]+)\}$")


def user_key(cfg: DictConfig, key: str) -> str:
    """The key a user sets for ``key``: follow plain ``${..other}`` / ``${a.b}`` copies to their source."""
    for _ in range(8):
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if not isinstance(parent, DictConfig) or leaf not in parent:
            return key
        node = parent._get_node(leaf)
        raw = node._value() if node is not None else None
        m = _INTERP.match(raw) if isinstance(raw, str) else None
        if not m:
            return key
        dots, target = m.groups()
        if dots:  # relative: one dot = this container, each more = one level up
            base = parent_key.split(".") if parent_key else []
            base = base[: len(base) - (len(dots) - 1)] if len(dots) > 1 else base
            key = ".".join([*base, target])
        else:
            key = target
    return key


def _parent(cfg: DictConfig, key: str) -> tuple[Any, str]:
    parent_key, _, leaf = key.rpartition(".")
    return (OmegaConf.select(cfg, parent_key) if parent_key else cfg), leaf


def _has(cfg: DictConfig, key: str) -> bool:
    parent, leaf = _parent(cfg, key)
    return isinstance(parent, DictConfig) and leaf in parent


def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    """``cfg[key]`` (``default`` when absent); a mandatory ``???`` value that is still unset is an error."""
    parent, leaf = _parent(cfg, key)
    if isinstance(parent, DictConfig) and leaf in parent and OmegaConf.is_missing(parent, leaf):
        raise ConfigError(f"{user_key(cfg, key)} is required and not set (add {user_key(cfg, key)}=... to the command).")
    return OmegaConf.select(cfg, key, default=default)


def choice(cfg: DictConfig, key: str, valid: Iterable[str], default: str | None = None) -> str:
    """``cfg[key]``, refused unless it is one of ``valid``."""
    value = _get(cfg, key, default)
    valid = list(valid)
    if value not in valid:
        import difflib

        close = difflib.get_close_matches(str(value), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{user_key(cfg, key)}={value!r} is not valid; use one of {valid}.{hint}")
    return str(value)


def integer(cfg: DictConfig, key: str, low: int | None = None, default: Any = None, allow_none: bool = False) -> int | None:
    """``cfg[key]`` as an int (a float like 12.7 or a string like 'abc' is refused), at least ``low``."""
    value = _get(cfg, key, default)
    if value is None and allow_none:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)
    if not ok:
        raise ConfigError(f"{user_key(cfg, key)}={value!r} must be a whole number.")
    if low is not None and value < low:
        raise ConfigError(f"{user_key(cfg, key)}={value} must be at least {low}.")
    return int(value)


def number(cfg: DictConfig, key: str, low: float | None = None, high: float | None = None, default: Any = None,
           strict_low: bool = False) -> float:
    """``cfg[key]`` as a finite float within ``[low, high]`` (``(low, high]`` with ``strict_low``)."""
    value = _get(cfg, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ConfigError(f"{user_key(cfg, key)}={value!r} must be a finite number.")
    value = float(value)
    if low is not None and (value <= low if strict_low else value < low):
        raise ConfigError(f"{user_key(cfg, key)}={value:g} must be {'greater than' if strict_low else 'at least'} {low:g}.")
    if high is not None and value > high:
        raise ConfigError(f"{user_key(cfg, key)}={value:g} must be at most {high:g}.")
    return value


def budget(cfg: DictConfig, key: str = "data.real_budget") -> None:
    """A real budget is ``all`` or a positive whole number of images."""
    value = _get(cfg, key, "all")
    if isinstance(value, str) and value.lower() == "all":
        return
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    # 0 labelled images is a budget only where no stage trains on labelled real images nor fits an adapter on them
    # (synthetic only, self-training alone).
    zero_ok = not any(str(st.get("train_on")) in ("real", "mixed") or st.get("fit_adapter")
                      for st in (_get(cfg, "strategy.stages", None) or []))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{user_key(cfg, key)}={value!r} must be a positive whole number of images or 'all'"
                          + (" (0 only for a strategy that trains on no labelled real image, e.g. self_train_zero)."
                             if value == 0 else "."))


def kwargs_fit(cfg: DictConfig, key: str, fn: Any, fixed: Iterable[str] = (), skip: Iterable[str] = ("name",)) -> None:
    """The arguments under ``key`` (less ``skip``) are ones ``fn`` takes (``fixed`` are passed by the code)."""
    given = {k: v for k, v in (OmegaConf.to_container(_get(cfg, key) or {}, resolve=True) or {}).items() if k not in skip}
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    valid = [p for p in params if p not in ("self", *fixed)]
    unknown = [k for k in given if k not in valid]
    if unknown:
        raise ConfigError(f"{user_key(cfg, key)}.{unknown[0]} is not an option of {getattr(fn, '__name__', fn)}; "
                          f"valid options: {valid}.")


def required(cfg: DictConfig, key: str, example: str) -> Any:
    """``cfg[key]``, which the user must set (``???`` or null/empty is an error showing ``key=example``)."""
    if not _has(cfg, key) or OmegaConf.is_missing(*_parent(cfg, key)) or OmegaConf.select(cfg, key) in (None, ""):
        raise ConfigError(f"{key} is required: add {key}={example} to the command.")
    return OmegaConf.select(cfg, key)


def checkpoint_file(key: str, value: str | Path) -> Path:
    """The checkpoint a user gave as ``key``, which must be an existing file (one message for every such key)."""
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}={str(path)!r}: checkpoint not found (a .ckpt this project wrote: "
                          "RUN/checkpoints/<stage>/best.ckpt or last.ckpt).")
    return path


def check_checkpoint_path(cfg: DictConfig, key: str = "ckpt_path") -> Path:
    """``cfg[key]`` is set and names an existing file."""
    if not _has(cfg, key) or OmegaConf.is_missing(cfg, key) or not OmegaConf.select(cfg, key):
        raise ConfigError(f"{key} is required: add {key}=RUN/checkpoints/<stage>/best.ckpt to the command.")
    return checkpoint_file(key, OmegaConf.select(cfg, key))
