"""``python -m landmark_lab.report SWEEP_DIR [--runs] [--ced-budget 50] [--out DIR] [--reference EVAL_RUN ...]
[--recorded RESULTS_CSV ...] [--baseline RESULTS_CSV ...]``.

Gathers a sweep's runs (:mod:`landmark_lab.reports.rows`), their statistics (:mod:`~landmark_lab.reports.stats`)
and writes, into the sweep folder or ``--out``: ``results.csv`` (one row per run), ``report.md`` (mean ± std over
seeds per strategy x budget, the headline, incomplete runs; :mod:`~landmark_lab.reports.tables`), ``nme_vs_budget.png``
(the headline figure), ``ced.png`` (CED curves at one budget) and ``regions.png`` (per-region NME;
:mod:`~landmark_lab.reports.plots`). With ``--runs`` (ablations): ``runs.md`` and ``runs.png``, one row per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from landmark_lab.cli.app import run_app
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.reports.plots import keep_ced, plot_budget, plot_ced, plot_regions, plot_runs
from landmark_lab.reports.rows import baseline_rows, collect, merge_recorded, recorded_rows, reference_rows, write_csv
from landmark_lab.reports.stats import aggregate
from landmark_lab.reports.tables import headlines, markdown, runs_table


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


def main() -> None:
    run_app("report", write_report, flags={"--runs": "runs=true", "--ced-budget": "ced_budget", "--out": "out",
                                            "--reference": "references+=",
                                            "--recorded": "recorded+=", "--baseline": "baselines+="},
            positional="sweep")


if __name__ == "__main__":
    main()
