"""Sweep report: aggregation over seeds, the headline interpolation, failed runs listed."""

from __future__ import annotations

import csv
import json

import pytest

from landmark_lab.reports.plots import plot_budget, y_window
from landmark_lab.reports.rows import collect
from landmark_lab.reports.stats import (
    aggregate,
    equivalent_budget,
    equivalent_budget_interval,
    face_values,
    faces_cover,
    seed_values,
)
from landmark_lab.reports.tables import headlines, paired_table

from .conftest import run_cli

REAL_ONLY = {50: 0.20, 100: 0.16, 250: 0.12, 1000: 0.08}


def _run(root, strategy, budget, seed, nme, folder=None, config=None, per_face=None):
    run = root / (folder or strategy) / f"n{budget}" / f"seed{seed}"
    (run / ".hydra").mkdir(parents=True)
    metrics = {k: nme for k in ("nme_io", "nme_ip", "nme_box", "nme_io_jaw", "nme_io_brows", "nme_io_nose",
                                "nme_io_eyes", "nme_io_mouth", "nme_io_inner")}
    metrics.update({"fr_io@0.1": 0.0, "auc_io@0.1": 1 - nme / 0.1})
    (run / "metrics.json").write_text(json.dumps({
        "strategy": strategy, "real_budget": budget, "seed": seed, "data": {"real_train": budget},
        "test": {"metrics": metrics, "ced": {"nme_io": [0, 0.1], "fraction": [0, 1]},
                 **({"per_face_nme_io": list(per_face)} if per_face is not None else {})}, "val_nme_io": nme,
        **({"config": config} if config else {})}))


@pytest.fixture
def sweep(tmp_path):
    for seed, jitter in ((0, -0.005), (1, 0.005)):
        for b, nme in REAL_ONLY.items():
            _run(tmp_path, "real_only", b, seed, nme + jitter)
        _run(tmp_path, "pretrain_finetune", 50, seed, 0.14 + jitter)
        _run(tmp_path, "pretrain_finetune", 1000, seed, 0.05 + jitter)
    (tmp_path / "real_only" / "n2000" / "seed0" / ".hydra").mkdir(parents=True)  # killed before results
    return tmp_path


def test_aggregate_and_incomplete(sweep):
    rows, incomplete = collect(sweep)
    assert len(rows) == 12 and incomplete == ["real_only/n2000/seed0 (unfinished)"]
    agg = aggregate(rows)
    mean, std, n = agg["real_only"][100]
    assert mean == pytest.approx(0.16) and n == 2 and std == pytest.approx(0.00707, abs=1e-4)


def test_a_row_is_typed_and_its_columns_come_from_where_they_are_defined(sweep):
    """Every results.csv column is a key of the Row type, the region columns are landmarks.REGIONS' (in its order),
    and a collected row holds only Row's keys."""
    from typing import get_type_hints

    from landmark_lab.landmarks import REGIONS
    from landmark_lab.reports.rows import COLUMNS, Row

    keys = list(get_type_hints(Row))
    assert set(COLUMNS) <= set(keys) and [c for c in COLUMNS if c.startswith("nme_io_") and c[7:] in REGIONS] == [
        f"nme_io_{r}" for r in REGIONS]
    assert [k for k in keys if k.startswith("nme_io_") and k[7:] in REGIONS] == [f"nme_io_{r}" for r in REGIONS]
    rows, _ = collect(sweep)
    assert rows and all(set(r) <= set(keys) for r in rows)


def test_data_adaptation_mixed_with_real_images_is_reported_as_mixing(tmp_path):
    # The study's strategies 3 and 4 are one data module (strategy=data_adapt) at two synthetic shares of the batch.
    _run(tmp_path, "data_adapt", 50, 0, 0.10, config={"data": {"synth_share": 1.0}})
    _run(tmp_path, "data_adapt", 50, 0, 0.08, folder="mixing", config={"data": {"synth_share": 0.5}})
    _run(tmp_path, "data_adapt", 50, 1, 0.11, folder="old")  # a metrics.json without its config keeps its name
    rows, _ = collect(tmp_path)
    assert sorted((r["strategy"], r["nme_io"]) for r in rows) == [("data_adapt", 0.10), ("data_adapt", 0.11),
                                                                 ("mixing", 0.08)]


def test_equivalent_budget_interpolates_on_log_scale():
    curve = {b: (v, 0.0, 3) for b, v in REAL_ONLY.items()}
    rel, b = equivalent_budget(0.14, curve)  # halfway between 100 (0.16) and 250 (0.12) -> geometric mean
    assert rel == "≈" and b == pytest.approx((100 * 250) ** 0.5)
    assert equivalent_budget(0.14, dict(sorted(curve.items(), key=lambda kv: str(kv[0])))) == (rel, b)  # any order
    assert equivalent_budget(0.05, curve) == ("<", 1000.0)
    assert equivalent_budget(0.3, curve) == (">", 50.0)


def test_headline_interval_bootstraps_over_seeds(sweep):
    rows, _ = collect(sweep)
    lo, hi = equivalent_budget_interval(seed_values(rows), 50)
    # seeds at -0.005/+0.005 around 0.14: the interval brackets the point estimate (158) and stays between the
    # neighbouring real-only budgets' spread
    assert 100 < lo < 158 < hi < 250
    # better than the whole curve in every draw: the bounds read "beyond the largest budget"
    assert equivalent_budget_interval(seed_values(rows), 1000) == (float("inf"), float("inf"))
    single = seed_values([r for r in rows if r["seed"] == 0])
    assert equivalent_budget_interval(single, 50) is None


def test_headline_says_all_only_for_a_whole_pool_run(tmp_path):
    # A curve whose largest real-only run is a budget of 50 is not "all 50"; a run on the whole pool
    # (data.real_budget=all) is.
    for seed in (0, 1):
        _run(tmp_path, "real_only", 50, seed, 0.20)
        _run(tmp_path, "pretrain_finetune", 50, seed, 0.15)
    rows, _ = collect(tmp_path)
    assert headlines(aggregate(rows), rows)[0].startswith(
        "pretrain + 50 real (NME 15.00%, 2 seeds) is better than real-only with 50 real images, its largest budget "
        "measured")
    for r in rows:
        r["real_budget"] = "all"
    assert "is better than real-only with all 50 real images" in headlines(aggregate(rows), rows)[0]


def test_report_cli_writes_table_plots_and_consistent_headline(sweep, capsys):
    assert run_cli("report", [str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    assert "pretrain + 50 real (NME 14.00%, 2 seeds) ≈ real-only with 158 real images (95% bootstrap interval over seeds: " in md
    assert "measured (95% bootstrap interval over seeds: more than 1000 real images)" in md
    # the curve's largest run is 1000 of a larger pool, not "all"
    assert ("pretrain + 1000 real (NME 5.00%, 2 seeds) is better than real-only with 1000 real images, its largest "
            "budget measured") in md
    assert "real_only/n2000/seed0" in md
    assert "| real_only | 20.00 ± 0.71 (n=2) |" in md
    with open(sweep / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 12
    for png in ("nme_vs_budget.png", "ced.png", "regions.png"):
        assert (sweep / png).stat().st_size > 1000
    assert run_cli("report", [str(sweep / "nope")]) == 2


def test_budget_plot_fits_the_curves_not_a_far_single_point(tmp_path):
    """Synthetic only at 9 % beside curves at 4-5.6 % would squeeze them flat: the axis fits the curves (with their
    error bars) and the far point is drawn at its edge."""
    agg = {"real_only": {50: (0.056, 0.001, 2), 1000: (0.045, 0.002, 2)},
           "pretrain_finetune": {50: (0.053, 0.0, 2), 250: (0.0454, 0.0, 2)},
           "synth_only_adapted": {50: (0.0895, 0.0013, 3)}}
    lo, hi = y_window(agg)
    assert 4.0 < lo < 4.3 and 5.7 < hi < 6.1  # the curves and their bars, a margin, not 8.95
    assert y_window({"synth_only_adapted": {50: (0.09, 0.0, 1)}}) is None  # no curve: matplotlib's own limits
    # a single point below the curve (pre-trained at one budget beating real-only) is never cut off
    lo, hi = y_window({"real_only": {50: (0.133, 0.011, 3)}, "pretrain_finetune": {50: (0.085, 0.0065, 3)}})
    assert lo < 8.5 - 0.65 and 14.4 < hi
    plot_budget(agg, tmp_path / "b.png", "t")
    assert (tmp_path / "b.png").stat().st_size > 1000


def test_budget_plot_stacks_the_labels_of_points_above_the_axis_at_one_budget(tmp_path, monkeypatch):
    # two strategies above the axis at 50 (data adaptation 7.48 %, synthetic only 8.95 %): their values are written
    # one below the other, not on top of each other
    from matplotlib.axes import Axes

    written = []
    original = Axes.annotate
    monkeypatch.setattr(Axes, "annotate", lambda ax, text, xy, **kw: written.append((text, kw["xytext"]))
                        or original(ax, text, xy, **kw))
    agg = {"real_only": {50: (0.056, 0.001, 2), 1000: (0.045, 0.002, 2)},
           "data_adapt": {50: (0.0748, 0.0, 1)}, "synth_only_adapted": {50: (0.0895, 0.0013, 3)}}
    plot_budget(agg, tmp_path / "b.png", "t")
    assert sorted(t for t, _ in written) == ["7.48% (1 seed)", "8.95% ± 0.13"]  # one seed: no "± 0.00"
    assert len({offset for _, offset in written}) == 2


def test_paired_table_compares_runs_on_the_same_real_images(tmp_path):
    """Seed 2 drew harder images for both arms: unpaired, its spread hides the gap; paired, every seed shows it.
    A run whose config sets data.split_seed pairs by that seed."""
    for seed, (real, pre) in enumerate([(0.0560, 0.0527), (0.0557, 0.0532), (0.0580, 0.0557)]):
        _run(tmp_path, "real_only", 50, seed, real)
        _run(tmp_path, "pretrain_finetune", 50, seed, pre)
    _run(tmp_path, "pretrain_finetune", 100, 5, 0.05, config={"data": {"split_seed": 0}})  # pairs with seed 0
    _run(tmp_path, "real_only", 100, 0, 0.052)
    rows, _ = collect(tmp_path)
    md = "\n".join(paired_table(rows))
    assert "| pretrain_finetune | -0.27 ± 0.05 (3/3) | -0.20 (1/1) |" in md
    assert paired_table([r for r in rows if r["strategy"] == "real_only"]) == []


def test_headline_covers_every_strategy_and_the_table_at_one_budget(sweep):
    for seed, nme in ((0, 0.159), (1, 0.161)):
        _run(sweep, "synth_only_adapted", 50, seed, nme)
    _run(sweep, "real_only", 2000, 1, 0.06)  # one seed at the largest budget: enters the bootstrap unresampled
    for run, timing in (("synth_only_adapted/n50/seed0", {"total_seconds": 120.0}),
                        ("synth_only_adapted/n50/seed1", {"total_seconds": 30.0}),
                        ("real_only/n2000/seed1", {"total_seconds": 9.0})):
        d = json.loads((sweep / run / "metrics.json").read_text())
        d.update(timing=timing, resumed={"train": 300} if not run.endswith("n50/seed0") else None)
        (sweep / run / "metrics.json").write_text(json.dumps(d))
    run = sweep / "pretrain_finetune" / "n50" / "seed0"
    d = json.loads((run / "metrics.json").read_text())
    d["test"]["metrics_without_adapter"] = {"nme_io": 0.3, "nme_io_jaw": 0.5, "nme_io_inner": 0.2}
    (run / "metrics.json").write_text(json.dumps(d))
    assert run_cli("report", [str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("- ")]
    # pre-training first (the study's headline), then the other strategies
    assert lines[0].startswith("- pretrain + 50 real (NME 14.00%, 2 seeds) ≈ real-only with 158 real images")
    adapted = next(ln for ln in lines if ln.startswith("- synthetic only + adapter fitted on 50 real"))
    assert "(NME 16.00%, 2 seeds) ≈ real-only with 100 real images (95% bootstrap interval over seeds:" in adapted
    assert "real-only at 2000 has one seed and enters unresampled" in adapted
    table = md[md.index("## Strategies at 50 real images"):]
    assert "| real_only | 2 | 20.00 ± 0.71 | 20.00 ± 0.71 |" in table
    assert "| pretrain_finetune | 2 | 14.00 ± 0.71 |" in table
    # without-adapter columns: only the run that recorded it
    assert "| 30.00 | 50.00 | 20.00 |" in table and "| synth_only_adapted | 2 | 16.00 ± 0.14 |" in table
    minutes = md[md.index("## Wall time per run"):]
    # seed 0 took 2 minutes; seed 1 was resumed (its time is only the last part) and is left out
    assert "| synth_only_adapted | 2.0 |  |  |  |  |" in minutes
    assert "| real_only |  |  |  |  | resumed |" in minutes  # the only run at 2000 was resumed


def test_runs_table_shows_each_run_with_and_without_adapter(sweep, capsys):
    run = sweep / "real_only" / "n50" / "seed0"
    d = json.loads((run / "metrics.json").read_text())
    d["test"]["metrics_without_adapter"] = {"nme_io": 0.3, "nme_io_jaw": 0.5, "nme_io_inner": 0.2}
    (run / "metrics.json").write_text(json.dumps(d))
    assert run_cli("report", [str(sweep), "--runs"]) == 0
    md = (sweep / "runs.md").read_text()
    assert "| real_only/n50/seed0 | real_only | 50 | 19.50 | 19.50 | 19.50 | 30.00 | 50.00 | 0.00 |" in md
    assert "real_only/n2000/seed0" in md and (sweep / "runs.png").stat().st_size > 1000


def test_peer_evaluation_is_drawn_as_a_reference_line(sweep, tmp_path):
    peer = tmp_path / "dlib_eval"
    peer.mkdir()
    metrics = {"nme_io": 0.0289, "nme_io_jaw": 0.04, "nme_io_brows": 0.03, "nme_io_nose": 0.03, "nme_io_eyes": 0.02,
               "nme_io_mouth": 0.02, "nme_io_inner": 0.024, "fr_io@0.1": 0.007}
    (peer / "metrics.json").write_text(json.dumps({"peer": "dlib", "protocol": {"box": "detector"},
                                                   "test": {"metrics": metrics, "ced": None}}))
    assert run_cli("report", [str(sweep), "--reference", str(peer)]) == 0
    md = (sweep / "report.md").read_text()
    assert "| dlib (peer, detector boxes) | 2.89 ± 0.00 (n=1) |" in md
    assert run_cli("report", [str(sweep), "--reference", str(tmp_path / "missing")]) == 2
    # the reference row is in results.csv: reading it back beside the same reference draws it once
    assert run_cli("report", [str(sweep), "--reference", str(peer), "--recorded", str(sweep / "results.csv")]) == 0
    assert (sweep / "report.md").read_text().count("| dlib (peer, detector boxes) | 2.89 ± 0.00 (n=1) |") == 1


def test_recorded_results_join_the_runs_found(sweep, tmp_path):
    """Run folders cleaned away (or left on another machine): the rows an earlier report wrote come back with
    --recorded and give the same tables; a run folder that is here replaces its recorded row."""
    import shutil

    first = tmp_path / "first"
    assert run_cli("report", [str(sweep), "--out", str(first)]) == 0
    before = (first / "report.md").read_text()
    ced_before = (first / "ced.png").read_bytes()
    shutil.rmtree(sweep / "pretrain_finetune")
    d = json.loads((sweep / "real_only" / "n50" / "seed0" / "metrics.json").read_text())
    d["test"]["metrics"]["nme_io"] = 0.30  # re-run here since: the folder's figure wins over the recorded one
    (sweep / "real_only" / "n50" / "seed0" / "metrics.json").write_text(json.dumps(d))
    assert run_cli("report", [str(sweep), "--out", str(first), "--recorded", str(first / "results.csv")]) == 0
    md = (first / "report.md").read_text()
    assert "12 finished runs. 4 of them were read from" in md and "(a previous report's rows" in md
    table = md[:md.index("## Headline")]
    assert "| pretrain_finetune | 14.00 ± 0.71 (n=2) |" in table  # from the recorded rows
    assert "| pretrain_finetune | 14.00 ± 0.71 (n=2) |" in before[:before.index("## Headline")]
    assert "| real_only | 25.25 ± 6.72 (n=2) |" in table  # 0.30 from the folder (not the old 0.195) and 0.205
    assert "pretrain + 50 real (NME 14.00%, 2 seeds) ≈ real-only with" in md
    # the first report's ced.png had all 4 runs at 50; the 2 read back carry no curve, so it is kept, not redrawn
    assert "`ced.png` is not redrawn: 2 of the 4 runs at 50 real images were read from a results.csv" in md
    assert (first / "ced.png").read_bytes() == ced_before
    with open(first / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and {r["images_seed"] for r in rows} == {"0", "1"}
    # the written file reads back the same (a second round trip changes nothing)
    assert run_cli("report", [str(sweep), "--out", str(first), "--recorded", str(first)]) == 0
    assert (first / "report.md").read_text() == md
    (first / "ced.png").unlink()  # none there: drawn from the runs that have curves, and the note says what it lacks
    assert run_cli("report", [str(sweep), "--out", str(first), "--recorded", str(first / "results.csv")]) == 0
    assert "`ced.png` leaves out 2 of the 4 runs at 50 real images" in (first / "report.md").read_text()
    assert (first / "ced.png").read_bytes() != ced_before


def test_recorded_results_alone_need_an_out_folder(sweep, tmp_path, capsys):
    """Every run on another machine: the recorded rows alone make the report, into --out (named after it); without
    --out it would land in an empty (perhaps mistyped) sweep folder, so it is refused."""
    first = tmp_path / "first"
    assert run_cli("report", [str(sweep), "--out", str(first)]) == 0
    empty, again = tmp_path / "empty", tmp_path / "again"
    empty.mkdir()
    assert run_cli("report", [str(empty), "--recorded", str(first / "results.csv")]) == 2
    assert "give --out DIR" in capsys.readouterr().err and not (empty / "report.md").exists()
    assert empty.is_dir()  # the user's folder: a refused command removes only what it wrote there
    assert run_cli("report", [str(empty), "--out", str(again), "--recorded", str(first / "results.csv")]) == 0
    md = (again / "report.md").read_text()
    assert md.startswith("# Sweep report: again\n") and "12 finished runs. 12 of them were read from" in md
    assert "pretrain + 50 real (NME 14.00%, 2 seeds) ≈ real-only with" in md


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("strategy,budget,seed\nreal_only,50,0\n", "no column nme_io, run"),
    ("strategy,budget,seed,nme_io,run\nreal_only,fifty,0,0.1,r\n", "line 2: budget='fifty' is not a number"),
    ("strategy,budget,seed,nme_io,run\nreal_only,50,0,nan,r\n", "line 2: a row needs a strategy, a budget"),
])
def test_recorded_results_that_cannot_be_read_are_refused_with_the_file_and_line(sweep, tmp_path, capsys, content,
                                                                                   message):
    path = tmp_path / "results.csv"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "out"
    assert run_cli("report", [str(sweep), "--out", str(out), "--recorded", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err
    assert not out.exists()  # nothing written


def test_headline_interval_also_resamples_test_faces_where_every_run_recorded_them(tmp_path):
    """Runs that kept each test face's error: the bootstrap resamples the faces too (the same faces for every run),
    so the interval also carries how many and which faces were tested, and is wider than over seeds alone."""
    import numpy as np

    rng = np.random.default_rng(0)
    faces = rng.gamma(2.0, 1.0, 40)
    faces /= faces.mean()  # a hard-tailed test set, mean 1 (how hard each face is, for every model)

    def per_face(nme):  # the face's difficulty times the run's NME, plus the run's own error on each face
        own = rng.normal(0.0, 0.5 * nme, len(faces))
        return nme * faces + own - own.mean()

    for seed, jitter in ((0, -0.005), (1, 0.005)):
        for b, nme in REAL_ONLY.items():
            _run(tmp_path, "real_only", b, seed, nme + jitter, per_face=per_face(nme + jitter))
        _run(tmp_path, "pretrain_finetune", 50, seed, 0.14 + jitter, per_face=per_face(0.14 + jitter))
    rows, _ = collect(tmp_path)
    values, by_face = seed_values(rows), face_values(rows)
    assert faces_cover(values, by_face, 50)
    seeds_only = equivalent_budget_interval(values, 50)
    both = equivalent_budget_interval(values, 50, faces=by_face)
    # a face's difficulty shared by every run cancels in the comparison; the runs' own per-face errors do not
    assert both[0] < 158 < both[1] and both[1] - both[0] > 1.5 * (seeds_only[1] - seeds_only[0])
    assert run_cli("report", [str(tmp_path)]) == 0
    assert "(95% bootstrap interval over seeds and test faces: " in (tmp_path / "report.md").read_text()
    # one run without them (an older metrics.json): the interval falls back to seeds alone, and says so
    d = json.loads((tmp_path / "real_only" / "n250" / "seed1" / "metrics.json").read_text())
    del d["test"]["per_face_nme_io"]
    (tmp_path / "real_only" / "n250" / "seed1" / "metrics.json").write_text(json.dumps(d))
    rows, _ = collect(tmp_path)
    assert not faces_cover(seed_values(rows), face_values(rows), 50)
    assert run_cli("report", [str(tmp_path)]) == 0
    assert "(95% bootstrap interval over seeds: " in (tmp_path / "report.md").read_text()


def test_a_sweep_without_real_only_runs_takes_its_curve_from_a_baseline(sweep, tmp_path, capsys):
    """A sweep that varied something else (the synthetic sources) and ran no real-only run: --baseline reads the
    real_only rows of another report's results.csv as its curve, so its headline and paired table exist; refused
    where the sweep has real-only runs of its own, or the file has none."""
    main = tmp_path / "main"
    assert run_cli("report", [str(sweep), "--out", str(main)]) == 0
    sources = tmp_path / "sources"
    _run(sources, "pretrain_finetune", 50, 0, 0.12)
    assert run_cli("report", [str(sources)]) == 0
    assert "(the headline needs real_only runs" in (sources / "report.md").read_text()
    assert run_cli("report", [str(sources), "--baseline", str(main)]) == 0
    md = (sources / "report.md").read_text()
    assert md.startswith("# Sweep report: sources\n\n9 finished runs. The 8 real_only runs are the baseline read from")
    assert "| real_only | 20.00 ± 0.71 (n=2) |" in md  # the baseline's curve, both seeds
    assert "pretrain + 50 real (NME 12.00%, 1 seed) ≈ real-only with" in md and "(no interval: a single seed)" in md
    assert "| pretrain_finetune | -7.50 (1/1) |" in md  # paired with the baseline's seed-0 run on the same images
    with open(sources / "results.csv") as fh:
        assert sum(r["strategy"] == "real_only" for r in csv.DictReader(fh)) == 8
    # its own results.csv read back beside the same baseline: the same report
    assert run_cli("report", [str(sources), "--baseline", str(main), "--recorded", str(sources)]) == 0
    assert (sources / "report.md").read_text() == md
    capsys.readouterr()
    assert run_cli("report", [str(sweep), "--out", str(tmp_path / "x"), "--baseline", str(main)]) == 2
    assert "baseline: the sweep has real_only runs of its own" in capsys.readouterr().err
    # real-only rows of its own that only a --recorded file holds would be averaged in too
    other = tmp_path / "other"
    _run(other, "real_only", 50, 5, 0.2)
    assert run_cli("report", [str(other)]) == 0
    assert run_cli("report", [str(sources), "--baseline", str(main), "--recorded", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"--recorded file {other / 'results.csv'} holds real_only rows the baseline does not" in err
    no_real = tmp_path / "no_real"
    _run(no_real, "synth_only_adapted", 50, 0, 0.3)
    assert run_cli("report", [str(no_real), "--out", str(tmp_path / "y")]) == 0
    assert run_cli("report", [str(sources), "--baseline", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert f"baseline: {tmp_path / 'y' / 'results.csv'} has no real_only rows" in err
    assert run_cli("report", [str(sources), "--baseline", str(tmp_path / "missing.csv")]) == 2
    assert "baseline: " in capsys.readouterr().err
    assert (sources / "report.md").read_text() == md  # the refused commands left the report as it was
