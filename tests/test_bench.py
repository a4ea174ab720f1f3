"""The benchmark's training-step breakdown (figures are printed by ``python -m landmark_lab.bench``, never asserted
as speeds: these tests check what is timed, not how fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landmark_lab.training.speed import STEP_PARTS, machine_line, step_lines, step_parts


def test_the_step_breakdown_times_every_part_of_the_recipe_step_and_projects_the_schedule(make_cfg):
    cfg = make_cfg(["model.head.name=heatmap", "model.adapter.name=none", "callbacks=ema",
                    "data.transform.crop.size=32", "data.batch_size=4", "schedule.real_steps=250"])
    parts = step_parts(cfg, batches=2)
    assert set(parts) == {*STEP_PARTS, "step"}
    assert all(v >= 0 for v in parts.values())
    # the EMA callback is configured, so its update is timed; the forward and backward passes take time
    assert parts["weight average (EMA)"] > 0 and parts["backbone forward"] > 0 and parts["backbone backward"] > 0
    assert parts["step"] == pytest.approx(sum(parts[k] for k in STEP_PARTS))
    lines = step_lines(cfg, parts)
    assert lines[0].startswith(f"training step: {parts['step']:.0f} ms = backbone forward")
    assert "weight average (EMA)" in lines[0]
    assert lines[1].startswith("the configured 250 steps at that rate:")


def test_without_an_ema_callback_nothing_is_averaged_and_the_line_leaves_it_out(make_cfg):
    cfg = make_cfg(["data.transform.crop.size=32", "data.batch_size=4"])
    parts = step_parts(cfg, batches=1)
    assert parts["weight average (EMA)"] == 0.0
    assert "EMA" not in step_lines(cfg, parts)[0]


def test_the_machine_line_says_where_the_training_step_was_timed(make_cfg, monkeypatch):
    import torch

    cfg = make_cfg(["trainer.accelerator=auto", "trainer.precision=bf16-mixed"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = machine_line(cfg)
    assert line.endswith(f"on CPU with {torch.get_num_threads()} threads") and "training step on" not in line
    # on a GPU machine the step is timed on the GPU, the rest on the CPU: the line says both (it said "on CPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    line = machine_line(cfg)
    assert "training step on NVIDIA H200 (bf16-mixed), loader and latencies on the CPU with" in line
    assert not machine_line(make_cfg(["trainer.accelerator=cpu"])).count("training step on")


def test_flops_are_counted_per_step_and_set_against_a_known_cards_peak(make_cfg, monkeypatch):
    import torch

    from landmark_lab.training import speed

    cfg = make_cfg(["data.batch_size=4"], name="bench")
    four = speed.step_flops(cfg)
    cfg = make_cfg(["data.batch_size=8"], name="bench")
    assert speed.step_flops(cfg) == pytest.approx(2 * four, rel=0.02)  # the convolutions scale with the batch
    line = speed.flops_line(cfg, 8e12, 1000.0)
    assert "achieved 8.000 TFLOP/s" in line and "peak" not in line  # a CPU: no peak to compare with
    monkeypatch.setattr(speed, "steps_on_gpu", lambda cfg: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    assert "= 0.8 % of the NVIDIA H200's dense bf16 peak (989 TFLOP/s)" in speed.flops_line(cfg, 8e12, 1000.0)


def test_pareto_times_trained_runs_against_dlib_and_writes_the_chart(tmp_path, cache_dir, capsys, monkeypatch):
    """bench with bench.pareto.runs: each trained run's test NME, ONNX fp32 and int8 latency, dlib's in the same
    process; results.csv (every model, dlib last) and pareto.png written by the command. The photos are read once
    per split: int8's check faces come from the test crops already cut."""
    pytest.importorskip("onnxruntime")
    import csv

    from landmark_lab.inference import quantize

    from .conftest import run_cli, tiny_overrides

    reads: list[str] = []
    cut = quantize.real_crops
    monkeypatch.setattr(quantize, "real_crops", lambda data, split, *a, **kw: reads.append(split) or cut(data, split, *a, **kw))

    runs = tmp_path / "runs"
    argv = ["+experiment=real_only", "strategy.stages.0.steps=2", *tiny_overrides(cache_dir)]
    assert run_cli("train", [*argv, f"hydra.run.dir={runs / 'tiny'}"]) == 0
    (runs / "dlib").mkdir()  # an evaluate run beside the training runs is not one of them
    (runs / "dlib" / "metrics.json").write_text(json.dumps({"test": {"metrics": {"nme_io": 0.03}}}))
    out = tmp_path / "deploy"
    bench = [f"bench.pareto.runs=[{runs}]", f"bench.pareto.out={out}", "bench.pareto.reps=5", "bench.video_frames=12",
             *[o for o in tiny_overrides(cache_dir) if o.startswith(("paths.", "++data.", "data."))],
             f"hydra.run.dir={tmp_path / 'bench'}"]
    assert run_cli("bench", bench) == 0
    assert sorted(reads) == ["test", "train"]  # the whole test set once, int8's calibration faces once
    printed = capsys.readouterr().out
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    model = rows[0]
    assert [r["run"] for r in rows if not r["model"].startswith("dlib")] == [str(runs / "tiny")]
    assert model["strategy"] == "real_only" and model["steps"] == "2"
    recorded = json.loads((runs / "tiny" / "metrics.json").read_text())
    assert float(model["lr"]) == float(recorded["config"]["schedule"]["lr"])
    assert model["model"] == recorded["config"]["model"]["backbone"]["name"] and model["input_px"] == "64"
    assert float(model["ms_fp32"]) > 0 and model["run"] == str(runs / "tiny")
    assert model["started_from"] == ""  # trained from fresh weights (no init_from)
    assert float(model["mirror_shift"]) == 0.0  # the procedural labels mirror exactly
    assert model["seed"] == str(recorded["seed"])
    assert float(model["ms_int8"]) > 0 and model["nme_change_int8"] != "" and 0 < float(model["nme_io"]) < 100
    # every NME beside the call that gives it: one pass, and the flip average (crop + mirror in one call), both
    # measured here on the whole test set; the run's own figure (tested one pass here) agrees with the first
    assert float(model["ms_fp32_flip"]) > 0 and 0 < float(model["nme_io_flip"]) < 100
    assert recorded["config"]["eval"]["flip"] is False
    assert float(model["nme_io_recorded"]) == pytest.approx(100 * recorded["test"]["metrics"]["nme_io"], abs=1e-3)
    assert float(model["nme_io"]) == pytest.approx(float(model["nme_io_recorded"]), abs=0.05)
    assert "flip-averaged NME io" in printed
    if "dlib 68-point predictor:" in printed:  # the predict extra is installed
        assert rows[-1]["model"].startswith("dlib") and float(rows[-1]["ratio_to_dlib"]) == 1.0
        assert "median of 2 blocks of calls" in printed and "block medians" in printed  # one run: before and after
        dlib = float(rows[-1]["ms_fp32"])
        assert abs(float(model["ratio_to_dlib"]) - float(model["ms_fp32"]) / dlib) < 0.01
        assert abs(float(model["ratio_flip_to_dlib"]) - float(model["ms_fp32_flip"]) / dlib) < 0.01
    assert (out / "pareto.png").stat().st_size > 0 and f"wrote {out / 'results.csv'}" in printed
    # the fastest model tracks a clip made from its own test photos (bench.pareto.video_frames follows bench.video_frames)
    video = json.loads((out / "video.json").read_text())
    assert video["frames"] == 12 and video["run"] == str(runs / "tiny") and video["fps_tracking"] > 0
    assert "frames/s tracking" in printed
    # a folder that is not there: one clear line, exit 2
    assert run_cli("bench", [f"bench.pareto.runs=[{tmp_path / 'nowhere'}]", f"hydra.run.dir={tmp_path / 'b2'}"]) == 2
    assert "bench.pareto.runs" in capsys.readouterr().err


def test_the_frontier_keeps_only_models_nothing_beats_on_both_axes():
    from landmark_lab.evaluation.pareto import DeployPoint, frontier

    pts = [DeployPoint("a", 96, "heatmap", 4.0, 2.0), DeployPoint("b", 96, "heatmap", 5.0, 1.0),
           DeployPoint("c", 96, "heatmap", 4.5, 3.0), DeployPoint("d", 128, "heatmap", 3.5, 9.0),
           DeployPoint("e", 128, "heatmap", None, 0.5)]
    assert [(o[2].model, o[3]) for o in frontier(pts)] == [("b", False), ("a", False), ("d", False)]
    # a model run with the flip average is another way to run it: on the frontier where nothing beats it, and
    # one that a's flip beats on both axes (c's: slower and less accurate) stays off
    pts[0].nme_io_flip, pts[0].ms_fp32_flip = 3.8, 3.5
    pts[2].nme_io_flip, pts[2].ms_fp32_flip = 4.4, 5.0
    assert [(o[2].model, o[3]) for o in frontier(pts)] == [("b", False), ("a", False), ("a", True), ("d", False)]


def test_a_head_is_named_with_the_stride_it_reads_where_that_is_not_its_default():
    from landmark_lab.evaluation.pareto import head_name

    assert head_name({"name": "heatmap", "stride": 4}) == "heatmap"
    assert head_name({"name": "heatmap", "stride": 8}) == "heatmap s8"
    assert head_name({"name": "regression"}) == "regression"
    assert head_name({}) == "regression"
    assert head_name({"name": "simcc", "grid": 3}) == "simcc"
    assert head_name({"name": "simcc", "stride": 16, "grid": 8}) == "simcc s16"


def test_chart_labels_name_the_schedule_of_models_trained_otherwise_than_most():
    from dataclasses import replace

    from landmark_lab.evaluation.pareto import DeployPoint, chart_labels

    pts = [DeployPoint("a", 128, "simcc", 4.8, 0.9, steps=3600, lr=1e-3),
           DeployPoint("a", 128, "simcc", 4.4, 0.9, steps=7200, lr=1e-3),
           DeployPoint("a", 128, "simcc", 4.2, 0.9, steps=7200, lr=2e-3),
           DeployPoint("b", 96, "heatmap", 5.3, 1.6, steps=3600, lr=1e-3), DeployPoint("c", 96, "heatmap", 5.3, 1.6)]
    assert chart_labels(pts) == ["a 128px simcc", "a 128px simcc 7200 steps", "a 128px simcc 7200 steps lr 0.002",
                                 "b 96px heatmap", "c 96px heatmap"]
    # one schedule for all: no label carries it
    assert chart_labels([pts[0], *pts[3:]]) == ["a 128px simcc", "b 96px heatmap", "c 96px heatmap"]
    # a model trained further from a checkpoint (init_from) always says its own steps, as more steps
    further = DeployPoint("a", 128, "simcc", 4.1, 0.9, steps=3600, lr=1e-3, started_from="run/best.ckpt")
    assert chart_labels([pts[0], further, pts[3]]) == ["a 128px simcc", "a 128px simcc +3600 steps", "b 96px heatmap"]
    shifted = DeployPoint("a", 128, "simcc", 4.0, 0.9, steps=3600, lr=1e-3, mirror_shift=1.0)
    assert chart_labels([pts[0], shifted]) == ["a 128px simcc", "a 128px simcc shift 1"]
    # two seeds of one line: the label says which (only where it would be shared)
    again = DeployPoint("a", 128, "simcc", 4.1, 0.9, steps=3600, lr=1e-3, mirror_shift=1.0, seed=1)
    assert chart_labels([pts[0], replace(shifted, seed=0), again]) == [
        "a 128px simcc", "a 128px simcc shift 1 seed 0", "a 128px simcc shift 1 seed 1"]


def test_chart_labels_of_models_close_together_do_not_overlap():
    """Three models within a few hundredths of a ms and of a point: each label is moved until none overlaps."""
    from matplotlib.text import Text

    from landmark_lab.evaluation.pareto import DeployPoint, _annotate
    from landmark_lab.utils.drawing import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    pts = [DeployPoint(f"model_{k}", 128, "heatmap", 4.55 + 0.02 * k, 2.6 + 0.05 * k) for k in range(3)]
    pts.append(DeployPoint("far_away", 96, "regression", 6.0, 0.6))
    ax.set_xscale("log")
    for p in pts:
        ax.scatter(p.ms_fp32, p.nme_io)
    _annotate(ax, pts)
    fig.canvas.draw()
    # the text alone (an annotation's own extent includes its leader line, which may cross a label)
    boxes = [Text.get_window_extent(t, fig.canvas.get_renderer()) for t in ax.texts]
    plt.close(fig)
    assert len(boxes) == 4
    overlapping = [(i, j) for i in range(4) for j in range(i + 1, 4) if boxes[i].overlaps(boxes[j])]
    assert not overlapping


def test_pareto_times_dlib_around_every_model_and_takes_the_median_of_all_calls(monkeypatch):
    """One short block of dlib calls can land on a slow moment of a shared machine: dlib is timed before the first
    model and after each one, and its latency (every ratio's denominator) is the median over all those calls."""
    from landmark_lab.evaluation import pareto
    from landmark_lab.inference import dlib_peer

    blocks = iter([[5.0, 5.0, 5.0], [1.0, 1.0, 1.0], [1.0, 1.2, 0.8]])  # a slow first block, outvoted
    asked: list[int] = []
    monkeypatch.setattr(dlib_peer, "predictor_timer", lambda: lambda runs: asked.append(runs) or next(blocks))
    monkeypatch.setattr(pareto, "measure_run", lambda run, int8, reps, **kw: pareto.DeployPoint(
        model=str(run), input_px=64, head="regression", nme_io=5.0, ms_fp32=2.0))
    points, dlib, spread = pareto.measure_family([Path("a"), Path("b")], int8=False, reps=3, progress=False)
    assert asked == [3, 3, 3] and dlib == 1.0 and [p.ratio_to_dlib for p in points] == [2.0, 2.0]
    assert spread == [5.0, 1.0, 1.0]  # each block's median, printed so a reader sees how far dlib moved


def test_bench_writes_into_its_own_run_folder_after_its_figures_compose_runs_of_their_own(tmp_path, monkeypatch):
    """The speed figures compose and train configs of their own; each replaces the Hydra state that names the bench's
    run folder (a bare ``python -m landmark_lab.bench`` once ended in a TypeError there). bench.txt still lands in
    the bench's folder, and a composed config names its own folder."""
    from landmark_lab.cli import bench
    from landmark_lab.training.speed import compose_train
    from landmark_lab.utils.run import run_dir_of

    from .conftest import run_cli

    inner = tmp_path / "inner"

    def figures(_cfg, say):
        assert run_dir_of(compose_train([], run_dir=inner)) == inner
        say("a figure")

    monkeypatch.setattr(bench, "_model_figures", figures)
    assert run_cli("bench", [f"hydra.run.dir={tmp_path / 'bench'}"]) == 0
    assert (tmp_path / "bench" / "bench.txt").read_text().splitlines()[-1] == "a figure"
    assert not (inner / "bench.txt").exists()
