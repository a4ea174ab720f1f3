"""Accuracy against one-thread latency for a family of trained models, with dlib's predictor as a point.

Each trained run folder gives its model (the last stage's best checkpoint); the model is exported to ONNX, tested
here on the run's whole real test set (its recorded data config) and timed at batch 1 on one thread (fp32, and int8
where asked: ONNX Runtime static quantisation calibrated on the run's own real training faces). Every NME is paired
with the call that gives it: one pass (the crop) at the one-pass latency, and the test-time flip average (the crop
and its mirror, one batch-2 call) at that call's latency; a run's own ``metrics.json`` figure used its ``eval.flip``
setting and is kept only for reference. dlib's 68-point predictor is timed in the same process, so every ratio comes
from one measurement session. ``bench`` writes ``results.csv`` and ``pareto.png``.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from landmark_lab.errors import ConfigError, DataError
from landmark_lab.utils.drawing import pyplot
from landmark_lab.utils.io import inside, write_csv_atomic


@dataclass
class DeployPoint:
    """One model on the chart (a row of ``results.csv``)."""

    model: str
    input_px: int
    head: str
    nme_io: float | None  # % on the run's real test set, one pass: what one timed call (ms_fp32) gives
    ms_fp32: float
    ratio_to_dlib: float | None = None  # ms_fp32 / dlib's ms (below 1: faster than dlib)
    nme_io_flip: float | None = None  # % with the test-time flip average: the crop and its mirror in one call
    ms_fp32_flip: float | None = None  # that batch-2 call
    ratio_flip_to_dlib: float | None = None
    ms_int8: float | None = None
    nme_change_int8: float | None = None  # int8 minus fp32, points of %, one pass on the run's held-out test faces
    nme_io_recorded: float | None = None  # the run's own metrics.json test NME (with its eval.flip setting)
    strategy: str = ""  # how it was trained (metrics.json's strategy: real_only, distill, ...)
    steps: int | None = None  # training steps, every stage's together (metrics.json's stages)
    lr: float | None = None  # the schedule's learning rate (its config's schedule.lr)
    run: str = ""
    started_from: str = ""  # the checkpoint its training started from (init_from; steps counts only this run's)
    mirror_shift: float = 0.0  # the labels' mirror shift it was trained with (image px; data.real.mirror_shift)
    seed: int | None = None  # the run's seed (metrics.json): repeats of one training line differ only in it

    @property
    def label(self) -> str:
        """How the chart names it: model, input, head, and how it was trained where that is not real-only."""
        how = "" if self.strategy in ("", "real_only") else f" ({self.strategy})"
        shift = f" shift {self.mirror_shift:g}" if self.mirror_shift else ""  # mirrors labelled with the labels' offset
        return f"{self.model} {self.input_px}px {self.head}{how}{shift}"

    def schedule(self, steps: bool = True, lr: bool = True) -> list[str]:
        """How long and how fast it was trained, as words (``7200 steps``, ``lr 0.002``): the parts asked for and known;
        a model started from a trained one always says its own steps, as ``+3000 steps``."""
        more = "+" if self.started_from else ""  # a trained model's steps went before these
        parts = [f"{more}{self.steps} steps"] if (steps or more) and self.steps is not None else []
        return parts + ([f"lr {self.lr:g}"] if lr and self.lr is not None else [])


COLUMNS = [f.name for f in fields(DeployPoint)]


def chart_labels(points: list[DeployPoint]) -> list[str]:
    """Each point's label on the chart; a model trained with another number of steps or learning rate than most of
    the family says its own (two schedules of one network are two points, and would otherwise share a label)."""
    def usual(values: list[Any]) -> Any:
        known = [v for v in values if v is not None]
        return max(sorted(set(known)), key=known.count) if known else None  # a tie: the smallest

    steps, lr = usual([p.steps for p in points]), usual([p.lr for p in points])
    labels = [" ".join([p.label, *p.schedule(steps=p.steps != steps, lr=p.lr != lr)]) for p in points]
    # seeds of one line would share a label: those say their seed
    return [f"{text} seed {p.seed}" if labels.count(text) > 1 and p.seed is not None else text
            for text, p in zip(labels, points, strict=True)]


def head_name(head: dict[str, Any]) -> str:
    """A head as results.csv names it: its registry name, with the stride of the map it reads where that is not
    its default (a heatmap head's 4, a SimCC head's last map): the stride sets that head's cost and input, so two
    strides are two models on the chart."""
    name = str(head.get("name", "regression"))
    stride = head.get("stride")
    if stride is not None and ((name == "heatmap" and int(stride) != 4) or name == "simcc"):
        name += f" s{int(stride)}"
    return name


def _trained(metrics: Path) -> bool:
    """Whether ``metrics`` is a training run's record (it has stages); an unreadable one counts, to be named later."""
    try:
        return "stages" in json.loads(metrics.read_text())
    except (OSError, json.JSONDecodeError, TypeError):
        return True


def run_folders(paths: Iterable[str | Path]) -> list[Path]:
    """Training run folders from ``paths``: each a run folder (with ``metrics.json``) or a folder of them."""
    out: list[Path] = []
    for p in paths:
        path = Path(str(p)).expanduser()
        if (path / "metrics.json").is_file():
            out.append(path)
        elif path.is_dir():
            # training runs only: an evaluate run beside them (dlib's, say) has a metrics.json too, and no stages
            found = sorted(m.parent for m in path.rglob("metrics.json") if "backup_" not in str(m) and _trained(m))
            if not found:
                raise ConfigError(f"bench.pareto.runs: {path} holds no finished run (no metrics.json below it).")
            out += found
        else:
            raise ConfigError(f"bench.pareto.runs: {path} not found (give training run folders, or a folder of them).")
    return out


def run_model(run: Path) -> tuple[Any, dict[str, Any]]:
    """The model a finished run tested (its last stage's best checkpoint) and its ``metrics.json``."""
    from landmark_lab.models.checkpoint import load_landmark_model

    path = run / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
        best = metrics["stages"][-1]["best_checkpoint"]
    except (OSError, json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"{path}: not a finished training run's metrics.json ({type(exc).__name__}: {exc}).") from None
    if not best:
        raise DataError(f"{path}: its last stage kept no checkpoint; train it again (or drop it from bench.pareto.runs).")
    ckpt = inside(run, best, str(path))
    if not ckpt.is_file():
        raise DataError(f"{path}: its model {ckpt} is missing (checkpoints deleted?); that run cannot be timed.")
    return load_landmark_model(ckpt), metrics


def measure_run(run: Path, int8: bool, runs: int = 200, calibration_faces: int = 64, check_faces: int = 200,
                real_root: str | Path | None = None, test_sets: dict[str, Any] | None = None) -> DeployPoint:
    """Export ``run``'s model, test it on its whole real test set one pass and flip-averaged, and time both calls
    (fp32 and, with ``int8``, quantised) at batch 1 on one thread. ``real_root``: test on this 300-W-style root instead
    of the recorded one (a model trained elsewhere on a packed copy). ``test_sets`` caches the test crops (and int8's
    calibration crops) between runs that share a data set and crop."""
    from omegaconf import OmegaConf

    from landmark_lab.inference.export import export_model
    from landmark_lab.inference.quantize import (
        latency_ms,
        onnx_session,
        predict_crops,
        quantize_checked,
        real_crops,
        spread,
    )
    from landmark_lab.metrics import nme_per_face
    from landmark_lab.transforms.flip import flip_average, mirror_images, model_mirror_shift

    model, metrics = run_model(run)
    size = int(model.input_size)
    recorded = (metrics.get("test") or {}).get("metrics", {}).get("nme_io")
    data = (metrics.get("config") or {}).get("data")
    if not isinstance(data, dict) or not isinstance(data.get("real"), dict):
        raise DataError(f"{run / 'metrics.json'}: no recorded data config, so no test set to measure its NME on.")
    if real_root:
        data = {**data, "real": {**data["real"], "root": str(real_root)}}
    hp = model.hparams
    point = DeployPoint(model=str(hp["backbone"]["name"]), input_px=size, head=head_name(dict(hp["head"])),
                        nme_io=None, ms_fp32=math.nan, strategy=str(metrics.get("strategy", "")), steps=_steps(metrics),
                        lr=_lr(metrics), run=str(run),
                        started_from=str((metrics.get("config") or {}).get("init_from") or ""),
                        mirror_shift=model_mirror_shift(model), seed=_seed(metrics),
                        nme_io_recorded=(round(100 * float(recorded), 3) if isinstance(recorded, (int, float))
                                         and math.isfinite(recorded) else None))
    crop = {"size": size, **dict(hp.crop or {})}  # the input size where an older checkpoint records no crop
    # the test crops are never mirrored: models trained with another mirror shift share them
    key = json.dumps([{k: v for k, v in data["real"].items() if k != "mirror_shift"}, crop], sort_keys=True, default=str)
    cache = test_sets if test_sets is not None else {}
    if key not in cache:
        try:
            cache[key] = real_crops(data, "test", crop)
        except (OSError, DataError, ConfigError) as exc:
            raise DataError(f"{run / 'metrics.json'}: its test set {data['real'].get('root')} cannot be read here "
                            f"({exc}); give bench.pareto.real_root=<a 300-W root> to test it on that one.") from None
    test, truth, scales = cache[key]
    with tempfile.TemporaryDirectory() as tmp:
        fp32, _ = export_model(model, Path(tmp) / "fp32.onnx")
        session = onnx_session(fp32)
        direct, mirrored = predict_crops(session, test), predict_crops(session, mirror_images(test))
        labels = torch.from_numpy(truth)
        point.nme_io = round(100 * float(nme_per_face(torch.from_numpy(direct), labels).mean()), 3)
        both = flip_average(direct, mirrored, size, point.mirror_shift * scales)
        point.nme_io_flip = round(100 * float(nme_per_face(torch.from_numpy(both), labels).mean()), 3)
        one = test[:1]
        point.ms_fp32_flip = round(latency_ms(session, np.concatenate([one, mirror_images(one)]), runs=runs), 3)
        if not int8:
            point.ms_fp32 = round(latency_ms(session, one, runs=runs), 3)
        else:
            cfg = OmegaConf.create({"data": data, "calibration_faces": calibration_faces, "check_faces": check_faces,
                                    "latency_runs": runs,
                                    "max_nme_change": 1e9})  # measured here, never refused: the chart shows the cost
            # quantize_checked times fp32 and int8 on the same held-out crop: the pair's latencies come from it. Its
            # check faces are the ones it would cut from the test set, taken from the crops cut above; the
            # calibration crops are cut once per training set and crop
            if key + " train" not in cache:
                cache[key + " train"] = real_crops(data, "train", crop, calibration_faces)[0]
            pick = spread(len(test), check_faces)
            q = quantize_checked(model, fp32, Path(tmp) / "int8.onnx", cfg, calibration=cache[key + " train"],
                                 check=(test[pick], truth[pick]))
            point.ms_fp32, point.ms_int8, point.nme_change_int8 = q["ms_fp32"], q["ms_int8"], q["nme_change"]
    return point


def _steps(metrics: dict[str, Any]) -> int | None:
    """The training steps a run's ``metrics.json`` records, every stage's together (None where it records none)."""
    steps = [s.get("steps") for s in metrics.get("stages") or [] if isinstance(s, dict)]
    return sum(int(s) for s in steps if isinstance(s, (int, float))) or None


def _seed(metrics: dict[str, Any]) -> int | None:
    """The seed a run's ``metrics.json`` records (None where it records none)."""
    seed = metrics.get("seed")
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None


def _lr(metrics: dict[str, Any]) -> float | None:
    """The learning rate a run's recorded config trained with (``schedule.lr``; None where it records none)."""
    lr = ((metrics.get("config") or {}).get("schedule") or {}).get("lr")
    return float(lr) if isinstance(lr, (int, float)) else None


def options(points: list[DeployPoint]) -> list[tuple[float, float, DeployPoint, bool]]:
    """Every way to run every model that has both figures, as (ms, NME %, point, flip): one pass, and the flip
    average where measured."""
    out = []
    for p in points:
        if p.nme_io is not None and math.isfinite(p.ms_fp32):
            out.append((p.ms_fp32, p.nme_io, p, False))
        if p.nme_io_flip is not None and p.ms_fp32_flip is not None and math.isfinite(p.ms_fp32_flip):
            out.append((p.ms_fp32_flip, p.nme_io_flip, p, True))
    return out


def frontier(points: list[DeployPoint]) -> list[tuple[float, float, DeployPoint, bool]]:
    """The ways to run a model (:func:`options`, fp32) that no other beats on both latency and NME, fastest first."""
    out: list[tuple[float, float, DeployPoint, bool]] = []
    for o in sorted(options(points), key=lambda o: (o[0], o[1])):
        if not out or o[1] < out[-1][1]:
            out.append(o)
    return out


def measure_family(runs: list[Path], int8: bool, reps: int = 200, progress: bool = True,
                   real_root: str | Path | None = None) -> tuple[list[DeployPoint], float | None, list[float]]:
    """Every run's point, dlib's latency (None where dlib is not installed) and the median of each block of dlib's
    calls (its spread in this run: the models' ratios hang on it), on one thread.

    dlib is timed before the first model and again after each one, and its latency is the median of all those
    calls: one block of 200 calls lasts a fifth of a second, and on a shared 2-core machine three bench runs in a
    row gave single-block medians of 1.98, 1.01 and 0.63 ms while the models' moved by a few per cent."""
    from landmark_lab.inference.dlib_peer import predictor_timer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        try:
            time_dlib = predictor_timer()
        except ConfigError:  # dlib is optional (the predict extra): the chart then has no dlib point
            time_dlib = None
        blocks = [time_dlib(reps)] if time_dlib else []
        points, test_sets = [], {}
        for r in tqdm(runs, desc="timing models", unit="model", disable=not progress):
            points.append(measure_run(r, int8, reps, real_root=real_root, test_sets=test_sets))
            if time_dlib:
                blocks.append(time_dlib(reps))
        samples = [ms for block in blocks for ms in block]
        dlib: float | None = round(float(np.median(samples)), 3) if samples else None
    finally:
        torch.set_num_threads(threads)
    for p in points:
        p.ratio_to_dlib = round(p.ms_fp32 / dlib, 2) if dlib else None
        p.ratio_flip_to_dlib = round(p.ms_fp32_flip / dlib, 2) if dlib and p.ms_fp32_flip is not None else None
    return points, dlib, [round(float(np.median(b)), 3) for b in blocks]


def test_faces(data: dict[str, Any], n: int = 3, margin: float = 1.0) -> list[np.ndarray]:
    """``n`` photos of a run's real test set (its recorded ``data`` config), each cropped square around its labelled
    face with ``margin`` of the face's size on every side: what a webcam frame would hold."""
    from landmark_lab.datamodules.sources import open_sources

    sources = open_sources(data["real"], "real", "test", progress=False)
    faces: list[np.ndarray] = []
    for src in sources:
        for i in range(len(src)):
            if len(faces) == n:
                return faces
            sample = src.load(i)
            pts = np.asarray(sample.landmarks, np.float32)
            (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
            half = (1 + 2 * margin) * max(x1 - x0, y1 - y0) / 2
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            img = sample.image
            h, w = img.shape[:2]
            box = [int(max(0, cx - half)), int(max(0, cy - half)), int(min(w, cx + half)), int(min(h, cy + half))]
            side = min(box[2] - box[0], box[3] - box[1])
            if side >= 64:
                faces.append(np.ascontiguousarray(img[box[1]:box[1] + side, box[0]:box[0] + side]))
    if not faces:
        raise DataError("the run's test set has no face photo to make a video clip from.")
    return faces


def track_clip(run: Path, frames: int = 300) -> dict[str, Any]:
    """Tracking speed of ``run``'s model on a 640x480 clip of ``frames`` frames made from its own test photos (no
    download), as :func:`~landmark_lab.inference.video.time_tracking` times it; the summary plus what was timed."""
    from landmark_lab.inference.video import time_tracking

    model, metrics = run_model(run)
    data = (metrics.get("config") or {}).get("data")
    if not isinstance(data, dict):
        raise DataError(f"{run / 'metrics.json'}: no recorded data config to find its test photos.")
    summary = time_tracking(model, test_faces(data), frames)
    return {**summary, "model": str(model.hparams["backbone"]["name"]), "input_px": int(model.input_size),
            "run": str(run)}


def write_results(points: list[DeployPoint], dlib: float | None, dlib_nme: float | None, out: Path) -> list[Path]:
    """``results.csv`` (every model tried, dlib's row last) and ``pareto.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [asdict(p) for p in sorted(points, key=lambda p: p.ms_fp32)]
    if dlib is not None:
        rows.append(asdict(DeployPoint("dlib ERT (shape_predictor_68)", 0, "ERT", dlib_nme, dlib, ratio_to_dlib=1.0)))
    write_csv_atomic(out / "results.csv", rows, COLUMNS)
    pareto_figure(points, dlib, dlib_nme, out / "pareto.png")
    return [out / "results.csv", out / "pareto.png"]


def pareto_figure(points: list[DeployPoint], dlib: float | None, dlib_nme: float | None, path: Path) -> None:
    """NME io against ms/face (log axis): every model one pass (a dot; int8 as a hollow marker beside it) and with the
    flip average (a diamond), the frontier, and dlib as a star (or a vertical line where its NME on this test set was
    not given)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 7), dpi=120)  # twenty-odd labelled points need the room
    shown = [p for p in points if p.nme_io is not None]
    ax.set_xscale("log")
    flipped = False
    for p in shown:
        dot = ax.scatter(p.ms_fp32, p.nme_io, s=36, zorder=3)
        if p.nme_io_flip is not None and p.ms_fp32_flip is not None:  # the same model run with the flip average
            ax.scatter(p.ms_fp32_flip, p.nme_io_flip, s=30, marker="D", color=dot.get_facecolor(), zorder=3,
                       label=None if flipped else "with the flip average (crop + mirror, one call)")
            ax.plot([p.ms_fp32, p.ms_fp32_flip], [p.nme_io, p.nme_io_flip], ls=":", lw=0.8, color="grey")
            flipped = True
        if p.ms_int8 is not None:
            y = p.nme_io + (p.nme_change_int8 or 0.0)
            ax.scatter(p.ms_int8, y, s=36, facecolors="none", edgecolors="grey", zorder=3)
            ax.annotate("", (p.ms_int8, y), (p.ms_fp32, p.nme_io), arrowprops={"arrowstyle": "->", "color": "grey"})
    best = frontier(shown)
    if len(best) > 1:
        ax.step([o[0] for o in best], [o[1] for o in best], where="post", color="black", lw=0.8,
                label="frontier (fp32)")
    if dlib is not None:
        if dlib_nme is not None:
            ax.scatter(dlib, dlib_nme, marker="*", s=160, color="crimson", zorder=4, label=f"dlib ERT ({dlib:.2f} ms)")
        else:
            ax.axvline(dlib, color="crimson", ls="--", lw=1, label=f"dlib ERT latency ({dlib:.2f} ms; NME not given)")
    from matplotlib.ticker import FormatStrFormatter

    for axis_format in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):  # 2, 3 ms, not 2x10^0
        axis_format(FormatStrFormatter("%g"))
    ax.set_xlabel("ms per face, batch 1, one CPU thread (ONNX Runtime; hollow: int8; diamond: crop + mirror)")
    ax.set_ylabel("NME, inter-ocular (%)")
    ax.set_title("accuracy against latency")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    _annotate(ax, shown, chart_labels(shown))  # after the layout: it places labels in display pixels
    fig.savefig(path)
    plt.close(fig)


def _annotate(ax: Any, points: list[DeployPoint], labels: list[str] | None = None, line_pt: float = 9.0) -> None:
    """Each point's label (``labels``, default its own) beside it (to its left where it would run past the axes' right
    edge), moved up a line at a time where it would overlap one already placed (models close in latency and NME would
    otherwise print over each other)."""
    ax.figure.canvas.draw()  # the axes' final limits, so display positions are stable
    to_px, pt_px = ax.transData.transform, ax.figure.dpi / 72.0
    placed: list[tuple[float, float, float]] = []  # x0, x1, y of each label, display pixels
    named = zip(points, labels if labels is not None else [p.label for p in points], strict=True)
    for p, label in sorted(named, key=lambda pl: (pl[0].nme_io or 0.0, pl[0].ms_fp32)):
        x, y = to_px((p.ms_fp32, p.nme_io))
        width = 0.55 * 7 * pt_px * len(label)  # about 0.55 em a character at 7 pt
        left = x + width > ax.bbox.x1
        lo, hi = (x - width, x) if left else (x, x + width)
        dy = 3.0
        while any(x0 < hi and lo < x1 and abs((y + dy * pt_px) - ly) < line_pt * pt_px for x0, x1, ly in placed):
            dy += line_pt
        placed.append((lo, hi, y + dy * pt_px))
        ax.annotate(label, (p.ms_fp32, p.nme_io), fontsize=7, xytext=(-4 if left else 4, dy),
                    textcoords="offset points", ha="right" if left else "left",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if dy > 3.0 else None)


def dlib_nme_from(path: str | Path | None) -> float | None:
    """dlib's NME io (%) from an ``evaluate peer=dlib`` run's ``metrics.json`` (or its folder); None without one."""
    if not path:
        return None
    m = Path(str(path)).expanduser()
    m = m / "metrics.json" if m.is_dir() else m
    try:
        value = json.loads(m.read_text())["test"]["metrics"]["nme_io"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"bench.pareto.dlib_metrics: {m} is not an evaluate run's metrics.json "
                          f"({type(exc).__name__}: {exc}).") from None
    return 100 * float(value)
