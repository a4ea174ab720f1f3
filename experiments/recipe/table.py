"""The recipe ablation's table and plot, from the run folders ``experiments/recipe/run.sh`` wrote.

For every row (``OUT/<row>/seed<N>/``) it reads the test figures of each seed and its wall time. For the
heatmap rows it also evaluates what costs no training, on the same checkpoints and the same test faces:
test-time flip averaging off/on, the three decoders (DARK, local soft-argmax, plain argmax) and the live weights
instead of their moving average (EMA off). Those figures are cached in each run folder (``variants.json``).

    python experiments/recipe/table.py [--out logs/recipe] [--dest experiments/recipe]

Writes ``results.csv`` (one line per run and variant), ``table.md`` (mean +- sd over seeds) and ``ablation.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
from omegaconf import OmegaConf

from landmark_lab.evaluation.core import evaluate
from landmark_lab.models.checkpoint import apply_state, load_landmark_model, read_checkpoint
from landmark_lab.models.heatmaps import DECODERS
from landmark_lab.training.builders import build_datamodule
from landmark_lab.utils.io import write_csv_atomic, write_text_atomic

# row -> (what it is, in words); the order of the table
ROWS = {
    "r64_regression_basic": "64 px, regression head + mlp adapter (the shipped real_only), basic aug",
    "r64_regression_basic_noadapter": "64 px, regression head, no adapter, basic aug",
    "r64_integral_basic": "64 px, integral head (soft-argmax), no adapter, basic aug",
    "r64_heatmap_basic": "64 px, heatmap head (stride 4, DARK), basic aug, EMA, flip test",
    "r64_heatmap_real": "64 px, heatmap head, real-face aug, EMA, flip test",
    "r64_heatmap_real_mlpadapter": "64 px, heatmap head, real-face aug, EMA, flip test, + mlp adapter",
    "r64_heatmap_real_pretrain": "64 px, heatmap, real-face aug, EMA, flip test, after 1200 steps of pre-training on "
                                 "2000 procedural synthetic faces (same 1200 real steps, same lr)",
    "r128_integral_basic_1500": "128 px, integral head + mlp adapter, basic aug, 1500 steps (the issue's best today)",
    "r128_recipe": "128 px recipe: heatmap, real-face aug, EMA, flip test, 2400 steps (the first recipe)",
    "r128_recipe_3600": "the same with 3600 steps (what 60 minutes on 2 cores allow; the recipe until `basic` beat it)",
    "r128_recipe_basic": "128 px, 2400 steps recipe with the basic augmentation instead of the real-face preset",
    "r128_recipe_basic_3600": "the same with 3600 steps: **the recipe** (`+experiment=recipe_300w`)",
}
# evaluation-only variants of a heatmap run: name -> (decoder, flip, weights)
VARIANTS = {
    "as trained (DARK, flip, EMA)": ("dark", True, "ema"),
    "no flip test": ("dark", False, "ema"),
    "local soft-argmax decoding": ("local", True, "ema"),
    "argmax decoding (no sub-pixel)": ("argmax", True, "ema"),
    "no EMA (live weights of the last step)": ("dark", True, "live"),
    "no flip test, no EMA (as the other heads' rows)": ("dark", False, "live"),
}


def _runs(out: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for row in ROWS:
        seeds = sorted(p.parent for p in (out / row).glob("seed*/metrics.json"))
        if seeds:
            found[row] = seeds
    return found


def _variants(run: Path) -> dict[str, float]:
    """Evaluation-only figures of a heatmap run (cached in ``run/variants.json``)."""
    cache = run / "variants.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = OmegaConf.create(metrics["config"])
    stage = metrics["stages"][-1]
    best = run / stage["best_checkpoint"]
    model = load_landmark_model(best)
    dm = build_datamodule(cfg, progress=False)
    dm.prepare_data()
    dm.setup("test")
    loader = dm.test_dataloader()
    ema_state = {k: v.clone() for k, v in model.state_dict().items()}
    last = read_checkpoint(run / "checkpoints" / stage["name"] / "last.ckpt")
    live = next((s.get("live") for k, s in (last.get("callbacks") or {}).items() if k.startswith("EMA")), None)
    out: dict[str, float] = {}
    for name, (decoder, flip, weights) in VARIANTS.items():
        if weights == "live":
            if live is None:
                continue
            apply_state(model, live, run / "last.ckpt")
        else:
            apply_state(model, ema_state, best)
        model.head.decoder = DECODERS.get(decoder)
        out[name] = float(evaluate(model, loader, progress=False, flip=flip).metrics["nme_io"])
        print(f"  {run}: {name}: {100 * out[name]:.2f}%", flush=True)
    write_text_atomic(cache, json.dumps(out, indent=1))
    return out


def _mean_sd(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{100 * values[0]:.2f} (one seed)"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "logs/recipe"), help="folder run.sh wrote")
    parser.add_argument("--dest", default=str(Path(__file__).parent), help="where the table and plot go")
    parser.add_argument("--variants", choices=("all", "cached"), default="all",
                        help="evaluation variants: compute any missing (about a minute per variant and seed on a "
                             "CPU) or only list those already cached in the run folders")
    args = parser.parse_args()
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    out, dest = Path(args.out), Path(args.dest)
    runs = _runs(out)
    if not runs:
        raise SystemExit(f"no finished runs under {out}/<row>/seed<N>/: run experiments/recipe/run.sh first")
    lines: list[dict] = []
    table = ["| row | setting | seeds | real-test NME io (%), mean ± sd | jaw | inner | minutes per run (1 core) |",
             "|---|---|---|---|---|---|---|"]
    summary: dict[str, tuple[float, float, float]] = {}  # row -> (mean NME, sd, minutes per run)
    for row, seeds in runs.items():
        ms = [json.loads((s / "metrics.json").read_text()) for s in seeds]
        nme = [m["test"]["metrics"]["nme_io"] for m in ms]
        jaw = [m["test"]["metrics"]["nme_io_jaw"] for m in ms]
        inner = [m["test"]["metrics"]["nme_io_inner"] for m in ms]
        minutes = [m["timing"]["total_seconds"] / 60 for m in ms]
        for s, m in zip(seeds, ms, strict=True):
            lines.append({"row": row, "variant": "as trained", "seed": m["seed"], "nme_io": m["test"]["metrics"]["nme_io"],
                          "minutes": round(m["timing"]["total_seconds"] / 60, 1), "run": str(s)})
        summary[row] = (statistics.mean(nme), statistics.stdev(nme) if len(nme) > 1 else 0.0, statistics.mean(minutes))
        table.append(f"| {row} | {ROWS[row]} | {len(ms)} | {_mean_sd(nme)} | {_mean_sd(jaw)} | {_mean_sd(inner)} | "
                     f"{statistics.mean(minutes):.0f} |")
    variant_table = ["| row | variant (same checkpoints, evaluation only) | seeds | real-test NME io (%) |",
                     "|---|---|---|---|"]
    for row, seeds in runs.items():
        cfg = json.loads((seeds[0] / "metrics.json").read_text())["config"]
        if cfg["model"]["head"]["name"] != "heatmap":
            continue
        per_seed = [_variants(s) if args.variants == "all" or (s / "variants.json").is_file() else {} for s in seeds]
        for name in VARIANTS:
            values = [v[name] for v in per_seed if name in v]
            for s, v in zip(seeds, per_seed, strict=True):
                if name in v:
                    lines.append({"row": row, "variant": name, "seed": s.name.removeprefix("seed"), "nme_io": v[name],
                                  "minutes": "", "run": str(s)})
            if values:
                variant_table.append(f"| {row} | {name} | {len(values)} | {_mean_sd(values)} |")
    dest.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(dest / "results.csv", lines, list(lines[0]))
    write_text_atomic(dest / "table.md", "\n".join(["## Training rows", "", *table, "", "## Evaluation variants", "",
                                                    *variant_table, ""]))
    _plot(summary, dest / "ablation.png")
    print((dest / "table.md").read_text())


def _plot(summary: dict[str, tuple[float, float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(summary)[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.6), dpi=130)
    y = range(len(rows))
    ax.barh(list(y), [100 * summary[r][0] for r in rows], xerr=[100 * summary[r][1] for r in rows], capsize=3,
            color=["tab:green" if r.startswith("r128_recipe") else "tab:blue" for r in rows])
    for yi, r in zip(y, rows, strict=True):
        ax.text(100 * summary[r][0] + 0.1, yi, f"{100 * summary[r][0]:.2f}%  ({summary[r][2]:.0f} min)", va="center",
                fontsize=8)
    ax.axvline(4.0, color="tab:red", ls="--", lw=1, label="target 4.0 %")
    ax.set_yticks(list(y), rows, fontsize=8)
    ax.set_xlabel("LFPW-train NME, inter-ocular (%), mean ± sd over seeds; (minutes per run on 1 core)")
    ax.set_title("Recipe ablation: train AFW + HELEN train, test LFPW train")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
