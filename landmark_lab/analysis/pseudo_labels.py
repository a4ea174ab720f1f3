"""How good were a self-training run's pseudo-labels? ``python -m landmark_lab.analyze pseudo run_dir=RUN``.

Reads each student round's ``pseudo_labels/<stage>.npz`` (the teacher's predictions, its confidences and which photos the
rule kept) and, never during training, the photos' hidden labels (``NAME.pts`` beside each photo: the
``data/unlabelled=pool_rest`` protocol). Reports per round the pseudo-labels' NME (inter-ocular), the kept share,
the rule's precision (kept photos under the failure threshold) and, for every rule at several kept shares, the
kept photos' mean NME: which confidence rule picks the better pseudo-labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landmark_lab.data.pts import read_pts
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.metrics import nme_per_face, normalizer, point_errors
from landmark_lab.training.self_training import RULES, PseudoLabels
from landmark_lab.utils.drawing import pyplot

FAILURE = 0.08  # a pseudo-label worse than this NME io counts as a failure (the usual 8 % threshold)
SHARES = (0.2, 0.4, 0.6, 0.8, 1.0)
POINT_DROPS = (0.0, 0.05, 0.1, 0.2)  # self_train.point_drop values graded


def _hidden_labels(images: list[Path], where: Path) -> np.ndarray:
    pts = []
    for image in images:
        label = image.with_suffix(".pts")
        if not label.is_file():
            raise ConfigError(f"{where}: {image} has no {label.name} beside it. analyze pseudo grades pseudo-labels "
                              "against hidden labels, so it needs the data/unlabelled=pool_rest protocol (or your "
                              "own labels beside the photos).")
        try:
            pts.append(read_pts(label))
        except DataError as exc:
            raise DataError(f"{exc} (a hidden label, read by analyze pseudo)") from None
    return np.stack(pts).astype(np.float32)


def grade(labels: PseudoLabels, kept: np.ndarray | None, truth: np.ndarray) -> dict[str, Any]:
    """Figures of one round: NME of all / kept / dropped photos, precision, and each rule's kept NME by share."""
    nme = nme_per_face(torch.from_numpy(labels.landmarks), torch.from_numpy(truth)).numpy().astype(np.float64)
    found = labels.found.astype(bool)
    nme = np.where(found, nme, np.nan)
    kept = found if kept is None else kept.astype(bool)
    ok = nme < FAILURE
    out: dict[str, Any] = {
        "photos": len(nme), "found": int(found.sum()), "kept": int(kept.sum()),
        "kept_share": float(kept.sum() / max(1, found.sum())),
        "nme_all": float(np.nanmean(nme)), "nme_kept": float(np.nanmean(nme[kept])) if kept.any() else None,
        "nme_dropped": float(np.nanmean(nme[found & ~kept])) if (found & ~kept).any() else None,
        "failures_all": float(np.mean(~ok[found])), "precision_kept": float(np.mean(ok[kept])) if kept.any() else None,
        "rules": {},
    }
    for rule in RULES:
        out["rules"][rule] = {str(s): float(np.nanmean(nme[labels.keep(rule, s)])) for s in SHARES}
    conf = {rule: labels.confidence(rule) for rule in ("peak", "flip")}
    out["spearman"] = {rule: _spearman(-c[found], nme[found]) for rule, c in conf.items()}
    out["point_drop"] = _point_drops(labels, kept, truth)
    return out


def _point_drops(labels: PseudoLabels, kept: np.ndarray, truth: np.ndarray) -> dict[str, Any] | None:
    """What ``self_train.point_drop`` leaves: for each share, the mean error (io, per point) of the kept photos'
    points that stay in the loss and of those left out (None for files without per-point flip gaps)."""
    if labels.point_gap is None or not kept.any():
        return None
    err = (point_errors(torch.from_numpy(labels.landmarks), torch.from_numpy(truth))
           / normalizer(torch.from_numpy(truth), "inter_ocular").clamp_min(1e-6)[:, None]).numpy()[kept]
    out: dict[str, Any] = {}
    for drop in POINT_DROPS:
        w = labels.point_weights(kept, drop)[kept] > 0
        out[str(drop)] = {"kept_points": float(err[w].mean()),
                          "dropped_points": float(err[~w].mean()) if (~w).any() else None}
    gaps = labels.point_gap[kept]
    out["spearman_point_gap"] = _spearman(gaps.ravel(), err.ravel())
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 else float("nan")


def _figure(rounds: list[tuple[str, PseudoLabels, np.ndarray, dict[str, Any]]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, labels, nme, g in rounds:
        found = labels.found.astype(bool)
        axes[0].scatter(labels.peak[found], 100 * nme[found], s=5, alpha=0.5, label=name)
        axes[1].scatter(100 * labels.flip_gap[found], 100 * nme[found], s=5, alpha=0.5, label=name)
        for rule, style in zip(RULES, ("-", "--", ":"), strict=True):
            ys = [100 * g["rules"][rule][str(s)] for s in SHARES]
            axes[2].plot([100 * s for s in SHARES], ys, style, marker="o", label=f"{name}: {rule}")
    axes[0].set(xlabel="confidence: heatmap peak (higher = surer)", ylabel="pseudo-label NME io (%)",
                title="NME vs peak confidence")
    axes[1].set(xlabel="flip gap (% of the crop side; lower = surer)", ylabel="pseudo-label NME io (%)",
                title="NME vs flip agreement")
    axes[2].set(xlabel="photos kept, most confident first (%)", ylabel="mean NME io of the kept (%)",
                title="what each rule keeps")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_label(run: Path) -> str:
    """Name a run folder for a report title: its path under the ``sweeps`` folder (sweep/.../n50/seed0), else its last
    three parts; the folder's own name ("seed0") does not say which run was graded."""
    parts = run.expanduser().resolve().parts
    if "sweeps" in parts[:-1]:
        start = len(parts) - 1 - parts[::-1].index("sweeps")
        return "/".join(parts[start + 1:])
    return "/".join(parts[-3:])


def pseudo(cfg: Any, out: Path) -> dict[str, Any]:
    """Grade every round's pseudo-labels of the self-training run ``cfg.run_dir`` (figure, JSON and Markdown)."""
    if not cfg.get("run_dir"):
        raise ConfigError("analyze pseudo needs run_dir=RUN: a self-training run folder (it holds "
                          "pseudo_labels/<student stage>.npz).")
    run = Path(str(cfg.run_dir)).expanduser()
    files = sorted((run / "pseudo_labels").glob("*.npz"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise ConfigError(f"{run}: no pseudo_labels/*.npz: not a self-training run folder "
                          "(strategy self_train, self_train_real or self_train_zero), or it has not reached its student.")
    rounds, result = [], {"run": str(run), "failure_threshold": FAILURE, "rounds": {}}
    lines = [f"# Pseudo-labels of {run_label(run)}: graded against the hidden labels", "",
             "| round | photos | face found | kept | NME all | NME kept | NME dropped | failures (all) | "
             "precision (kept under 8 %) | rank corr. peak / flip |", "|" + "---|" * 10]
    for f in files:
        labels, kept, record = PseudoLabels.load(f)
        truth = _hidden_labels(labels.images, f)
        g = grade(labels, kept, truth)
        g["rule"] = record.get("rule")
        nme = nme_per_face(torch.from_numpy(labels.landmarks), torch.from_numpy(truth)).numpy()
        rounds.append((f.stem, labels, nme, g))
        result["rounds"][f.stem] = g
        pct = lambda v: "-" if v is None else f"{100 * v:.2f} %"  # noqa: E731
        lines.append(f"| {f.stem} ({g['rule']}) | {g['photos']} | {g['found']} | {g['kept']} | {pct(g['nme_all'])} "
                     f"| {pct(g['nme_kept'])} | {pct(g['nme_dropped'])} | {pct(g['failures_all'])} | "
                     f"{pct(g['precision_kept'])} | {g['spearman']['peak']:.2f} / {g['spearman']['flip']:.2f} |")
    lines += ["", "Mean NME io (%) of the photos each rule keeps, by kept share (round, rule: "
              + " / ".join(f"{int(100 * s)} %" for s in SHARES) + "):", ""]
    for name, _, _, g in rounds:
        for rule in RULES:
            lines.append(f"- {name}, {rule}: " + " / ".join(f"{100 * g['rules'][rule][str(s)]:.2f}" for s in SHARES))
    drops = [(name, g["point_drop"]) for name, _, _, g in rounds if g.get("point_drop")]
    if drops:
        lines += ["", "Per point (`self_train.point_drop`: the kept photos' points with the largest flip gap left out "
                  "of the loss): mean point error, io %, of the points that stay / that are left out, by share left out:",
                  ""]
        for name, d in drops:
            cells = [f"{int(100 * s)} %: {100 * d[str(s)]['kept_points']:.2f}"
                     + (f" / {100 * d[str(s)]['dropped_points']:.2f}" if d[str(s)]["dropped_points"] is not None else "")
                     for s in POINT_DROPS]
            lines.append(f"- {name}: " + "; ".join(cells) + f" (rank corr. point gap / error "
                         f"{d['spearman_point_gap']:.2f})")
    lines += ["", "Rank correlation: Spearman's between the confidence (peak: higher = surer; flip: lower gap = surer) "
              "and the error, over the photos with a face; positive = the rule ranks well."]
    out.mkdir(parents=True, exist_ok=True)
    _figure(rounds, out / "pseudo.png")
    (out / "pseudo.json").write_text(json.dumps(result, indent=2))
    text = "\n".join(lines) + "\n"
    (out / "pseudo.md").write_text(text)
    print(text)
    return result
