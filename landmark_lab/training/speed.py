"""Measurements on this machine: data pipeline vs. model throughput, where a training step's time goes, FLOPs,
inference and deployment latencies, video tracking, loader rate per core, indexing at scale. Each returns figures;
nothing asserts. The ``bench`` command (:mod:`landmark_lab.cli.bench`) prints them."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from landmark_lab.training.builders import build_datamodule, build_model
from landmark_lab.utils.compose import compose_config


def compose_train(overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    return compose_config("train", overrides, run_dir=run_dir, root_dir=os.getcwd())


def data_throughput(cfg: DictConfig, batches: int) -> float:
    """Images/s through reader + crop + flip + augmentation + collation, with the configured workers."""
    dm = build_datamodule(cfg, progress=True)
    dm.prepare_data()
    dm.setup("fit")
    dm.train_steps = batches + 5
    it = iter(dm.train_dataloader())
    for _ in range(5):  # worker start-up is not throughput
        next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(it)["image"])
    return n / (time.perf_counter() - t0)


# The parts of one training step that step_parts times, in the order they run.
STEP_PARTS = ("backbone forward", "head + loss forward", "backbone backward", "head backward", "optimiser step",
              "weight average (EMA)")


def steps_on_gpu(cfg: DictConfig) -> bool:
    """Whether :func:`step_parts` times the training step on the GPU (there is one and the trainer may use it)."""
    return torch.cuda.is_available() and str(cfg.trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda")


def machine_line(cfg: DictConfig) -> str:
    """The ``machine:`` line: the CPU and torch, and where the training step is timed (the loader, the inference
    latencies and the deployment figures are always CPU figures)."""
    cpu = f"CPU with {torch.get_num_threads()} threads"
    step = (f"; training step on {torch.cuda.get_device_name(0)} ({cfg.trainer.get('precision', '32-true')}), "
            f"loader and latencies on the {cpu}") if steps_on_gpu(cfg) else f" on {cpu}"
    return f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}{step}"


def step_parts(cfg: DictConfig, batches: int) -> dict[str, float]:
    """Milliseconds per training step of the configured model, input size and batch, by part (:data:`STEP_PARTS`,
    plus ``"step"``, their sum): the module's own ``training_step`` (its heatmap loss included), the configured
    optimiser, and the EMA callback when the config has one. On the GPU (with the trainer's mixed precision) when
    there is one, else the CPU. The backbone's share of the forward and backward passes is timed on a second pass
    of the backbone alone, so the step itself runs unchanged."""
    from landmark_lab.training.callbacks import EMA
    from landmark_lab.training.stages import stage_callbacks

    cuda = steps_on_gpu(cfg)
    device = torch.device("cuda" if cuda else "cpu")
    model = build_model(cfg).train().to(device)
    if cfg.model.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    model.start_stage("bench", float(cfg.schedule.lr), batches + 3)
    opt = model.configure_optimizers()["optimizer"]
    # the callbacks a training stage builds (whatever key the EMA is under); building them writes nothing
    ema = next((c for c in stage_callbacks(cfg, "bench", Path(tempfile.gettempdir()), with_logger=False)
                if isinstance(c, EMA)), None)
    if ema is not None:
        ema.on_fit_start(None, model)
    size, bs = int(cfg.data.transform.crop.size), int(cfg.data.batch_size)
    x = torch.randn(bs, 3, size, size, device=device)
    batch = {"image": x, "landmarks": torch.rand(bs, 68, 2, device=device) * size,
             "is_3d": torch.zeros(bs, dtype=torch.bool, device=device)}  # real faces, 2d labels
    precision = str(cfg.trainer.get("precision", "32-true"))
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16 if precision.startswith("16") else None

    def amp() -> torch.autocast:  # the trainer's mixed precision, on the GPU only
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None and cuda)

    def now() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    totals = dict.fromkeys(STEP_PARTS, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # training_step's self.log outside a Trainer: nothing to log to
        for i in range(batches + 3):  # 3 warm-up steps
            t = [now()]
            with amp():
                feats = model._features(x)
                probe = sum(f.float().mean() for f in (feats if isinstance(feats, list) else [feats]))
            t.append(now())
            probe.backward()
            t.append(now())
            opt.zero_grad(set_to_none=True)
            t.append(now())
            with amp():
                loss = model.training_step(batch, i)
            t.append(now())
            loss.backward()
            t.append(now())
            opt.step()
            opt.zero_grad(set_to_none=True)
            t.append(now())
            if ema is not None:
                ema.on_train_batch_end(None, model, None, batch, i)
            t.append(now() if ema is not None else t[-1])
            if i < 3:
                continue
            backbone_fwd, backbone_bwd = t[1] - t[0], t[2] - t[1]
            for part, sec in zip(STEP_PARTS, (backbone_fwd, t[4] - t[3] - backbone_fwd, backbone_bwd,
                                              t[5] - t[4] - backbone_bwd, t[6] - t[5], t[7] - t[6]), strict=True):
                totals[part] += sec
    parts = {k: 1000 * max(v, 0.0) / batches for k, v in totals.items()}
    parts["step"] = sum(parts.values())
    return parts


# Dense bf16 tensor-core peaks (TFLOP/s, from the vendors' data sheets) of cards this project has met, by a part of
# their torch.cuda.get_device_name(); the achieved fraction is printed only for a card listed here.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def step_flops(cfg: DictConfig) -> float:
    """Floating-point operations of one training step (the module's ``training_step`` forward and its backward) at
    the configured batch and input size, counted by ``torch.utils.flop_counter`` on the CPU (the count does not
    depend on the device). The optimiser's element-wise update is not counted (a rounding error beside the
    convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg).train()
    model.start_stage("bench", float(cfg.schedule.lr), 1)
    size, bs = int(cfg.data.transform.crop.size), int(cfg.data.batch_size)
    batch = {"image": torch.randn(bs, 3, size, size), "landmarks": torch.rand(bs, 68, 2) * size,
             "is_3d": torch.zeros(bs, dtype=torch.bool)}
    counter = FlopCounterMode(display=False)
    with warnings.catch_warnings(), counter:
        warnings.simplefilter("ignore")
        model.training_step(batch, 0).backward()
    return float(counter.get_total_flops())


def flops_line(cfg: DictConfig, flops: float, step_ms: float) -> str:
    """FLOPs per step and per image, the rate achieved at the measured step time, and on a known GPU the share of
    its dense bf16 peak."""
    rate = flops / (step_ms / 1000)
    line = (f"training step FLOPs: {flops / 1e9:.1f} GFLOP ({flops / int(cfg.data.batch_size) / 1e9:.2f} per image); "
            f"achieved {rate / 1e12:.3f} TFLOP/s")
    if steps_on_gpu(cfg):
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        line += (f" = {100 * rate / 1e12 / peak:.1f} % of the {name}'s dense bf16 peak ({peak:.0f} TFLOP/s)" if peak
                 else f" (no peak figure known for {name})")
    return line


def step_lines(cfg: DictConfig, parts: dict[str, float]) -> list[str]:
    """The step's parts as printed lines, and what the configured schedule's steps cost at that rate."""
    step = parts["step"]
    ema = STEP_PARTS[-1]  # left out where no EMA callback is configured (its part is then exactly 0)
    shares = ", ".join(f"{k} {parts[k]:.0f} ({100 * parts[k] / step:.0f} %)" for k in STEP_PARTS
                       if k != ema or parts[k] > 0)
    lines = [f"training step: {step:.0f} ms = {shares}"]
    steps = [s.get("steps") for s in cfg.strategy.stages]
    if all(isinstance(s, int) for s in steps):
        total = sum(steps)
        lines.append(f"the configured {total} steps at that rate: {total * step / 60000:.1f} min of training steps "
                     "(start-up, validation, test and a loader that cannot keep up come on top)")
    return lines


def loader_per_core(cfg: DictConfig, sources: dict[str, dict], sizes: tuple[int, ...], n: int = 200) -> list[str]:
    """Training images/s of the data pipeline on ONE core (no workers: multiply by the cores a GPU node has),
    per dataset and input size, from the raw files and from the pre-cropped cache (``data.cache=crops``)."""
    import tempfile

    from landmark_lab.datamodules.crop_cache import cached
    from landmark_lab.datamodules.sources import FaceDataset, open_sources
    from landmark_lab.datamodules.splits import expand, groups_of
    from landmark_lab.transforms.pipeline import FaceTransform

    lines = []
    augment = OmegaConf.to_container(cfg.augment, resolve=True)
    cache_dir = Path(cfg.data.cache_dir)
    for name, spec in sources.items():
        try:
            srcs = open_sources(spec, "synthetic" if spec.get("kind") != "300w" else "real", "train", progress=False)
        except Exception as exc:  # the shared data is optional
            lines.append(f"loader {name}: not measured ({str(exc).splitlines()[0][:100]})")
            continue
        for size in sizes:
            crop = {**OmegaConf.to_container(cfg.data.transform.crop, resolve=True), "size": int(size)}
            figures = []
            with tempfile.TemporaryDirectory(prefix="landmark_lab_crops_") as fresh:  # a build timed from scratch
                t0 = time.perf_counter()
                for s in srcs:
                    cached(s, crop, fresh, float(cfg.data.cache_margin), workers=1, progress=False)
                build = sum(len(s) for s in srcs) / (time.perf_counter() - t0)
            for mode in ("raw", "cache"):
                use = [cached(s, crop, cache_dir, float(cfg.data.cache_margin), progress=False) for s in srcs] \
                    if mode == "cache" else srcs
                ds = FaceDataset(use, expand(groups_of([len(s) for s in use]), False),
                                 FaceTransform(crop, train=True, flip_p=0.5, augment=augment.get("transforms"), seed=0))
                idx = [i % len(ds) for i in range(n + 10)]
                for i in idx[:10]:
                    ds[i]
                t0 = time.perf_counter()
                for i in idx[10:]:
                    ds[i]
                figures.append(n / (time.perf_counter() - t0))
            lines.append(f"loader per core, {name} at {size:>3} px (augment: basic): raw files {figures[0]:7.1f} images/s, "
                         f"crop cache {figures[1]:7.1f} images/s; building the cache {build:7.1f} images/s")
    return lines


@torch.no_grad()
def latency_ms(cfg: DictConfig, batch: int, reps: int = 20) -> float:
    """Milliseconds per face of inference (eval mode) at a batch size."""
    model = build_model(cfg).eval()
    size = int(cfg.data.transform.crop.size)
    x = torch.randn(batch, 3, size, size)
    for _ in range(3):
        model(x)
    t0 = time.perf_counter()
    for _ in range(reps):
        model(x)
    return 1000 * (time.perf_counter() - t0) / (reps * batch)


def deployment_latencies(cfg: DictConfig, sizes: tuple[int, ...] = (64, 128), reps: int = 50) -> list[str]:
    """Per-face latency at batch 1 on one CPU thread (medians, as the Pareto chart's): eager PyTorch and ONNX Runtime
    for the default model at each input size, dlib's 68-point predictor, and dlib's face detector per image."""
    import numpy as np

    from landmark_lab.inference.export import export_model
    from landmark_lab.inference.quantize import median_ms

    lines = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for size in sizes:
            sized = cfg.copy()
            with open_dict(sized):
                sized.data.transform.crop.size = int(size)
            model = build_model(sized).eval()
            net = model.inference_net()
            x = torch.rand(1, 3, size, size) * 255
            with torch.no_grad():
                eager = median_ms(lambda net=net, x=x: net(x), reps, warmup=3)
            line = f"{cfg.model.backbone.name} {cfg.model.head.name} {size:>3} px, batch 1, 1 thread: eager {eager:6.2f} ms/face"
            try:
                import onnxruntime as ort

                with tempfile.TemporaryDirectory() as d:
                    path, _ = export_model(model, Path(d) / "m.onnx")
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
                    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                    xn = x.numpy()
                    ms = median_ms(lambda sess=sess, xn=xn: sess.run(None, {"image": xn}), reps, warmup=3)
                    line += f", ONNX Runtime {ms:6.2f} ms/face"
            except ImportError:
                line += ", ONNX Runtime: not installed (pip install -e \".[predict]\")"
            lines.append(line)
        try:
            from landmark_lab.data.procedural.domains import generate_face
            from landmark_lab.inference.detectors import DlibDetector
            from landmark_lab.inference.dlib_peer import predictor_timer

            ms = float(np.median(predictor_timer()(reps, warmup=3)))
            lines.append(f"dlib 68-point predictor (ERT), 1 face given its box: {ms:6.2f} ms/face")
            image = np.ascontiguousarray(generate_face("real", 7, 256).image)  # the detector's photo: the same face
            det = DlibDetector(upsample=1)
            big = np.ascontiguousarray(np.tile(image, (2, 3, 1))[:480, :640])
            for name, img in (("256x256", image), ("640x480", big)):
                ms = median_ms(lambda img=img: det(img), 5, warmup=3)
                lines.append(f"dlib HOG face detector (upsample 1) on a {name} image: {ms:7.1f} ms/image")
        except Exception as exc:  # dlib is optional (the predict extra)
            lines.append(f"dlib: not measured ({str(exc).splitlines()[0]})")
    finally:
        torch.set_num_threads(threads)
    return lines


def video_fps(cfg: DictConfig, frames: int = 300) -> list[str]:
    """Tracking speed on a 640x480 clip made from procedural faces (no download): the configured model at its input
    size, one thread, the detector (dlib, else none) only where the face is lost. Lines to print."""
    from landmark_lab.data.procedural.domains import generate_face
    from landmark_lab.inference.video import time_tracking

    s = time_tracking(build_model(cfg).eval(), [generate_face("real", k, 256).image for k in range(3)], frames)
    return [f"video 640x480, {cfg.model.backbone.name} {cfg.model.head.name} {cfg.data.transform.crop.size} px, "
            f"{s['runtime']}, 1 thread, tracking with detector {s['detector']} on {s['detector_runs']} of {s['frames']} "
            f"frames: {s['fps_tracking']:.1f} "
            "frames/s (untrained weights: the detector reruns only where the score drops, so a trained model's rate "
            "can differ)"]


_INDEX_CHILD = """
import json, resource, sys, time
from landmark_lab.data.synthetic_readers import FaceSyntheticsReader
t0 = time.perf_counter()
r = FaceSyntheticsReader(sys.argv[1], cache_dir=sys.argv[2], workers=int(sys.argv[3]))
seconds = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child would report the bench's own footprint
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
print(json.dumps({"n": len(r), "seconds": seconds, "peak_mb": hwm,
                  "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def index_scale(source: str | Path, sizes: tuple[int, ...], workers: int, work_dir: str | Path) -> list[str]:
    """Cold and warm indexing time and peak memory of Face Synthetics-layout folders of each size, built from
    ``source`` with hard links under ``work_dir``; each measurement in a fresh process (its own peak memory)."""
    import json
    import subprocess
    import sys

    from landmark_lab.data.scale import link_farm

    out = []
    if not Path(source).is_dir():
        return [f"indexing at scale: {source} not found (the shared Face Synthetics folder); skipped"]
    for n in sizes:
        folder = link_farm(source, Path(work_dir) / f"facesynthetics_{n}", n)
        cache = Path(work_dir) / f"index_cache_{n}"
        shutil.rmtree(cache, ignore_errors=True)
        figures = []
        for _ in ("cold", "warm"):
            r = subprocess.run([sys.executable, "-c", _INDEX_CHILD, str(folder), str(cache), str(workers)],
                               capture_output=True, text=True, check=False)
            if r.returncode:
                return [*out, f"indexing {n} entries failed: {r.stderr.strip().splitlines()[-1:]}"]
            figures.append(json.loads(r.stdout.strip().splitlines()[-1]))
        cold, warm = figures
        out.append(f"index {n:>7} Face Synthetics entries ({workers} workers): cold {cold['seconds']:6.1f} s "
                   f"({n / cold['seconds']:,.0f} entries/s), warm {warm['seconds']:5.2f} s; peak memory "
                   f"{cold['peak_mb']:.0f} MB (workers {cold['workers_peak_mb']:.0f} MB each at most), warm "
                   f"{warm['peak_mb']:.0f} MB")
    return out


