"""The benchmark's training-step breakdown (figures are printed by ``python -m landmark_lab.bench``, never asserted
as speeds: these tests check what is timed, not how fast)."""

from __future__ import annotations

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
