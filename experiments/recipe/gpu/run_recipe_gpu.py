"""The GPU recipe on real faces inside a fixed wall-clock budget: +experiment=recipe_300w_gpu, two seeds side
by side on one GPU, trained as many steps as the budget allows (measured by a short probe first). Other models
ride the same driver as variants (``--variant NAME "OVERRIDES"``: every variant x seed runs side by side, all
with the step count the budget allows), and ``--keep-models`` writes each run's tested model as a small
checkpoint (weights and hyper-parameters only: what a device call can bring back) under ``models/``.

A lent GPU machine gives one command of at most 10 minutes, so the schedule is sized to the machine instead
of fixed: two short probe runs (PROBE steps, both seeds at once, as the real runs will share the GPU and
CPUs) measure seconds per step and the fixed costs (start, crop cache, validation, flip test); the two real
runs then get the largest step count (a multiple of 500) whose train + test fits before --deadline. Each run is
a normal `python -m landmark_lab.train` with its own run folder; the results (metrics.json, configs, logs,
curves) are packed into one archive and summarised in summary.md under --out.

    bash experiments/recipe/gpu/run.sh                     # on the GPU machine (see README.md beside this)
    python experiments/recipe/gpu/run_recipe_gpu.py --cpu-smoke --data DIR --out DIR   # CPU check of the driver
    python experiments/recipe/gpu/run_recipe_gpu.py --collect RUN [RUN ...] --out DIR  # table of finished runs
    # the deploy family's models (experiments/deploy/gpu/run.sh): one variant per model, one seed
    python experiments/recipe/gpu/run_recipe_gpu.py --data DIR --out DIR --seeds 0 --keep-models \
        --variant repghostnet_050 "model.backbone.name=repghostnet_050 ..." --variant ...
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from landmark_lab.utils.io import atomic_path, write_csv_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[3]


def train(args: list[str], run_dir: Path, log: Path) -> subprocess.Popen:
    """Start one training run (its output to ``log``); :func:`wait_all` waits for it."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "landmark_lab.train", *args, f"hydra.run.dir={run_dir}"]
    print("$", " ".join(cmd), flush=True)
    with log.open("w") as f:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)


def wait_all(procs: list[subprocess.Popen], deadline: float) -> list[int]:
    """Exit codes; runs still going at ``deadline`` are killed (code -9)."""
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.time())))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(-9)
    return codes


def metrics(run_dir: Path) -> dict | None:
    f = run_dir / "metrics.json"
    return json.loads(f.read_text()) if f.is_file() else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="300-W root (afw/, helen/trainset/, lfpw/trainset/)")
    p.add_argument("--out", type=Path, required=True, help="where the run folders, archive and summary go")
    p.add_argument("--deadline", type=float, default=520.0, help="seconds from start by which all runs end")
    p.add_argument("--probe", type=int, default=300, help="steps of each probe run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--max-steps", type=int, default=30000, help="upper bound on the steps the budget buys")
    p.add_argument("--workers", type=int, default=0, help="loader workers per run (0: CPUs / runs - 1)")
    p.add_argument("--experiment", default="recipe_300w_gpu", help="the experiment every run starts from")
    p.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), default=[],
                   help="a run per seed with these space-separated Hydra overrides (repeatable; default: the "
                        "experiment as it is)")
    p.add_argument("--max-steps-fixed", type=int, default=0, help="skip the probe: train exactly this many steps")
    p.add_argument("--steps-from-overrides", action="store_true",
                   help="skip the probe and set no steps: the experiment and each variant's overrides set every "
                        "stage's (a strategy of several stages: pre-training, fine-tuning, a student)")
    p.add_argument("--keep-models", action="store_true",
                   help="write each finished run's tested model (weights + hyper-parameters) to OUT/models/NAME.ckpt")
    p.add_argument("--cpu-smoke", action="store_true", help="CPU, tiny steps: checks the driver end to end")
    p.add_argument("--collect", type=Path, nargs="+", help="only tabulate these finished run folders into --out")
    a = p.parse_args()
    if a.collect:
        a.out.mkdir(parents=True, exist_ok=True)
        summarise(a.out, a.collect, {"collected": [d.name for d in a.collect]}, archive=False)
        return 0
    if a.data is None or not a.data.is_dir():
        p.error(f"--data must be the 300-W root holding afw/, helen/trainset/, lfpw/trainset/ (got {a.data})")
    t0 = time.time()
    deadline = t0 + a.deadline
    out = a.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    # (name, overrides, seed) per run: the default variant keeps the seed-only folder names of the recipe runs
    variants = [(n, shlex.split(o)) for n, o in a.variant] or [("", [])]
    specs = [(f"{n}_seed{s}" if n else f"seed{s}", o, s) for n, o in variants for s in a.seeds]
    workers = a.workers or max(1, (os.cpu_count() or 2) // len(specs) - 1)
    common = [f"+experiment={a.experiment}", f"data.root={a.data.resolve()}", "logger=csv",
              "trainer.enable_progress_bar=false", f"paths.cache_dir={out / 'cache'}", f"data.num_workers={workers}",
              # 300-W's labels sit about one pixel right of mirror-symmetric ones in the ORIGINAL photos
              # (data.real.mirror_shift, README "Data"); pack_300w.py resamples each photo by its own factor, so no
              # single shift fits the packed copy, and 1.0 there would mirror most faces several original pixels off.
              # Packed runs mirror exactly, as every run recorded before the shift was measured.
              "data.real.mirror_shift=0"]
    if a.cpu_smoke:
        common += ["trainer.accelerator=cpu", "trainer.precision=bf16-mixed", "data.batch_size=8", "data.val_size=8"]

    def steps_args(n: int, val_every: int) -> list[str]:
        return [f"schedule.real_steps={n}", f"schedule.max_steps={n}", f"schedule.min_steps={min(n, 100)}",
                f"schedule.val_every={val_every}"]

    plan: dict = {"experiment": a.experiment, "runs": {name: extra for name, extra, _ in specs},
                  "workers_per_run": workers}
    if a.steps_from_overrides:
        steps = 0
    elif a.max_steps_fixed:
        steps = a.max_steps_fixed
    else:
        # 1. probe: every run at once, a few hundred steps, one validation, the flipped test
        probes = [out / "probe" / name for name, _, _ in specs]
        procs = [train([*common, *extra, f"seed={s}", *steps_args(a.probe, a.probe)], d,
                       out / "logs" / f"probe_{name}.log") for (name, extra, s), d in zip(specs, probes, strict=True)]
        codes = wait_all(procs, deadline)
        probe_wall = time.time() - t0
        found = [metrics(d) for d in probes]
        if any(c != 0 for c in codes) or not all(found):
            print(f"probe failed (exit codes {codes}); see {out / 'logs'}", flush=True)
            summarise(out, [], {**plan, "probe_exit_codes": codes, "probe_wall_s": round(probe_wall, 1)})
            return 1
        stage_s = max(m["stages"][0]["seconds"] for m in found)
        per_step = stage_s / a.probe
        fixed = probe_wall - stage_s  # start, data indexing, crop cache (built once: an overestimate later), test
        left = deadline - time.time() - fixed - 15.0
        steps = int(left / (1.15 * per_step)) // 500 * 500
        steps = max(min(steps, a.max_steps), 500 if not a.cpu_smoke else 4)
        plan.update({"probe_steps": a.probe, "probe_wall_s": round(probe_wall, 1),
                     "seconds_per_step": round(per_step, 4), "fixed_s": round(fixed, 1)})
    val_every = max(steps // 6, 1)
    plan.update({"steps": steps or "from the overrides", "val_every": val_every if steps else "from the overrides"})
    print("plan:", json.dumps(plan), flush=True)

    # 2. the runs: every variant and seed, the step count the budget allows
    runs = [out / "runs" / name for name, _, _ in specs]
    procs = [train([*common, *extra, f"seed={s}", *(steps_args(steps, val_every) if steps else [])], d,
                   out / "logs" / f"{name}.log") for (name, extra, s), d in zip(specs, runs, strict=True)]
    plan["exit_codes"] = wait_all(procs, deadline)
    plan["total_wall_s"] = round(time.time() - t0, 1)
    if a.keep_models:
        plan["models"] = keep_models(runs, out / "models")
    summarise(out, runs, plan)
    return 0 if all(c == 0 for c in plan["exit_codes"]) else 1


def keep_models(runs: list[Path], dest: Path) -> dict[str, str]:
    """Each finished run's tested model (its last stage's best checkpoint) as weights + hyper-parameters at
    ``dest/NAME.ckpt`` (a training checkpoint also holds the optimiser's and EMA's state: several times larger);
    returns what became of each run."""
    from landmark_lab.errors import DataError
    from landmark_lab.evaluation.pareto import run_model
    from landmark_lab.models.checkpoint import save_model

    dest.mkdir(parents=True, exist_ok=True)
    kept = {}
    for d in runs:
        try:
            model, _ = run_model(d)
        except DataError as e:
            kept[d.name] = f"not kept: {e}"
            continue
        path = save_model(model, dest / f"{d.name}.ckpt")
        kept[d.name] = f"{path.name} ({path.stat().st_size / 2**20:.1f} MiB)"
    return kept


FIELDS = ["run", "seed", "backbone", "head", "crop", "batch", "lr", "steps", "precision", "nme_io", "nme_ip",
          "nme_io_jaw", "nme_io_inner", "fr_io@0.1", "auc_io@0.1", "train_s", "total_s"]


def summarise(out: Path, runs: list[Path], plan: dict, archive: bool = True) -> None:
    """summary.md (the figures), results.csv and, with ``archive``, results.tar.gz (run records without
    checkpoints, crop cache or plots: what a device call can bring back) under ``out``."""
    lines = [f"# {plan.get('experiment', 'recipe_300w_gpu')} runs", "", "```", json.dumps(plan, indent=1), "```", "",
             "| run | crop | batch | lr | steps | test NME io (flip) | NME ip | jaw | inner | FR io@0.1 | AUC io@0.1 | train s "
             "| total s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for d in runs:
        m = metrics(d)
        if m is None:
            lines.append(f"| {d.name} | | | | - | not finished | | | | | | | |")
            continue
        t, c = m["test"]["metrics"], m["config"]
        stages = m["stages"]  # every stage's steps and seconds together (one for the recipe; several for a chain)
        row = {"run": d.name, "seed": m["seed"], "backbone": c["model"]["backbone"]["name"],
               "head": c["model"]["head"]["name"], "crop": c["data"]["transform"]["crop"]["size"],
               "batch": c["data"]["batch_size"], "lr": c["schedule"]["lr"], "steps": sum(x["steps"] for x in stages),
               "precision": c["trainer"].get("precision"), **{k: round(t[k], 5) for k in FIELDS[9:15]},
               "train_s": round(sum(x["seconds"] for x in stages), 1), "total_s": m["timing"]["total_seconds"]}
        rows.append(row)
        lines.append(f"| {d.name} | {row['crop']} | {row['batch']} | {row['lr']:g} | {row['steps']} | "
                     f"{100 * t['nme_io']:.2f} % | {100 * t['nme_ip']:.2f} % | "
                     f"{100 * t['nme_io_jaw']:.2f} % | {100 * t['nme_io_inner']:.2f} % | {100 * t['fr_io@0.1']:.1f} % | "
                     f"{t['auc_io@0.1']:.3f} | {row['train_s']} | {row['total_s']} |")
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    write_csv_atomic(out / "results.csv", rows, FIELDS)
    print("\n".join(lines), flush=True)
    if not archive:
        return
    with atomic_path(out / "results.tar.gz") as tmp, tarfile.open(tmp, "w:gz") as tar:
        for sub in ("probe", "runs", "logs"):
            for f in sorted((out / sub).rglob("*")) if (out / sub).is_dir() else []:
                if f.is_file() and f.suffix not in (".ckpt", ".pt", ".npy", ".onnx", ".png"):  # 16 MiB per file back
                    tar.add(f, arcname=str(f.relative_to(out)))


if __name__ == "__main__":
    sys.exit(main())
