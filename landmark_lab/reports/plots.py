"""The report's figures: NME against the real budget, per-region bars, CED curves, one bar per run."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from landmark_lab.reports.rows import REGIONS, Row, ordered, strategy_label, strategy_order
from landmark_lab.utils.drawing import pyplot


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
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=130)
    stacked: dict[int, int] = defaultdict(int)  # off-axis labels already written at a budget: the next goes below
    window = y_window(agg)
    top = window[1] if window else math.inf
    edge = top - 0.02 * (window[1] - window[0]) if window else top
    for s in ordered(agg):
        pts = agg[s]
        if s == "synth_only" or set(pts) == {0}:
            m, sd, _ = pts[min(pts)]
            label = f"{strategy_label(s)}: {100 * m:.2f}%"
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
                           marker="o", capsize=3, label=strategy_label(s) + ("" if shown else " (above the axis)"))
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
    entries = len(ax.get_legend_handles_labels()[0])
    if entries > 4:  # below the axes, where it covers no curve; the figure grows by its lines
        fig.set_size_inches(7, 4.5 + 0.17 * entries)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    else:
        ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_regions(rows: list[Row], budget: int, path: Path) -> None:
    """Per-region NME bars for each strategy at one budget (synthetic only at its own)."""
    plt = pyplot()

    strategies = [s for s in strategy_order() if any(r["strategy"] == s for r in rows)]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=130)
    width = 0.8 / max(1, len(strategies))
    for k, s in enumerate(strategies):
        sel = [r for r in rows if r["strategy"] == s and r["budget"] in (budget, 0)]
        if not sel:
            continue
        means = [100 * np.mean([r[f"nme_io_{g}"] for r in sel]) for g in REGIONS]
        ax.bar(np.arange(len(REGIONS)) + k * width, means, width, label=strategy_label(s))
    ax.set_xticks(np.arange(len(REGIONS)) + width * (len(strategies) - 1) / 2, REGIONS)
    ax.set_ylabel("NME, inter-ocular (%)")
    ax.set_title(f"Per-region real-test NME at {budget} real images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def keep_ced(rows: list[Row], budget: int, path: Path) -> bool:
    """Whether to leave an existing ``ced.png`` in place: some runs at ``budget`` were read back from a results.csv
    (no CED curve), so redrawing would replace the curves of the report that had their folders with fewer."""
    return path.exists() and bool(ced_runs(rows, budget)[1])


def plot_ced(rows: list[Row], budget: int, path: Path) -> None:
    """Mean CED curve over seeds per strategy at one budget."""
    from landmark_lab.evaluation.figures import ced_plot

    curves = {}
    for s in strategy_order():
        sel = [r for r in rows if r["strategy"] == s and r["budget"] in (budget, 0) and r.get("ced")]
        if sel:
            xs = np.asarray(sel[0]["ced"]["nme_io"])
            curves[strategy_label(s)] = (xs, np.mean([r["ced"]["fraction"] for r in sel], axis=0))
    if curves:
        ced_plot(curves, path, title=f"CED at {budget} real images")


def plot_runs(rows: list[Row], path: Path, title: str) -> None:
    """NME per run (with the adapter, and without where it differs) as horizontal bars."""
    plt = pyplot()

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


def ced_runs(rows: list[Row], budget: int) -> tuple[list[Row], list[Row]]:
    """The runs ``ced.png`` shows at ``budget``, and those of them without a CED curve (read from a results.csv)."""
    known = strategy_order()
    at = [r for r in rows if r["strategy"] in known and r["budget"] in (budget, 0)]
    return at, [r for r in at if not r.get("ced")]
