"""A sweep's rows: one per finished run, read from its ``metrics.json`` (or from an earlier report's ``results.csv``,
a baseline's, a reference evaluation's), and written back as ``results.csv``. The strategies' order and labels, from
the ``report`` blocks of their YAML files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import numpy as np
from omegaconf import OmegaConf

from landmark_lab.errors import ConfigError, DataError
from landmark_lab.landmarks import REGIONS as LANDMARK_REGIONS
from landmark_lab.utils.compose import config_dir
from landmark_lab.utils.io import write_csv_atomic

REGIONS = list(LANDMARK_REGIONS)  # the per-region columns, in the order landmarks.REGIONS defines them

Metric = float | None  # a fraction (0.05 = 5 % NME); None where the run did not measure it
# One run's row: a run found under the sweep (collect), a previous report's (recorded_rows, with ``recorded``: its
# file), a baseline's (``baseline``) or a reference evaluation's (reference_rows). Typed for readers and checkers, a
# plain dict at run time: csv.DictWriter writes it as it is, and the statistics take any metric column by its name.
Row = TypedDict("Row", {
    "strategy": str, "budget": int, "real_budget": int | str | None, "seed": int | None, "images_seed": int | None,
    "nme_io": Metric, "nme_ip": Metric, "nme_box": Metric, "fr_io@0.08": Metric, "fr_io@0.1": Metric,
    "auc_io@0.08": Metric, "auc_io@0.1": Metric,
    "nme_io_jaw": Metric, "nme_io_brows": Metric, "nme_io_nose": Metric, "nme_io_eyes": Metric, "nme_io_mouth": Metric,
    "nme_io_inner": Metric, "nme_io_no_adapter": Metric, "nme_io_jaw_no_adapter": Metric,
    "nme_io_inner_no_adapter": Metric, "val_nme_io": Metric, "seconds": float | None, "resumed": bool, "run": str,
    "ced": "dict[str, list[float]] | None",  # the CED curve (not in results.csv)
    "per_face": "np.ndarray | None",  # each test face's NME (not in results.csv)
    "recorded": str, "baseline": bool,
}, total=False)
# results.csv's columns, in order: a row's keys less the curves and where it came from
COLUMNS = ["strategy", "budget", "real_budget", "seed", "images_seed", "nme_io", "nme_ip", "nme_box", "fr_io@0.08",
           "fr_io@0.1", "auc_io@0.08", "auc_io@0.1", *(f"nme_io_{r}" for r in REGIONS), "nme_io_inner",
           "nme_io_no_adapter", "nme_io_jaw_no_adapter", "nme_io_inner_no_adapter", "val_nme_io", "seconds", "resumed",
           "run"]


# Columns a recorded results.csv must have to be read back (recorded_rows); the others may be missing or empty.
RECORDED_REQUIRED = ["strategy", "budget", "seed", "nme_io", "run"]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class ReportName(NamedTuple):
    """How reports name one strategy: its place in tables and curves, its legend label, its headline name."""

    order: float
    label: str
    short: str  # with ``{n}``: the labelled images


def _catalogue_entry(name: str, spec: Any, where: str) -> ReportName:
    if not isinstance(spec, dict) or not isinstance(spec.get("label"), str):
        raise ConfigError(f"{where}: report.{name} needs a label (and an order and a short name): "
                          "{order: 10, label: \"...\", short: \"... {n} real\"}.")
    order = spec.get("order", math.inf)
    return ReportName(float(order) if _finite(order) else math.inf, spec["label"],
                      str(spec.get("short") or f"{name} with {{n}} real"))


def strategy_catalogue() -> dict[str, ReportName]:
    """``name -> ReportName`` of every reported strategy, read from the ``report`` block of the packaged
    ``conf/strategy/*.yaml``: a strategy's place in tables and curves, its legend label and its headline name are
    defined beside its stages. Runs of strategies from other config folders bring theirs in their metrics.json
    (:func:`add_reported`)."""
    out: dict[str, ReportName] = {}
    for path in sorted((config_dir() / "strategy").glob("*.yaml")):
        loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        report = (loaded.get("report") if isinstance(loaded, dict) else None) or {}
        for name, spec in report.items():
            out[str(name)] = _catalogue_entry(str(name), spec, str(path))
    return out


_CATALOGUE: dict[str, ReportName] = {}


def catalogue() -> dict[str, ReportName]:
    """The reported strategies: the packaged ones (read on first use), plus those :func:`add_reported` added."""
    if not _CATALOGUE:
        _CATALOGUE.update(strategy_catalogue())
    return _CATALOGUE


def strategy_order() -> list[str]:
    """The reported strategies in their report order."""
    names = catalogue()
    return sorted(names, key=lambda n: names[n].order)


def strategy_label(name: str) -> str:
    """A strategy's legend label (its name where no report block defines one)."""
    entry = catalogue().get(name)
    return entry.label if entry else name


def strategy_short(name: str) -> str:
    """A strategy's name in headlines, with ``{n}`` for its labelled images."""
    entry = catalogue().get(name)
    return entry.short if entry else f"{name} with {{n}} real"


def add_reported(metrics: dict[str, Any]) -> None:
    """Make a run's own strategy reportable when the packaged configs do not define it (a strategy YAML in the
    user's ``--config-dir``): its recorded ``strategy.report`` block. A strategy without one is reported under its
    name, after the known ones (:func:`ordered`)."""
    config = metrics.get("config")
    strategy = config.get("strategy") if isinstance(config, dict) else None
    report = strategy.get("report") if isinstance(strategy, dict) else None
    known = catalogue()
    for name, spec in report.items() if isinstance(report, dict) else ():
        if str(name) not in known:
            try:
                known[str(name)] = _catalogue_entry(str(name), spec, "a run's recorded strategy")
            except ConfigError:
                continue  # a malformed block in a run's record: the run is still reported, under its name


def ordered(names: Any) -> list[str]:
    """Strategy names in the report's order (:func:`strategy_order`), others (reference lines) after them as they came."""
    names, known = list(names), strategy_order()
    return [s for s in known if s in names] + [s for s in names if s not in known]


def strategy_of(metrics: dict[str, Any]) -> str:
    """The strategy a run measured, from its ``metrics.json``: ``data_adapt`` with a synthetic share of the batch
    below 1 (``data.synth_share``) also trains on the real images, which is the study's mixing, not its data
    adaptation, so it is reported as ``mixing``."""
    strategy = metrics["strategy"]
    share = _recorded_data(metrics, "synth_share")
    return "mixing" if strategy == "data_adapt" and _finite(share) and share < 1 else strategy


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


def collect(sweep: Path) -> tuple[list[Row], list[str]]:
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
            add_reported(d)
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


def recorded_rows(paths: list[Any], option: str = "recorded") -> list[Row]:
    """Rows a previous report wrote to a ``results.csv`` (a path, or the folder holding one), for runs whose folders
    are not here: a sweep run on another machine, or logs since cleaned. They enter the tables, the headline and its
    interval like found runs; results.csv keeps no CED curve, so they are missing from ``ced.png`` only (an existing
    ``ced.png`` is then kept: :func:`landmark_lab.reports.plots.keep_ced`). Each row
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
                    row: Row = {"ced": None, "recorded": str(path)}
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


def baseline_rows(paths: list[Any], found: list[Row],
                  recorded: list[Row] | None = None) -> list[Row]:
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


def merge_recorded(rows: list[Row], recorded: list[Row]) -> list[Row]:
    """``rows`` (runs found under the sweep) plus the recorded rows of runs not among them: a run folder that is here
    replaces its recorded row (same ``run`` name); of two recorded rows of one run, the first file's is kept."""
    seen = {r["run"] for r in rows}
    out = list(rows)
    for r in recorded:
        if r["run"] not in seen:
            seen.add(r["run"])
            out.append(r)
    return out


def write_csv(rows: list[Row], path: Path) -> None:
    """Every run's row, sorted by strategy, budget and seed (written atomically)."""
    write_csv_atomic(path, sorted(rows, key=lambda r: (r["strategy"], r["budget"], r["seed"] or 0)), COLUMNS,
                     extrasaction="ignore")


def reference_rows(paths: list[Any]) -> list[Row]:
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
