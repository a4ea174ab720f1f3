"""GPU check: a short real training of every strategy at 256 px (bf16, channels_last), the test on the GPU,
a 3-budget mini sweep from the crop cache, and loader vs model throughput; writes a markdown summary.

    bash experiments/gpu/gpu_check.sh                 # on a GPU machine (about 6-8 minutes on one H100)
    python experiments/gpu/gpu_check.py --tiny --out DIR   # CPU smoke mode (what the test runs)

CI never needs a GPU: the tiny mode runs the same commands on the CPU at 64 px with a few steps.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from landmark_lab.utils.io import write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ["real_only", "synth_only_adapted", "combined", "synth_pretrain_ft50", "data_adapt", "mixing"]

N_STEPS = len(STRATEGIES) + 2  # the trainings, the sweep, the bench


@functools.cache  # once: the summary is rewritten after every step
def _machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
        return f"CPU, torch {torch.__version__}"
    except Exception as e:  # the summary still names what it could not read
        return f"unknown ({e})"


def write_summary(out: Path, rows: list[tuple[str, str, float]], tiny: bool) -> Path:
    """Write ``out/summary.md`` (atomically) from the steps done so far and the run folders under ``out/runs``."""
    runs = out / "runs"
    done = "" if len(rows) == N_STEPS else f" — **partial: {len(rows)} of {N_STEPS} steps done**"
    md = [f"# GPU check ({'CPU smoke mode' if tiny else 'GPU'}){done}", "",
          f"`python experiments/gpu/gpu_check.py{' --tiny' if tiny else ''}`, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"on {_machine()}.", "",
          "| step | result | seconds |", "|---|---|---|"]
    md += [f"| {n} | {s} | {secs:.0f} |" for n, s, secs in rows]
    md += ["", "| run | device | real-test NME io | seconds |", "|---|---|---|---|"]
    for m in sorted(runs.rglob("metrics.json")):
        d = json.loads(m.read_text())
        dev = (d.get("config") or {}).get("trainer", {}).get("accelerator")
        md.append(f"| {m.parent.relative_to(runs)} | {dev} | {100 * d['test']['metrics']['nme_io']:.2f} % | "
                  f"{d['timing']['total_seconds']} |")
    bench_txt = runs / "bench" / "bench.txt"
    if bench_txt.is_file():
        md += ["", "```", bench_txt.read_text().strip(), "```"]
    write_text_atomic(out / "summary.md", "\n".join(md) + "\n")
    return out / "summary.md"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="CPU smoke mode: 64 px, tiny data, a few steps")
    p.add_argument("--out", type=Path, default=ROOT / "experiments" / "gpu")
    a = p.parse_args()
    out = a.out.resolve()
    runs = out / "runs"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "WANDB_MODE": "offline"}
    if a.tiny:
        common = ["trainer=default", "trainer.accelerator=cpu", "data.transform.crop.size=64", "++data.synthetic.n=48",
                  "++data.real.n_train=70", "++data.real.n_test=16", "data.val_size=8", "data.synthetic_val_size=8",
                  "data.batch_size=8", "data.num_workers=0", "schedule.val_every=2", "posthoc_adapter.steps=10",
                  f"paths.cache_dir={out / 'cache'}"]
        steps = 4
    else:
        common = ["trainer=gpu", "model.channels_last=true", "data.transform.crop.size=256", "++data.synthetic.n=2000",
                  "++data.real.n_train=600", "++data.real.n_test=300", "data.batch_size=64", "schedule.val_every=100",
                  f"paths.cache_dir={out / 'cache'}"]
        steps = 300
    common += ["logger=csv", "trainer.enable_progress_bar=false"]
    rows: list[tuple[str, str, float]] = []

    def run(name: str, args: list[str]) -> float:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        last = (r.stderr.strip().splitlines() or [""])[-1][:200]
        status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode}): {last}"
        print(f"{name}: {status} in {secs:.0f} s", flush=True)
        rows.append((name, status, secs))
        write_summary(out, rows, a.tiny)  # after every step: a run cut off by a time limit keeps what finished
        return secs

    for strategy in STRATEGIES:
        two = strategy in ("synth_pretrain_ft50", "data_adapt", "mixing")
        stage_steps = [f"strategy.stages.{i}.steps={steps}" for i in range(2 if two else 1)]
        run(f"train {strategy}", ["landmark_lab.train", f"+experiment={strategy}", *common, *stage_steps,
                                  f"hydra.run.dir={runs / strategy}"])
    run("3-budget sweep from the crop cache", ["landmark_lab.train", "-m", "+experiment=synth_pretrain_ft50",
                                               "data.real_budget=20,40,60", "data.cache=crops", *common,
                                               f"strategy.stages.0.steps={steps}", f"strategy.stages.1.steps={steps // 2}",
                                               f"hydra.sweep.dir={runs / 'sweep'}", "hydra.sweep.subdir=n${data.real_budget}"])
    bench = ["landmark_lab.bench", "bench.skip_sweep=true", "bench.batches=10", f"hydra.run.dir={runs / 'bench'}",
             *[c for c in common if not c.startswith(("logger=", "trainer.enable_progress_bar"))]]
    if a.tiny:
        bench += ["bench.loader_sizes=[64]", "bench.loader_images=20", "bench.deploy_sizes=[64]"]
    run("bench (loader vs model)", bench)

    print(f"wrote {write_summary(out, rows, a.tiny)}")
    return 0 if all(s == "ok" for _, s, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
