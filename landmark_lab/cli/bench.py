"""``python -m landmark_lab.bench [--skip-sweep] [--deploy-only] [--index-only] [--batches 30] [training overrides]``.

Throughput, latency and pre-training-cache figures on this machine, printed and saved as ``bench.txt`` in the run
folder (the measurements: :mod:`landmark_lab.training.speed`). Asserts nothing.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from landmark_lab.cli.app import run_app
from landmark_lab.cli.train import train
from landmark_lab.training.speed import (
    compose_train,
    data_throughput,
    deployment_latencies,
    flops_line,
    index_scale,
    latency_ms,
    loader_per_core,
    machine_line,
    step_flops,
    step_lines,
    step_parts,
    video_fps,
)


def sweep_cost(k: int, pre_steps: int, ft_steps: int) -> tuple[float, float]:
    """Seconds of a k-budget pretrain+finetune sweep with the cache (1 pre-training) and without (k)."""
    times = []
    for enabled in (True, False):
        root = Path(tempfile.mkdtemp(prefix="lmbench_"))
        base = ["+experiment=synth_pretrain_ft50", f"strategy.stages.0.steps={pre_steps}",
                f"strategy.stages.1.steps={ft_steps}", "schedule.val_every=1000", "trainer.enable_progress_bar=false",
                "++trainer.enable_model_summary=false",
                "logger=none", f"pretrain_cache.enabled={str(enabled).lower()}", f"pretrain_cache.dir={root / 'cache'}"]
        t0 = time.perf_counter()
        for i, budget in enumerate([50, 100, 250, 500, 1000][:k]):
            train(compose_train([*base, f"data.real_budget={budget}"], run_dir=root / f"run{i}"))
        times.append(time.perf_counter() - t0)
        shutil.rmtree(root, ignore_errors=True)
    return times[0], times[1]


def run_bench(cfg: DictConfig) -> list[str]:
    """``bench``: print every figure with the machine it was measured on (also saved as ``bench.txt`` in the
    run folder); returns the lines. Asserts nothing."""
    from landmark_lab.utils.run import run_dir_of

    b = cfg.bench
    # the run folder now: the speed figures compose and train configs of their own, and each one replaces the
    # Hydra state that names this run's folder
    out = run_dir_of(cfg)
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    say(machine_line(cfg))
    pareto = b.get("pareto") or {}
    if pareto.get("runs"):  # accuracy against latency of trained models alone (experiments/deploy/)
        _pareto(pareto, out, say)
    elif b.get("index_only"):  # indexing at scale alone (cold and warm, 10k and 100k entries by default)
        with tempfile.TemporaryDirectory(prefix="landmark_lab_index_", dir=b.get("index_dir")) as work:
            for line in index_scale(str(b.index_source), tuple(int(x) for x in b.index_sizes),
                                    int(b.index_workers or cfg.data.num_workers or 1), work):
                say(line)
    else:
        _model_figures(cfg, say)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.txt").write_text("\n".join(lines) + "\n")
    return lines


def _pareto(p: DictConfig, run_dir: Path, say: Callable[[str], None]) -> None:
    """Time every trained model of ``bench.pareto.runs`` and dlib's predictor; write results.csv and pareto.png
    (in ``bench.pareto.out``, else the bench's run folder ``run_dir``)."""
    from landmark_lab.evaluation.pareto import dlib_nme_from, measure_family, run_folders, track_clip, write_results
    from landmark_lab.utils.run import write_json

    runs = run_folders(p.runs)
    dlib_nme = dlib_nme_from(p.get("dlib_metrics"))
    points, dlib, blocks = measure_family(runs, bool(p.get("int8", True)), int(p.get("reps", 200)),
                                          real_root=p.get("real_root") or None)
    # dlib's latency moves more between moments than the models' do (0.64-1.36 ms on one 2-core machine): its
    # spread in this run says how far a ratio near 1 can be trusted
    say(f"dlib 68-point predictor: {dlib:.3f} ms/face (median of {len(blocks)} blocks of calls, one before the first "
        f"model and one after each; block medians {min(blocks):.3f}-{max(blocks):.3f} ms)" if dlib
        else "dlib: not installed (no dlib point)")
    for q in points:
        int8 = f"; int8 {q.ms_int8:.3f} ms ({q.nme_change_int8:+.2f} NME points)" if q.ms_int8 is not None else ""
        schedule = f" ({', '.join(q.schedule())})" if q.schedule() else ""
        say(f"{q.label}{schedule}: one pass {_figures(q.nme_io, q.ms_fp32, q.ratio_to_dlib)}; flip-averaged "
            f"{_figures(q.nme_io_flip, q.ms_fp32_flip, q.ratio_flip_to_dlib)}{int8}")
    out = Path(str(p.out)).expanduser() if p.get("out") else run_dir
    for path in write_results(points, dlib, dlib_nme, out):
        say(f"wrote {path}")
    timed = [q for q in points if math.isfinite(q.ms_fp32)]
    if int(p.get("video_frames") or 0) > 0 and timed:  # video with the fastest model on the chart
        fastest = min(timed, key=lambda q: q.ms_fp32)
        v = track_clip(Path(fastest.run), int(p.video_frames))
        say(f"video {v['frame_size']} from its test photos, {v['model']} {v['input_px']}px, {v['runtime']}, 1 thread, "
            f"detector {v['detector']} on {v['detector_runs']} of {v['frames']} frames: {v['fps_tracking']:.1f} "
            f"frames/s tracking ({v['fps_total']:.1f} with making the frames)")
        write_json(out / "video.json", v)
        say(f"wrote {out / 'video.json'}")


def _figures(nme: float | None, ms: float | None, ratio: float | None) -> str:
    """``NME io 4.12 %, 0.834 ms/face (1.01x dlib)``: one way of running a model, as bench prints it."""
    text = f"NME io {nme:5.2f} %" if nme is not None else "NME io n/a"
    text += f", {ms:.3f} ms/face" if ms is not None else ""
    return text + (f" ({ratio:.2f}x dlib)" if ratio is not None else "")


def _model_figures(cfg: DictConfig, say: Callable[[str], None]) -> None:
    """Every figure but indexing at scale: pipeline and training throughput, the step's parts and FLOPs, the
    latencies, the loader per core, and the cost of a sweep with and without the pre-training cache."""
    b = cfg.bench
    say(f"model: {cfg.model.backbone.name} {cfg.model.head.name}, input {cfg.data.transform.crop.size} px, batch "
        f"{cfg.data.batch_size}, loader workers {cfg.data.num_workers}, augment: {[t['name'] for t in cfg.augment.transforms]}")
    if not b.deploy_only:
        d = data_throughput(cfg, int(b.batches))
        parts = step_parts(cfg, max(5, int(b.batches) // 3))
        t = 1000 * int(cfg.data.batch_size) / parts["step"]
        say(f"data pipeline (read + crop + augment):  {d:8.1f} images/s")
        say(f"training (forward + backward + step):   {t:8.1f} images/s")
        say(f"loader / model ratio:                   {d / t:8.2f}x  (target >= 2x)")
        for line in step_lines(cfg, parts):
            say(line)
        say(flops_line(cfg, step_flops(cfg), parts["step"]))
        say(f"inference latency, batch 1:             {latency_ms(cfg, 1):8.2f} ms/face")
        say(f"inference latency, batch 32:            {latency_ms(cfg, 32):8.2f} ms/face")
    for line in deployment_latencies(cfg, tuple(int(x) for x in b.deploy_sizes)):
        say(line)
    if b.get("video_frames"):
        for line in video_fps(cfg, int(b.video_frames)):
            say(line)
    if not b.deploy_only and b.get("loader_sources"):
        for line in loader_per_core(cfg, OmegaConf.to_container(b.loader_sources, resolve=True),
                                    tuple(int(x) for x in b.loader_sizes), int(b.loader_images)):
            say(line)
    if not b.deploy_only and not b.skip_sweep:
        steps = [int(x) for x in b.sweep_steps]
        with_cache, without = sweep_cost(int(b.sweep_budgets), *steps)
        say(f"sweep of {b.sweep_budgets} budgets (pre-train {steps[0]} + fine-tune {steps[1]} steps): "
            f"{with_cache:.0f} s with the pre-training cache, {without:.0f} s without: {without / with_cache:.2f}x faster")


def main() -> None:
    run_app("bench", run_bench, flags={"--skip-sweep": "bench.skip_sweep=true", "--deploy-only": "bench.deploy_only=true",
                                       "--index-only": "bench.index_only=true",
                                       "--batches": "bench.batches", "--workers": "data.num_workers",
                                       "--sweep-budgets": "bench.sweep_budgets"})


if __name__ == "__main__":
    main()
