"""Statistics over a sweep's rows: mean ± std per strategy and budget, and the real-only budget a point is worth
(interpolated on the log-budget scale), with a bootstrap interval over seeds and test faces."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from landmark_lab.reports.rows import Row


def aggregate(rows: list[Row], key: str = "nme_io") -> dict[str, dict[int, tuple[float, float, int]]]:
    """strategy -> budget -> (mean, std over seeds, number of seeds), from :func:`seed_values`."""
    return {s: {b: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) for b, v in bs.items()}
            for s, bs in seed_values(rows, key).items()}


def equivalent_budget(nme: float, curve: dict[int, tuple[float, float, int]]) -> tuple[str, float | None]:
    """The real-only budget whose (interpolated, log-budget) mean NME equals ``nme``.

    Returns a relation ("≈", "<", ">") and the budget: "<" means better than real-only with its
    largest budget, ">" worse than with its smallest.
    """
    budgets = np.array(sorted(b for b in curve if b > 0), dtype=float)  # run folders sort n100 before n50
    if len(budgets) == 0:
        return "?", None
    means = np.array([curve[int(b)][0] for b in budgets])
    # Running minimum: a noisy bump in the real-only curve must not create two answers.
    mono = np.minimum.accumulate(means)
    if nme <= mono[-1]:
        return ("≈", float(budgets[-1])) if math.isclose(nme, mono[-1]) else ("<", float(budgets[-1]))
    if nme >= mono[0]:
        return ("≈", float(budgets[0])) if math.isclose(nme, mono[0]) else (">", float(budgets[0]))
    i = int(np.nonzero(mono <= nme)[0][0])  # first budget at least as good
    lo, hi = i - 1, i
    t = (mono[lo] - nme) / (mono[lo] - mono[hi]) if mono[lo] != mono[hi] else 0.0
    logb = math.log(budgets[lo]) + t * (math.log(budgets[hi]) - math.log(budgets[lo]))
    return "≈", float(math.exp(logb))


def seed_values(rows: list[Row], key: str = "nme_io") -> dict[str, dict[int, list[float]]]:
    """strategy -> budget -> the per-seed values of ``key``."""
    out: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get(key) is not None:
            out[r["strategy"]][r["budget"]].append(float(r[key]))
    return {s: dict(sorted(bs.items())) for s, bs in out.items()}


def face_values(rows: list[Row]) -> dict[str, dict[int, list[np.ndarray]]]:
    """strategy -> budget -> the per-face NME arrays of the runs that recorded them (in :func:`seed_values`' order)."""
    out: dict[str, dict[int, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("nme_io") is not None and r.get("per_face") is not None:
            out[r["strategy"]][r["budget"]].append(r["per_face"])
    return {s: dict(bs) for s, bs in out.items()}


def faces_cover(values: dict[str, dict[int, list[float]]], faces: dict[str, dict[int, list[np.ndarray]]] | None,
                n: int, strategy: str = "pretrain_finetune") -> bool:
    """Whether every run behind the headline of ``strategy`` at ``n`` (its runs and every real-only run) recorded
    its per-face errors on test sets of one size, so the bootstrap can resample test faces too."""
    if not faces:
        return False
    points = [(strategy, n)] + [("real_only", b) for b in values.get("real_only", {})]
    arrays = []
    for s, b in points:
        got = faces.get(s, {}).get(b, [])
        if len(got) != len(values.get(s, {}).get(b, [])):
            return False
        arrays += got
    return bool(arrays) and len({len(a) for a in arrays}) == 1


def equivalent_budget_interval(values: dict[str, dict[int, list[float]]], n: int, draws: int = 2000,
                               level: float = 0.95, seed: int = 0, strategy: str = "pretrain_finetune",
                               faces: dict[str, dict[int, list[np.ndarray]]] | None = None) -> tuple[float, float] | None:
    """A bootstrap interval for the real-only budget that ``strategy`` with ``n`` real images is worth.

    Each draw resamples, with replacement, the seeds of every point (the strategy's run at ``n`` and every
    real-only budget), averages them and interpolates on the log-budget scale as :func:`equivalent_budget` does;
    the interval is the central ``level`` of the draws. With ``faces`` covering every run (:func:`faces_cover`),
    each draw also resamples the test faces, the same faces for every run (they were tested on the same set), and a
    run's value is its mean NME over them: the interval then carries the test set's sampling too. A real-only
    budget with a single seed enters every draw at its value (it has no seeds to resample). A draw better than
    real-only with its largest budget counts as infinity, one worse than with its smallest as 0, so such bounds read
    "beyond the curve". ``None`` when the strategy's point or every real-only budget has a single seed.
    """
    pre, real = values.get(strategy, {}).get(n), values.get("real_only", {})
    if not pre or len(pre) < 2 or not real or max(len(v) for v in real.values()) < 2:
        return None
    rng = np.random.default_rng(seed)
    matrices = None
    if faces is not None and faces_cover(values, faces, n, strategy):
        matrices = {("real_only", b): np.stack(faces["real_only"][b]) for b in real}
        matrices[(strategy, n)] = np.stack(faces[strategy][n])
        n_faces = matrices[(strategy, n)].shape[1]

    def point(key: tuple[str, int], seeds: list[float], idx: np.ndarray | None) -> float:
        runs = np.asarray(seeds) if idx is None else matrices[key][:, idx].mean(axis=1)  # type: ignore[index]
        return float(rng.choice(runs, len(runs)).mean())

    found = []
    for _ in range(draws):
        idx = rng.integers(0, n_faces, n_faces) if matrices is not None else None
        curve = {b: (point(("real_only", b), v, idx), 0.0, len(v)) for b, v in real.items()}
        rel, b = equivalent_budget(point((strategy, n), pre, idx), curve)
        found.append(math.inf if rel == "<" else 0.0 if rel == ">" else float(b))
    big = 1e300  # quantiles interpolate, and inf - inf is nan: a finite stand-in, mapped back after
    lo, hi = np.quantile(np.minimum(found, big), [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return tuple(math.inf if x >= big else float(x) for x in (lo, hi))  # type: ignore[return-value]
