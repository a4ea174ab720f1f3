"""Deterministic, leakage-free splits of a real pool, and exact nested real-image budgets.

The unit of selection is a *group*: a source image and, when flip doubling is on, its mirrored
copy. Groups never straddle train/validation, and budgets take groups in one seed-fixed order, so
the 50-image subset is inside the 250-image subset.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from landmark_lab.errors import ConfigError


@dataclass(frozen=True)
class Item:
    """One training item: sample ``index`` of source ``source``, mirrored if ``flip``."""

    source: int
    index: int
    flip: bool = False


def groups_of(sizes: list[int]) -> list[tuple[int, int]]:
    """All (source, index) pairs of sources with the given sizes, in a stable order."""
    return [(s, i) for s, n in enumerate(sizes) for i in range(n)]


def _perm(n: int, seed: int, salt: int) -> np.ndarray:
    return np.random.default_rng([seed, salt]).permutation(n)


def validation_count(size: int | float, pool: int, cap: int | None = None) -> int:
    """Images to hold out: a whole number as given; a fraction (0 < size < 1) of ``pool``, rounded, at least 1
    and at most ``cap``."""
    if isinstance(size, float) and 0.0 < size < 1.0:
        n = max(1, round(size * pool))
        return min(n, int(cap)) if cap is not None else n
    return int(size)


def holdout(groups: list[tuple[int, int]], n_val: int, seed: int) -> tuple[list, list]:
    """Split groups into (train, val) with ``n_val`` validation groups, deterministic in ``seed``."""
    if n_val < 0 or n_val >= len(groups):
        raise ConfigError(
            f"validation size {n_val} must be between 0 and {len(groups) - 1} (the pool has {len(groups)} images)."
        )
    order = _perm(len(groups), seed, 1)
    val = sorted(groups[i] for i in order[:n_val])
    train = sorted(groups[i] for i in order[n_val:])
    return train, val


def expand(groups: list[tuple[int, int]], flip: bool) -> list[Item]:
    """Items of the given groups, each followed by its mirror when ``flip``."""
    out = []
    for s, i in groups:
        out.append(Item(s, i, False))
        if flip:
            out.append(Item(s, i, True))
    return out


def parse_budget(budget: int | str | None) -> int | None:
    """``'all'``/``None`` -> None (the whole pool), else a positive int."""
    if budget is None or (isinstance(budget, str) and budget.lower() == "all"):
        return None
    value = None
    if isinstance(budget, int) and not isinstance(budget, bool):
        value = budget
    elif isinstance(budget, float) and budget.is_integer():
        value = int(budget)
    elif isinstance(budget, str) and budget.strip().isdigit():
        value = int(budget)
    if value is None:  # 12.7 images is not a budget: refuse rather than truncate
        raise ConfigError(f"data.real_budget={budget!r} is not a whole number of images or 'all'.")
    if value < 0:
        raise ConfigError(f"data.real_budget={value} must be positive (or 'all').")
    return value  # 0: no labelled real image (self-training from unlabelled photos alone)


def budget_items(groups: list[tuple[int, int]], budget: int | str | None, flip: bool, seed: int,
                 cap: bool = False) -> list[Item]:
    """Exactly ``budget`` items (counting mirrored copies when ``flip``) from ``groups``, nested across budgets.

    A budget larger than the pool is an error, or with ``cap`` the whole pool (with a warning).
    """
    n = parse_budget(budget)
    pool = len(groups) * (2 if flip else 1)
    if n is None:
        return expand(groups, flip)
    if n == 0:
        return []
    if n > pool and cap:
        warnings.warn(f"data.real_budget={n} is capped at the real training pool of {pool} images", stacklevel=2)
        n = pool
    if n > pool:
        raise ConfigError(
            f"data.real_budget={n} is larger than the real training pool of {pool} images "
            f"({len(groups)} images{' x2 for flips' if flip else ''}, after holding out validation). "
            "Use a smaller budget or data.real_budget=all."
        )
    order = _perm(len(groups), seed, 2)
    chosen = expand([groups[i] for i in order], flip)
    return chosen[:n]
