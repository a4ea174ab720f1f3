"""Gather a sweep's runs into a table, plots and the headline sentence (no wandb needed).

The command is :mod:`landmark_lab.cli.report`:
``python -m landmark_lab.report logs/sweeps/budget_sweep_procedural [--ced-budget 50] [--out DIR]``.

Writes into the sweep folder (or ``--out``): ``results.csv`` (one row per run), ``report.md``
(mean ± std over seeds per strategy x budget, the headline, incomplete runs), ``nme_vs_budget.png``
(the headline figure), ``ced.png`` (CED curves at one budget) and ``regions.png`` (per-region NME).
With ``--runs`` (ablations): ``runs.md`` and ``runs.png``, one row per run folder, with and without the adapter.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from landmark_lab.errors import ConfigError, DataError
from landmark_lab.utils.io import write_csv_atomic

COLUMNS = ["strategy", "budget", "real_budget", "seed", "images_seed", "nme_io", "nme_ip", "nme_box", "fr_io@0.08", "fr_io@0.1",
           "auc_io@0.08", "auc_io@0.1", "nme_io_jaw", "nme_io_brows", "nme_io_nose", "nme_io_eyes", "nme_io_mouth",
           "nme_io_inner", "nme_io_no_adapter", "nme_io_jaw_no_adapter", "nme_io_inner_no_adapter", "val_nme_io",
           "seconds", "resumed", "run"]
# Columns a recorded results.csv must have to be read back (recorded_rows); the others may be missing or empty.
RECORDED_REQUIRED = ["strategy", "budget", "seed", "nme_io", "run"]
REGIONS = ["jaw", "brows", "nose", "eyes", "mouth"]
ORDER = ["real_only", "pretrain_finetune", "self_train", "self_train_real", "self_train_zero", "combined", "mixing",
         "data_adapt", "synth_only_adapted", "synth_only"]
LABELS = {"real_only": "real only", "pretrain_finetune": "synthetic pre-training + fine-tuning",
          "combined": "combined (synthetic + real batches)",
          "mixing": "mixing (label-adapted synthetic + real batches)",
          "data_adapt": "data adaptation (label-adapted synthetic only)",
          "synth_only_adapted": "synthetic only + label adapter fitted on the real budget",
          "synth_only": "synthetic only (no real image)",
          "self_train": "pre-training + fine-tuning + self-training on unlabelled photos",
          "self_train_real": "real only + self-training on unlabelled photos",
          "self_train_zero": "zero hand labels: synthetic teacher + self-training on unlabelled photos"}


def ordered(names: Any) -> list[str]:
    """Strategy names in the report's order (ORDER), others (reference lines) after them as they came."""
    names = list(names)
    return [s for s in ORDER if s in names] + [s for s in names if s not in ORDER]


def strategy_of(metrics: dict[str, Any]) -> str:
    """The strategy a run measured, from its ``metrics.json``: ``data_adapt`` with a synthetic share of the batch
    below 1 (``data.synth_share``) also trains on the real images, which is the study's mixing, not its data
    adaptation, so it is reported as ``mixing``."""
    strategy = metrics["strategy"]
    share = _recorded_data(metrics, "synth_share")
    return "mixing" if strategy == "data_adapt" and _finite(share) and share < 1 else strategy


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _recorded_data(metrics: dict[str, Any], key: str) -> Any:
    """``data.<key>`` of the config a metrics.json recorded; None where it recorded none, or not as tables (older
    or hand-edited files)."""
    config = metrics.get("config")
    data = config.get("data") if isinstance(config, dict) else None
    return data.get(key) if isinstance(data, dict) else None


def _images_seed(d: dict[str, Any]) -> Any:
    """The seed that drew a run's real images: ``data.split_seed`` where its recorded config sets one, else the run
    seed. Runs with the same images seed and budget trained on the same real images, whatever the strategy."""
    split_seed = _recorded_data(d, "split_seed")
    return d.get("seed") if split_seed is None else split_seed


def collect(sweep: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of every finished run under ``sweep`` and the runs without a usable result: unfinished, failed
    (``failed.json``, e.g. diverged) or with a metrics.json whose numbers are missing or not finite."""
    rows, incomplete = [], []
    runs = {p.parent for p in sweep.rglob(".hydra")} | {p.parent for p in sweep.rglob("metrics.json")} | \
        {p.parent for p in sweep.rglob("failed.json")}
    for run in sorted(runs):
        if "backup_" in str(run) or (run == sweep and not (run / ".hydra").is_dir()):
            continue
        name = str(run.relative_to(sweep)) if run != sweep else "."
        m = run / "metrics.json"
        if not m.is_file():
            failed = run / "failed.json"
            if failed.is_file():
                try:
                    reason = json.loads(failed.read_text()).get("reason", "")
                except (OSError, json.JSONDecodeError):
                    reason = "unreadable failed.json"
                incomplete.append(f"{name} (failed: {str(reason)[:160]})")
            else:
                incomplete.append(f"{name} (unfinished)")
            continue
        try:
            d = json.loads(m.read_text())
            metrics = d["test"]["metrics"]
            strategy = strategy_of(d)
            if not isinstance(metrics, dict):
                raise TypeError(f"'test.metrics' is {type(metrics).__name__}, not a table of metrics")
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            incomplete.append(f"{name} (failed: {m} is unreadable or incomplete: {type(exc).__name__}: {exc})")
            continue
        if not _finite(metrics.get("nme_io")):
            incomplete.append(f"{name} (failed: {m} has no finite nme_io ({metrics.get('nme_io')!r}); a diverged run)")
            continue
        data = d.get("data") or {}
        budget = data.get("real_train", 0) if strategy != "synth_only" else 0
        row = {"strategy": strategy, "budget": int(budget or 0), "real_budget": d.get("real_budget"),
               "seed": d.get("seed"), "images_seed": _images_seed(d), "val_nme_io": d.get("val_nme_io"),
               "seconds": (d.get("timing") or {}).get("total_seconds"), "resumed": bool(d.get("resumed")), "run": name,
               "ced": d["test"].get("ced"), "per_face": _per_face(d["test"].get("per_face_nme_io"))}
        row.update({k: (metrics.get(k) if _finite(metrics.get(k)) else None) for k in COLUMNS if k in metrics})
        raw = d["test"].get("metrics_without_adapter") or {}
        row.update({f"{k}_no_adapter": raw.get(k) for k in ("nme_io", "nme_io_jaw", "nme_io_inner")})
        rows.append(row)
    return rows, incomplete


def _per_face(values: Any) -> np.ndarray | None:
    """A metrics.json's per-face NME list as an array; None where it has none (older runs) or it is not a list of
    finite numbers (then the report bootstraps over seeds only)."""
    if not isinstance(values, list) or not values or not all(_finite(v) for v in values):
        return None
    return np.asarray(values, dtype=float)


def _recorded_value(key: str, text: str) -> Any:
    """One cell of a recorded results.csv as the report's rows hold it (raises ValueError for a bad number)."""
    if key in ("strategy", "run"):
        return text
    if text == "":
        return None
    if key == "resumed":
        return text.strip().lower() in ("true", "1")
    if key == "real_budget" and not text.lstrip("-").isdigit():
        return text  # "all"
    if key in ("budget", "real_budget", "seed", "images_seed"):
        return int(text)
    return float(text)


def _results_csv(p: Any) -> Path:
    """A report's ``results.csv``: the path given, or the one in the folder given."""
    path = Path(str(p)).expanduser()
    return path / "results.csv" if path.is_dir() else path


def recorded_rows(paths: list[Any], option: str = "recorded") -> list[dict[str, Any]]:
    """Rows a previous report wrote to a ``results.csv`` (a path, or the folder holding one), for runs whose folders
    are not here: a sweep run on another machine, or logs since cleaned. They enter the tables, the headline and its
    interval like found runs; results.csv keeps no CED curve, so they are missing from ``ced.png`` only (an existing
    ``ced.png`` is then kept: :func:`keep_ced`). Each row
    remembers its file (``recorded``). Errors name ``option``, the setting the files were given in."""
    rows = []
    for p in paths:
        path = _results_csv(p)
        if not path.is_file():
            raise ConfigError(f"{option}: {path} not found (give the results.csv a previous report wrote, or its folder).")
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in RECORDED_REQUIRED if c not in (reader.fieldnames or [])]
                if missing:
                    raise DataError(f"{option}: {path} is not a report's results.csv: no column {', '.join(missing)} "
                                    f"(it has: {', '.join(reader.fieldnames or []) or 'no header'}).")
                for line, raw in enumerate(reader, start=2):
                    row: dict[str, Any] = {"ced": None, "recorded": str(path)}
                    for key in COLUMNS:
                        text = (raw.get(key) or "").strip()
                        try:
                            value = _recorded_value(key, text)
                        except ValueError:
                            raise DataError(f"{option}: {path}, line {line}: {key}={text!r} is not a number; fix or "
                                            "delete that line (or re-run report on the run folders).") from None
                        row[key] = value
                    if not row["strategy"] or not row["run"] or row["budget"] is None or not _finite(row["nme_io"]):
                        raise DataError(f"{option}: {path}, line {line}: a row needs a strategy, a budget, a run and a "
                                        f"finite nme_io (got {raw.get('strategy')!r}, {raw.get('budget')!r}, "
                                        f"{raw.get('run')!r}, {raw.get('nme_io')!r}).")
                    # files written before results.csv recorded these two: the run seed drew the images; not resumed
                    if row["images_seed"] is None:
                        row["images_seed"] = row["seed"]
                    row["resumed"] = bool(row["resumed"])
                    rows.append(row)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{option}: {path} could not be read as CSV ({type(exc).__name__}: {exc}).") from None
    return rows


def baseline_rows(paths: list[Any], found: list[dict[str, Any]],
                  recorded: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The real-only rows of other reports' ``results.csv`` files (:func:`recorded_rows`), as the real-only curve of
    a sweep that varied something else (the synthetic sources, say) and ran no real-only run of its own: its
    headline, interval and paired table then compare against them. Refused where the sweep has real-only runs of
    its own, found (``found``) or among the ``recorded`` rows (a recorded real-only row of a run the baseline also
    holds is the baseline's own, copied by an earlier report): they would be averaged with the baseline's as one
    curve."""
    if not paths:
        return []
    own = [r["run"] for r in found if r["strategy"] == "real_only"]
    if own:
        raise ConfigError(f"baseline: the sweep has real_only runs of its own ({own[0]}{' ...' if len(own) > 1 else ''}); "
                          "--baseline gives the real-only curve to a sweep that ran none. Drop --baseline, or move "
                          "those runs out of the sweep folder.")
    rows = []
    for p in paths:
        got = [r for r in recorded_rows([p], "baseline") if r["strategy"] == "real_only"]
        if not got:
            raise DataError(f"baseline: {_results_csv(p)} has no real_only rows to compare against (give the "
                            "results.csv of a report whose sweep ran real_only).")
        rows += [{**r, "baseline": True} for r in got]
    theirs = {r["run"] for r in rows}
    own = [r for r in recorded or [] if r["strategy"] == "real_only" and r["run"] not in theirs]
    if own:
        raise ConfigError(f"baseline: the --recorded file {own[0]['recorded']} holds real_only rows the baseline does "
                          f"not ({own[0]['run']}{' ...' if len(own) > 1 else ''}); --baseline gives the real-only curve "
                          "to a sweep that ran none. Drop --baseline, or delete those rows from the recorded file.")
    return rows


def merge_recorded(rows: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (runs found under the sweep) plus the recorded rows of runs not among them: a run folder that is here
    replaces its recorded row (same ``run`` name); of two recorded rows of one run, the first file's is kept."""
    seen = {r["run"] for r in rows}
    out = list(rows)
    for r in recorded:
        if r["run"] not in seen:
            seen.add(r["run"])
            out.append(r)
    return out


def aggregate(rows: list[dict[str, Any]], key: str = "nme_io") -> dict[str, dict[int, tuple[float, float, int]]]:
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


def seed_values(rows: list[dict[str, Any]], key: str = "nme_io") -> dict[str, dict[int, list[float]]]:
    """strategy -> budget -> the per-seed values of ``key``."""
    out: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get(key) is not None:
            out[r["strategy"]][r["budget"]].append(float(r[key]))
    return {s: dict(sorted(bs.items())) for s, bs in out.items()}


def face_values(rows: list[dict[str, Any]]) -> dict[str, dict[int, list[np.ndarray]]]:
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


def _bound(x: float, largest: int, smallest: int) -> str:
    if math.isinf(x):
        return f"more than {largest}"
    return f"fewer than {smallest}" if x == 0.0 else f"{x:.0f}"


SHORT = {"pretrain_finetune": "pretrain + {n} real", "synth_only_adapted": "synthetic only + adapter fitted on {n} real",
         "combined": "combined with {n} real", "data_adapt": "data adaptation with {n} real",
         "mixing": "mixing with {n} real",
         "synth_only": "synthetic only (no real image)",
         "self_train": "pretrain + {n} real + self-training", "self_train_real": "{n} real + self-training",
         "self_train_zero": "synthetic + self-training, no labelled image"}


def headlines(agg: dict[str, dict[int, tuple[float, float, int]]], rows: list[dict[str, Any]] | None = None) -> list[str]:
    """One sentence per strategy and budget other than real-only: the real-only budget it is worth, with a bootstrap
    interval over seeds (:func:`equivalent_budget_interval`) when ``rows`` are given and the points have seeds to
    resample. Pre-training + fine-tuning first: it is the study's headline."""
    if "real_only" not in agg or not any(s != "real_only" for s in agg):
        return ["(the headline needs real_only runs and runs of another strategy)"]
    values, faces = seed_values(rows or []), face_values(rows or [])
    budgets = sorted(b for b in agg["real_only"] if b > 0)
    single = [b for b in budgets if agg["real_only"][b][2] < 2]
    # "all N" only where the largest real-only run trained on the whole pool: a curve that stops at 50 is not "all"
    whole = any(r["strategy"] == "real_only" and r["budget"] == budgets[-1] and str(r.get("real_budget")) == "all"
                for r in rows or []) if budgets else False
    largest = "all {b:.0f} real images" if whole else "{b:.0f} real images, its largest budget measured"
    out = []
    for strategy in [s for s in ordered(agg) if s != "real_only"]:
        for n, (mean, _, seeds) in agg[strategy].items():
            rel, b = equivalent_budget(mean, agg["real_only"])
            if b is None:
                continue
            words = {"≈": f"≈ real-only with {b:.0f} real images",
                     "<": "is better than real-only with " + largest.format(b=b),
                     ">": f"is worse than real-only with {b:.0f} real images"}[rel]
            name = SHORT.get(strategy, strategy + " with {n} real").format(n=n)
            line = f"{name} (NME {100 * mean:.2f}%, {seeds} seed{'s' if seeds > 1 else ''}) {words}"
            if rows is not None:
                interval = equivalent_budget_interval(values, n, strategy=strategy, faces=faces)
                if interval is None:
                    line += " (no interval: a single seed)"
                else:
                    lo, hi = (_bound(x, budgets[-1], budgets[0]) for x in interval)
                    span = lo if lo == hi else f"{lo} to {hi}"
                    over = "seeds and test faces" if faces_cover(values, faces, n, strategy) else "seeds"
                    line += f" (95% bootstrap interval over {over}: {span} real images"
                    line += (f"; real-only at {', '.join(map(str, single))} has one seed and enters unresampled)"
                             if single else ")")
            out.append(line)
    return out


def _fmt(x: tuple[float, float, int]) -> str:
    return f"{100 * x[0]:.2f} ± {100 * x[1]:.2f} (n={x[2]})"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Every run's row, sorted by strategy, budget and seed (written atomically)."""
    write_csv_atomic(path, sorted(rows, key=lambda r: (r["strategy"], r["budget"], r["seed"] or 0)), COLUMNS,
                     extrasaction="ignore")


def budget_table(rows: list[dict], budget: int) -> list[str]:
    """The study's Table 2 at one real budget: every strategy's NME per face region (mean ± std over seeds), and the
    same without the label adapter where the run recorded it (its base output was trained on 3d labels)."""
    sel = [r for r in rows if r["budget"] in (budget, 0)]
    strategies = [s for s in ORDER if any(r["strategy"] == s for r in sel)]
    strategies += sorted({r["strategy"] for r in sel} - set(strategies))
    if not strategies:
        return []

    def cell(vals: list[float | None]) -> str:
        v = [100 * x for x in vals if x is not None]
        if not v:
            return "–"
        return f"{np.mean(v):.2f}" + (f" ± {np.std(v, ddof=1):.2f}" if len(v) > 1 else "")

    cols = ["nme_io", *[f"nme_io_{r}" for r in REGIONS], "nme_io_inner", "fr_io@0.1",
            "nme_io_no_adapter", "nme_io_jaw_no_adapter", "nme_io_inner_no_adapter"]
    md = [f"## Strategies at {budget} real images", "",
          "NME io (%) per region, mean ± std over seeds; FR@0.1 in %; \"without adapter\": the base output of runs whose "
          "base was trained on 3d (synthetic) labels, – where that is not meaningful.", "",
          "| strategy | seeds | NME io | jaw | brows | nose | eyes | mouth | inner | FR@0.1 | without adapter | "
          "jaw without | inner without |", "|---|" + "---|" * 12]
    for s in strategies:
        rs = [r for r in sel if r["strategy"] == s]
        md.append(f"| {s} | {len(rs)} | " + " | ".join(cell([r.get(c) for r in rs]) for c in cols) + " |")
    return md


def paired_table(rows: list[dict]) -> list[str]:
    """Each strategy minus real-only at the same budget, paired by the seed that drew the real images: the pairs
    trained on the same real images, so the difference is free of how hard that draw happened to be (at 50 images
    it moves both arms by more than they differ). Mean ± std of the differences, and how many pairs favour the
    strategy. Empty without such pairs."""
    real = {(r["budget"], r.get("images_seed")): r["nme_io"] for r in rows
            if r["strategy"] == "real_only" and r.get("nme_io") is not None}
    diffs: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        key = (r["budget"], r.get("images_seed"))
        if r["strategy"] != "real_only" and r["budget"] > 0 and r.get("nme_io") is not None and key in real:
            diffs[r["strategy"]][r["budget"]].append(100 * (r["nme_io"] - real[key]))
    if not diffs:
        return []
    budgets = sorted({b for d in diffs.values() for b in d})
    md = ["## Paired with real-only on the same real images", "",
          "NME io of the strategy minus real-only's (points of %), per seed that drew the real images, then mean ± std "
          "over those pairs; negative = lower error than real-only trained on the same images. (k/n: pairs where the "
          "strategy was better.) Pairing removes the luck of the draw of real images, which the unpaired table above "
          "and its interval carry.", "",
          "| strategy | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for s in ordered(diffs):
        cells = []
        for b in budgets:
            v = diffs[s].get(b, [])
            spread = f" ± {np.std(v, ddof=1):.2f}" if len(v) > 1 else ""
            cells.append(f"{np.mean(v):+.2f}{spread} ({sum(x < 0 for x in v)}/{len(v)})" if v else "")
        md.append(f"| {s} | " + " | ".join(cells) + " |")
    return md


def minutes_table(rows: list[dict], budgets: list[int]) -> list[str]:
    """Wall minutes per run (mean over seeds) per strategy and budget: what each point of the curve costs."""
    md = ["## Wall time per run (minutes, mean over seeds)", "",
          "A pre-training is trained once per seed and shared by that seed's budgets (the pre-training cache): the "
          "first run of a seed carries its cost, the others reuse it. A resumed run's time covers only its last "
          "part: such runs are left out (\"resumed\" where every seed was resumed).", "",
          "| strategy | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for s in [s for s in ORDER if any(r["strategy"] == s for r in rows)]:
        cells = []
        for b in budgets:
            here = [r for r in rows if r["strategy"] == s and r["budget"] == b]
            v = [r["seconds"] / 60 for r in here if r.get("seconds") and not r.get("resumed")]
            cells.append(f"{np.mean(v):.1f}" if v else "resumed" if any(r.get("resumed") for r in here) else "")
        md.append(f"| {s} | " + " | ".join(cells) + " |")
    return md


def markdown(title: str, rows: list[dict], agg: dict, lines: list[str], incomplete: list[str],
             budget: int = 50, ced_kept: bool = False) -> str:
    budgets = sorted({b for s in agg.values() for b in s})
    strategies = ordered(agg)
    baseline = [r for r in rows if r.get("baseline")]
    recorded = [r for r in rows if r.get("recorded") and not r.get("baseline")]

    def files(some: list[dict]) -> str:
        return ", ".join(f"`{p}`" for p in sorted({r["recorded"] for r in some}))

    read_back = (f" {len(recorded)} of them were read from {files(recorded)} (a previous report's rows; their run "
                 "folders are not here)." if recorded else "")
    if baseline:
        read_back += (f" The {len(baseline)} real_only runs are the baseline read from {files(baseline)}: this sweep "
                      "ran no real-only run, and its headline and paired table compare against those.")
    unlabelled = any(r["budget"] == 0 and r["strategy"] != "synth_only" for r in rows)
    zero = ("labelled real training images (0: none, as synthetic only or self-training from unlabelled photos "
            "alone)." if unlabelled else "real training images (synthetic only: 0).")
    md = [f"# Sweep report: {title}", "",
          f"{len(rows)} finished runs.{read_back} Real-test NME, inter-ocular (%), mean ± std over seeds; budget = "
          + zero, ""]
    md.append("| strategy | " + " | ".join(str(b) for b in budgets) + " |")
    md.append("|---|" + "---|" * len(budgets))
    for s in strategies:
        md.append(f"| {s} | " + " | ".join(_fmt(agg[s][b]) if b in agg[s] else "" for b in budgets) + " |")
    md += ["", "## Headline", ""] + [f"- {h}" for h in lines]
    if any("bootstrap" in h for h in lines):
        md += ["", "Intervals: 2000 bootstrap draws. Each draw resamples, with replacement, the seeds of the compared "
               "point and of every real-only budget, and interpolates the real-only curve on the log-budget scale; "
               "the interval holds the central 95% of the draws. \"Over seeds\" covers seed-to-seed variation (a seed "
               "draws the real images and the training noise), not the sampling of test faces; \"over seeds and test "
               "faces\" (where every run behind the line recorded its per-face errors) also resamples the test faces "
               "in each draw, the same faces for every run. A real-only budget with one seed enters every draw "
               "unresampled over seeds."]
    paired = paired_table(rows)
    md += ["", *paired, *([""] if paired else []), *budget_table(rows, budget), "", *minutes_table(rows, budgets)]
    md += ["", "## Incomplete or failed runs", ""]
    md += [f"- {r}" for r in incomplete] if incomplete else ["none"]
    figures = "Figures: `nme_vs_budget.png`, `ced.png`, `regions.png`; every run: `results.csv`."
    md += ["", figures + ced_note(rows, budget, ced_kept), ""]
    return "\n".join(md)


def ced_runs(rows: list[dict], budget: int) -> tuple[list[dict], list[dict]]:
    """The runs ``ced.png`` shows at ``budget``, and those of them without a CED curve (read from a results.csv)."""
    at = [r for r in rows if r["strategy"] in ORDER and r["budget"] in (budget, 0)]
    return at, [r for r in at if not r.get("ced")]


def ced_note(rows: list[dict], budget: int, kept: bool = False) -> str:
    """What ``ced.png`` leaves out: runs read back from a results.csv carry no CED curve; ``kept``: the figure an
    earlier report drew was left in place (see :func:`keep_ced`)."""
    at, without = ced_runs(rows, budget)
    if not without:
        return ""
    if len(without) == len(at):
        return (f" `ced.png` is not redrawn: the runs at {budget} real images were read from a results.csv, which "
                "keeps no CED curve (a `ced.png` already there is from the report that had their folders).")
    if kept:
        return (f" `ced.png` is not redrawn: {len(without)} of the {len(at)} runs at {budget} real images were read "
                "from a results.csv, which keeps no CED curve, so the `ced.png` already here (an earlier report's, "
                "which may have had their folders) is kept; delete it to draw the runs found here only.")
    return (f" `ced.png` leaves out {len(without)} of the {len(at)} runs at {budget} real images (read from a results.csv: "
            "no CED curve).")


def y_window(agg: dict) -> tuple[float, float] | None:
    """The NME range (%) that shows the curves (real-only and every strategy measured at two or more budgets) with
    their error bars; a far-off single point above them (synthetic only at 9 % beside curves at 4-6 %) would
    otherwise squeeze them flat. Every point below the curves stays in the window: a strategy that beats them is
    the one a reader looks for. ``None`` when there is no curve."""
    tops = [100 * (m + sd) for s, pts in agg.items()
            if s == "real_only" or len([b for b in pts if b > 0]) > 1 for b, (m, sd, _) in pts.items() if b > 0]
    if not tops:
        return None
    hi = max(tops)
    lo = min(100 * (m - sd) for pts in agg.values() for m, sd, _ in pts.values())  # the curves' bars and below
    pad = max(hi - lo, 0.05 * hi) * 0.12
    return lo - pad, hi + 2 * pad


def plot_budget(agg: dict, path: Path, title: str) -> None:
    """NME vs real budget (log axis), one line per strategy, seed std as error bars. The axis fits the curves
    (:func:`y_window`); a point above it is drawn at the top edge as a triangle with its value written beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=130)
    stacked: dict[int, int] = defaultdict(int)  # off-axis labels already written at a budget: the next goes below
    window = y_window(agg)
    top = window[1] if window else math.inf
    edge = top - 0.02 * (window[1] - window[0]) if window else top
    for s in ordered(agg):
        pts = agg[s]
        if s == "synth_only" or set(pts) == {0}:
            m, sd, _ = pts[min(pts)]
            label = f"{LABELS.get(s, s)}: {100 * m:.2f}%"
            if 100 * m > top:
                ax.plot([], [], ls="--", color="gray", label=label + " (above the axis)")
                continue
            ax.axhline(100 * m, ls="--", color="gray", label=label)
            ax.axhspan(100 * (m - sd), 100 * (m + sd), color="gray", alpha=0.15)
            continue
        b = sorted(x for x in pts if x > 0)
        y = [100 * pts[x][0] for x in b]
        shown = [i for i, v in enumerate(y) if v <= top]
        line = ax.errorbar([b[i] for i in shown], [y[i] for i in shown], yerr=[100 * pts[b[i]][1] for i in shown],
                           marker="o", capsize=3, label=LABELS.get(s, s) + ("" if shown else " (above the axis)"))
        color = line.lines[0].get_color()
        for i in (i for i, v in enumerate(y) if v > top):  # off the axis: a triangle at the edge, its value beside
            ax.plot(b[i], edge, marker="^", ms=9, color=color, clip_on=False)
            _, sd, n = pts[b[i]]  # one seed has no spread to show: say so instead of "± 0.00"
            text = f"{y[i]:.2f}% ± {100 * sd:.2f}" if n > 1 else f"{y[i]:.2f}% (1 seed)"
            ax.annotate(text, (b[i], edge), textcoords="offset points",
                        xytext=(8, -4 - 11 * stacked[b[i]]), fontsize=8, color=color, va="top")
            stacked[b[i]] += 1
    if window:
        ax.set_ylim(*window)
    ax.set_xscale("log")
    ax.set_xlabel("real training images (log scale)")
    ax.set_ylabel("real-test NME, inter-ocular (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_regions(rows: list[dict], budget: int, path: Path) -> None:
    """Per-region NME bars for each strategy at one budget (synthetic only at its own)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = [s for s in ORDER if any(r["strategy"] == s for r in rows)]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=130)
    width = 0.8 / max(1, len(strategies))
    for k, s in enumerate(strategies):
        sel = [r for r in rows if r["strategy"] == s and r["budget"] in (budget, 0)]
        if not sel:
            continue
        means = [100 * np.mean([r[f"nme_io_{g}"] for r in sel]) for g in REGIONS]
        ax.bar(np.arange(len(REGIONS)) + k * width, means, width, label=LABELS.get(s, s))
    ax.set_xticks(np.arange(len(REGIONS)) + width * (len(strategies) - 1) / 2, REGIONS)
    ax.set_ylabel("NME, inter-ocular (%)")
    ax.set_title(f"Per-region real-test NME at {budget} real images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def keep_ced(rows: list[dict], budget: int, path: Path) -> bool:
    """Whether to leave an existing ``ced.png`` in place: some runs at ``budget`` were read back from a results.csv
    (no CED curve), so redrawing would replace the curves of the report that had their folders with fewer."""
    return path.exists() and bool(ced_runs(rows, budget)[1])


def plot_ced(rows: list[dict], budget: int, path: Path) -> None:
    """Mean CED curve over seeds per strategy at one budget."""
    from landmark_lab.reports.plots import ced_plot

    curves = {}
    for s in ORDER:
        sel = [r for r in rows if r["strategy"] == s and r["budget"] in (budget, 0) and r.get("ced")]
        if sel:
            xs = np.asarray(sel[0]["ced"]["nme_io"])
            curves[LABELS.get(s, s)] = (xs, np.mean([r["ced"]["fraction"] for r in sel], axis=0))
    if curves:
        ced_plot(curves, path, title=f"CED at {budget} real images")


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def runs_table(title: str, rows: list[dict], incomplete: list[str]) -> str:
    """One row per run folder (an ablation): NME overall, jaw and inner face, with and without the adapter."""
    md = [f"# Runs: {title}", "",
          "Real-test NME, inter-ocular (%). 'without adapter' = the same model's base (synthetic-convention) "
          "output: the label gap in numbers.", "",
          "| run | strategy | real images | NME | jaw | inner | NME without adapter | jaw without adapter | FR@0.1 |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["run"]):
        md.append(f"| {r['run']} | {r['strategy']} | {r['budget']} | {_pct(r.get('nme_io'))} | {_pct(r.get('nme_io_jaw'))} | "
                  f"{_pct(r.get('nme_io_inner'))} | {_pct(r.get('nme_io_no_adapter'))} | "
                  f"{_pct(r.get('nme_io_jaw_no_adapter'))} | {_pct(r.get('fr_io@0.1'))} |")
    if incomplete:
        md += ["", "Incomplete or failed runs: " + ", ".join(incomplete)]
    return "\n".join(md) + "\n"


def plot_runs(rows: list[dict], path: Path, title: str) -> None:
    """NME per run (with the adapter, and without where it differs) as horizontal bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["run"], reverse=True)
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5), dpi=130)
    ax.barh(y + 0.2, [100 * (r.get("nme_io_no_adapter") or r["nme_io"]) for r in rows], 0.4, color="lightgray",
            label="without adapter")
    ax.barh(y - 0.2, [100 * r["nme_io"] for r in rows], 0.4, label="model output")
    for yi, r in zip(y, rows, strict=True):
        ax.text(100 * r["nme_io"], yi - 0.2, f" {100 * r['nme_io']:.2f}", va="center", fontsize=7)
    ax.set_yticks(y, [r["run"] for r in rows], fontsize=8)
    ax.set_xlabel("real-test NME, inter-ocular (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def reference_rows(paths: list[Any]) -> list[dict[str, Any]]:
    """Rows for reference lines from ``evaluate`` run folders (e.g. ``evaluate peer=dlib``): drawn as a flat line
    at budget 0, like synthetic-only, labelled by what was evaluated."""
    rows = []
    for p in paths:
        m = Path(str(p)).expanduser()
        m = m / "metrics.json" if m.is_dir() else m
        try:
            d = json.loads(m.read_text())
            metrics = d["test"]["metrics"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"references: {m} is not an evaluate run's metrics.json ({type(exc).__name__}: {exc}).") from None
        if not _finite(metrics.get("nme_io")):
            raise DataError(f"references: {m} has no finite nme_io.")
        box = (d.get("protocol") or {}).get("box", "landmarks")
        name = f"{d['peer']} (peer, {box} boxes)" if d.get("peer") else f"{Path(str(d.get('checkpoint', m))).name} ({box} boxes)"
        row = {"strategy": name, "budget": 0, "real_budget": None, "seed": 0, "run": str(m.parent),
               "ced": d["test"].get("ced"), "seconds": (d.get("timing") or {}).get("total_seconds")}
        row.update({k: metrics.get(k) for k in COLUMNS if k in metrics})
        rows.append(row)
    return rows


def write_report(cfg: Any) -> Path:
    """``report``: ``results.csv``, ``report.md`` and the figures of ``cfg.sweep`` into ``cfg.out`` (default: the
    sweep folder); with ``cfg.runs``, one row per run (``runs.md``, ``runs.png``). Returns the output folder."""
    sweep = Path(str(cfg.sweep)).expanduser()
    recorded = list(cfg.get("recorded") or [])
    rows, incomplete = [], []
    found = sweep.is_dir() and any(sweep.iterdir())
    if found:
        rows, incomplete = collect(sweep)
    elif not recorded:
        raise ConfigError(f"sweep={sweep}: not a folder with runs in it (give the folder a sweep or ablation wrote, "
                          "or --recorded RESULTS_CSV --out DIR to report the rows an earlier report wrote).")
    elif not cfg.get("out"):
        # the report would otherwise be written into an empty (perhaps mistyped) folder
        raise ConfigError(f"sweep={sweep} has no runs in it: to report only the --recorded rows, give --out DIR.")
    # reference lines first: a recorded results.csv holds the earlier report's reference rows too (same run name)
    # the baseline before the recorded rows: a results.csv this report wrote before holds the baseline's rows too
    past = recorded_rows(recorded)
    rows = merge_recorded(rows + reference_rows(list(cfg.get("references") or [])),
                          baseline_rows(list(cfg.get("baselines") or []), rows, past) + past)
    if not rows:
        listed = "; ".join(incomplete[:10]) + (f" (and {len(incomplete) - 10} more)" if len(incomplete) > 10 else "")
        raise DataError(f"no finished run (metrics.json) under {sweep}" + (f". Failed or unfinished: {listed}" if listed else ""))
    out = Path(str(cfg.out)) if cfg.get("out") else sweep
    out.mkdir(parents=True, exist_ok=True)
    title = sweep.name if found else out.resolve().name  # recorded rows alone: named after where they are reported
    write_csv(rows, out / "results.csv")
    if cfg.get("runs", False):
        (out / "runs.md").write_text(runs_table(title, rows, incomplete))
        plot_runs(rows, out / "runs.png", f"{title}: real-test NME per run")
        print((out / "runs.md").read_text())
        return out
    agg = aggregate(rows)
    lines = headlines(agg, rows)
    budget = int(cfg.get("ced_budget", 50))
    kept = keep_ced(rows, budget, out / "ced.png")
    (out / "report.md").write_text(markdown(title, rows, agg, lines, incomplete, budget, kept))
    plot_budget(agg, out / "nme_vs_budget.png", f"{title}: real-test NME vs real images")
    if not kept:
        plot_ced(rows, budget, out / "ced.png")
    plot_regions(rows, budget, out / "regions.png")
    print((out / "report.md").read_text())
    return out
