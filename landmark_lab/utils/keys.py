"""Keys a user adds with ``+key=`` or ``++key=`` must exist, and booleans must be booleans.

Hydra refuses an unknown ``key=value``, but ``+key=value`` and ``++key=value`` add any key: ``++schedule.lrr=0.1``
trained with the old learning rate and ``+data.real_budgett=10`` on every image, both with exit status 0. And a
YAML value ``maybe`` for a boolean was read as true. Here each override is held against the same config groups composed
with no key set: an added key that is not there is an error with a did-you-mean, and a key whose default is
a boolean accepts only true or false.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from landmark_lab.errors import ConfigError

# Sections whose keys depend on the component chosen (a head's, a reader's, a Lightning Trainer's or an
# optimiser's own arguments): each component checks its own options when it is built, with its own message.
OPEN = ("hydra", "callbacks", "trainer", "optimizer", "scheduler", "logger", "model.backbone", "model.head",
        "model.adapter", "model.loss", "data.synthetic", "data.real")
# Keys that moved: the old spelling gets a message naming the new one.
RENAMED = {"trainer.val_every": ("schedule.val_every", ""),
           "trainer.val_check_interval": ("schedule.val_every", " (validation is counted in optimiser steps)"),
           "data.flip_test": ("data.mirror_test", " (it adds mirrored copies to the test set; test-time flip "
                                                  "averaging is eval.flip=true)")}
_ABSENT = object()
# Default configs by (config name, groups chosen, search path): composed once per process (tests compose hundreds).
_BASES: dict[tuple[str, tuple[str, ...], str], DictConfig] = {}


def check_renamed(overrides: Sequence[str]) -> None:
    """Refuse a key that was renamed, naming its new spelling (before Hydra's own 'not in struct' message)."""
    for line in overrides:
        key = line.lstrip("+~").split("=", 1)[0].split("@", 1)[0]
        if key in RENAMED:
            new, why = RENAMED[key]
            raise ConfigError(f"{key} is now {new}{why}: write {line.replace(key, new, 1).lstrip('+')}.")


def _leaves(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, DictConfig):
        out = []
        for k in node.keys():
            key = f"{prefix}{k}"
            try:
                child = node._get_node(k)
            except Exception:
                child = None
            out += [key, *_leaves(child, f"{key}.")] if isinstance(child, DictConfig) else [key]
        return out
    return []


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        node = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False, throw_on_resolution_failure=False)
    except Exception:
        return _ABSENT
    return node


def _is_open(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in OPEN)


def _defaults(repository: Any, config_name: str, groups: Sequence[str]) -> DictConfig | None:
    """``config_name`` composed with these group choices and no key set (None where Hydra refuses them: it reports
    that itself), once per process for each choice and search path (tests compose hundreds of configs)."""
    from hydra import compose

    cache_key = (config_name, tuple(groups), repr(repository.get_sources()))
    if cache_key not in _BASES:
        try:
            _BASES[cache_key] = compose(config_name, overrides=list(groups))
        except Exception:
            return None
    return _BASES[cache_key]


def _unknown_key(where: str, key: str, base: DictConfig, config_name: str, how_to_list: str = "") -> ConfigError:
    """The error for a key that is not a setting of ``base``, with the nearest settings as a did-you-mean."""
    known = [k for k in _leaves(base) if not k.startswith("hydra")]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.75)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return ConfigError(f"{where}: {key} is not a setting of {config_name}, so it would change nothing.{hint}{how_to_list}")


def check_override_keys(cfg: DictConfig, config_name: str, overrides: Sequence[str]) -> None:
    """Every ``+``/``++`` key of ``overrides`` exists in ``config_name`` composed without them (outside the
    :data:`OPEN` sections), and every key whose default is a boolean holds a boolean. Needs an initialised
    Hydra (inside a command, or :func:`landmark_lab.utils.compose.compose_config`); renamed keys are the callers'
    :func:`check_renamed`, before Hydra composes."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    repository = GlobalHydra.instance().config_loader().repository

    def is_group(o: Any) -> bool:
        return repository.group_exists(o.key_or_group)

    keys = [o for o in parsed if not o.is_delete() and not is_group(o) and not o.key_or_group.startswith("hydra")]
    forced = [o for o in keys if o.is_add() or o.is_force_add()]
    base = _defaults(repository, config_name, [o.input_line for o in parsed if o not in keys])
    if base is None:
        return
    for o in forced:
        key = o.key_or_group
        if not _is_open(key) and _select(base, key) is _ABSENT:
            raise _unknown_key(o.input_line.split("=", 1)[0], key, base, config_name,
                               f" `python -m landmark_lab.{config_name} --cfg job` lists every key.")
    experiment = next((o for o in parsed if o.key_or_group == "experiment" and not o.is_delete()), None)
    if experiment is not None:
        user_groups = [o for o in parsed if o not in keys and o is not experiment]
        _check_experiment_keys(repository, config_name, str(experiment.value()), user_groups)
    for o in keys:
        default = _select(base, o.key_or_group)
        if isinstance(default, bool):
            value = _select(cfg, o.key_or_group)
            if not isinstance(value, bool) and not isinstance(value, ListConfig):
                raise ConfigError(f"{o.key_or_group}={value!r} must be true or false.")


def _experiment_files(repository: Any, name: str, seen: set[str] | None = None) -> list[tuple[str, DictConfig, list]]:
    """(file, its keys, its group overrides) of experiment ``name`` and every experiment it includes."""
    seen = seen if seen is not None else set()
    if name in seen:
        return []
    seen.add(name)
    result = repository.load_config(f"experiment/{name}")
    if result is None:
        return []
    where = f"{str(result.path).removeprefix('file://')}/experiment/{name}.yaml"
    out = []
    for d in result.defaults_list or []:
        path = getattr(d, "path", None)
        if path and path != "_self_" and getattr(d, "group", None) is None:  # another experiment it builds on
            out += _experiment_files(repository, str(path).lstrip("/").removeprefix("experiment/"), seen)
    overrides = [(str(d.group).lstrip("/"), str(d.value)) for d in result.defaults_list or []
                 if getattr(d, "group", None) is not None and getattr(d, "override", False)]
    return [*out, (where, result.config, overrides)]


def _check_experiment_keys(repository: Any, config_name: str, name: str, user_groups: list) -> None:
    """Every key an experiment file sets (``# @package _global_``, the user's own included) exists in the config
    those groups compose to: a misspelt key in a YAML file would otherwise change nothing, as a forced one did."""
    files = _experiment_files(repository, name)
    chosen = {o.key_or_group: o.input_line for o in user_groups}
    for _, _, overrides in files:
        for group, value in overrides:
            chosen.setdefault(group, f"{group}={value}")  # the command line's own choice of a group wins
    base = _defaults(repository, config_name, sorted(chosen.values()))
    if base is None:
        return
    for where, cfg, _ in files:
        for key in _leaves(cfg):
            node = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
            if isinstance(node, DictConfig) or key.startswith("hydra") or _is_open(key):
                continue
            if _select(base, key) is _ABSENT:
                raise _unknown_key(where, key, base, config_name)
