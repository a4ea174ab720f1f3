"""The report's words: the headline sentences and the Markdown tables (per budget, per region, paired on the same
real images, wall time, one row per run)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from landmark_lab.reports.plots import ced_runs
from landmark_lab.reports.rows import REGIONS, Row, ordered, strategy_order, strategy_short
from landmark_lab.reports.stats import equivalent_budget, equivalent_budget_interval, face_values, faces_cover, seed_values


def _bound(x: float, largest: int, smallest: int) -> str:
    if math.isinf(x):
        return f"more than {largest}"
    return f"fewer than {smallest}" if x == 0.0 else f"{x:.0f}"


def headlines(agg: dict[str, dict[int, tuple[float, float, int]]], rows: list[Row] | None = None) -> list[str]:
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
            name = strategy_short(strategy).format(n=n)
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


def budget_table(rows: list[Row], budget: int) -> list[str]:
    """The study's Table 2 at one real budget: every strategy's NME per face region (mean ± std over seeds), and the
    same without the label adapter where the run recorded it (its base output was trained on 3d labels)."""
    sel = [r for r in rows if r["budget"] in (budget, 0)]
    strategies = [s for s in strategy_order() if any(r["strategy"] == s for r in sel)]
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


def paired_table(rows: list[Row]) -> list[str]:
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


def minutes_table(rows: list[Row], budgets: list[int]) -> list[str]:
    """Wall minutes per run (mean over seeds) per strategy and budget: what each point of the curve costs."""
    md = ["## Wall time per run (minutes, mean over seeds)", "",
          "A pre-training is trained once per seed and shared by that seed's budgets (the pre-training cache): the "
          "first run of a seed carries its cost, the others reuse it. A resumed run's time covers only its last "
          "part: such runs are left out (\"resumed\" where every seed was resumed).", "",
          "| strategy | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for s in [s for s in strategy_order() if any(r["strategy"] == s for r in rows)]:
        cells = []
        for b in budgets:
            here = [r for r in rows if r["strategy"] == s and r["budget"] == b]
            v = [r["seconds"] / 60 for r in here if r.get("seconds") and not r.get("resumed")]
            cells.append(f"{np.mean(v):.1f}" if v else "resumed" if any(r.get("resumed") for r in here) else "")
        md.append(f"| {s} | " + " | ".join(cells) + " |")
    return md


def markdown(title: str, rows: list[Row], agg: dict, lines: list[str], incomplete: list[str],
             budget: int = 50, ced_kept: bool = False) -> str:
    budgets = sorted({b for s in agg.values() for b in s})
    strategies = ordered(agg)
    baseline = [r for r in rows if r.get("baseline")]
    recorded = [r for r in rows if r.get("recorded") and not r.get("baseline")]

    def files(some: list[Row]) -> str:
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


def ced_note(rows: list[Row], budget: int, kept: bool = False) -> str:
    """What ``ced.png`` leaves out: runs read back from a results.csv carry no CED curve; ``kept``: the figure an
    earlier report drew was left in place (see :func:`landmark_lab.reports.plots.keep_ced`)."""
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


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def runs_table(title: str, rows: list[Row], incomplete: list[str]) -> str:
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
