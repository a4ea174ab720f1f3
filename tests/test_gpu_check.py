"""The GPU check script is correct on the CPU: its tiny mode runs every step and writes the summary."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT, SHARED, W300, load_script, needs_300w, needs_shared


@pytest.mark.slow
def test_gpu_check_tiny_mode_runs_every_step(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "gpu" / "gpu_check.py"), "--tiny", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = (tmp_path / "summary.md").read_text()
    for step in ("train real_only", "train synth_only_adapted", "train combined", "train synth_pretrain_ft50",
                 "train data_adapt", "train mixing", "3-budget sweep from the crop cache", "bench (loader vs model)"):
        assert f"| {step} | ok |" in summary
    assert summary.count("| cpu |") >= 9  # 6 strategies + 3 budgets, tested where they trained
    assert "loader per core" in summary and "training (forward + backward + step)" in summary
    assert "partial" not in summary


def test_gpu_check_summary_is_written_after_each_step_and_says_when_it_is_partial(tmp_path):
    gc = load_script(ROOT / "experiments" / "gpu" / "gpu_check.py")
    text = gc.write_summary(tmp_path, [("train real_only", "ok", 3.0)], True).read_text()
    assert f"partial: 1 of {gc.N_STEPS} steps done" in text and "| train real_only | ok | 3 |" in text
    assert "torch" in text.splitlines()[2]  # the line naming the machine it ran on
    full = gc.write_summary(tmp_path, [("train real_only", "ok", 3.0)] * gc.N_STEPS, True).read_text()
    assert "partial" not in full


PACK_300W = ROOT / "experiments" / "recipe" / "gpu" / "pack_300w.py"


def _pack_module():
    return load_script(PACK_300W)


def test_pack_300w_refuses_a_missing_root_and_a_destination_in_the_project(tmp_path):
    for argv, says in ((["--root", str(tmp_path / "none"), "--dest", str(tmp_path / "out")], "--root"),
                       (["--root", str(tmp_path), "--dest", str(ROOT / "packed")], "inside the project")):
        r = subprocess.run([sys.executable, str(PACK_300W), *argv], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() and not (ROOT / "packed").exists()


@needs_300w
def test_packed_300w_gives_the_training_and_test_crops_of_the_original(tmp_path):
    import numpy as np

    from landmark_lab.data.w300 import load_split
    from landmark_lab.landmarks import landmark_box
    from landmark_lab.transforms.geometry import crop_matrix, warp

    module = _pack_module()
    assert module.pack(W300, tmp_path, ["afw"], 256, module.TRAIN_MARGIN, 85) > 0
    assert module.pack(W300, tmp_path, ["lfpw/trainset"], 256, module.TEST_MARGIN, 85) > 0
    for folder, scale in (("afw", 2.0), ("lfpw/trainset", 1.25)):  # the crop cache's window; the test crop
        original, packed = load_split(W300, [folder])[0], load_split(tmp_path, [folder])[0]
        assert len(original) == len(packed)
        for i in (0, len(original) // 2, len(original) - 1):
            a, b = original.load(i), packed.load(i)
            ca, la = warp(a.image, a.landmarks, crop_matrix(landmark_box(a.landmarks), 256, scale), 256)
            cb, lb = warp(b.image, b.landmarks, crop_matrix(landmark_box(b.landmarks), 256, scale), 256)
            assert np.abs(la - lb).max() < 0.01  # same labels in the crop, to the .pts file's 3 decimals
            assert np.abs(ca.astype(float) - cb.astype(float)).mean() < 4.0  # one JPEG q85 re-encoding + resampling


@needs_shared("300w", "dgfaces", "dgfaces_v1", "facesynthetics")
def test_pack_300w_for_the_unlabelled_protocol_keeps_photos_whole_and_packs_the_synthetic_sets(tmp_path):
    """--whole-train: each training photo whole (longer side at most SIDE), its labels scaled with it; --synthetic: the
    three synthetic sets as one folder the folder reader reads as projected-3D labels, each face's crop unchanged."""
    import numpy as np

    from landmark_lab.data.folder import LandmarkFolder
    from landmark_lab.data.synthetic_readers import FaceSyntheticsReader
    from landmark_lab.data.w300 import load_split
    from landmark_lab.landmarks import landmark_box
    from landmark_lab.transforms.geometry import crop_matrix, warp

    module = _pack_module()
    assert module.pack_whole(W300, tmp_path, ["afw"], 200, 90) > 0
    original, packed = load_split(W300, ["afw"])[0], load_split(tmp_path, ["afw"])[0]
    assert len(original) == len(packed)
    for i in (0, len(original) - 1):
        a, b = original.load(i), packed.load(i)
        f = np.array([b.image.shape[1] / a.image.shape[1], b.image.shape[0] / a.image.shape[0]])  # each axis rounded
        assert max(b.image.shape[:2]) == min(200, max(a.image.shape[:2]))
        np.testing.assert_allclose(b.landmarks, (a.landmarks + 0.5) * f - 0.5, atol=0.01)
    assert module.pack_synthetic(SHARED, tmp_path / "synthetic", 128, 90) > 0
    folder = LandmarkFolder(tmp_path / "synthetic", "synthetic", "3d")
    assert len(folder) == 300 and folder.load(0).convention == "3d"
    reader = FaceSyntheticsReader(SHARED / "facesynthetics")
    k = folder.ids.index(next(i for i in folder.ids if i.endswith("facesynthetics_00000")))
    a, b = reader.load(0), folder.load(k)
    ca, la = warp(a.image, a.landmarks, crop_matrix(landmark_box(a.landmarks), 128, 1.25), 128)
    cb, lb = warp(b.image, b.landmarks, crop_matrix(landmark_box(b.landmarks), 128, 1.25), 128)
    assert np.abs(la - lb).max() < 0.01 and np.abs(ca.astype(float) - cb.astype(float)).mean() < 4.0


@needs_300w
@pytest.mark.slow
def test_recipe_gpu_driver_runs_probe_plan_variants_and_keeps_models_on_cpu(tmp_path):
    import shutil

    module = _pack_module()
    module.pack(W300, tmp_path / "packed", ["afw", "lfpw/trainset"], 256, module.TRAIN_MARGIN, 85)
    tiny = tmp_path / "tiny"
    for folder, n in (("afw", 40), ("helen/trainset", 0), ("lfpw/trainset", 8)):
        (tiny / folder).mkdir(parents=True)
        for jpg in sorted((tmp_path / "packed" / folder).glob("*.jpg"))[:n]:
            for f in (jpg, jpg.with_suffix(".pts")):
                shutil.copy(f, tiny / folder / f.name)
    shutil.copytree(tiny / "afw", tiny / "helen" / "trainset", dirs_exist_ok=True)  # 300-W needs both folders
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "recipe" / "gpu" / "run_recipe_gpu.py"), "--cpu-smoke",
                        "--data", str(tiny), "--out", str(out), "--probe", "2", "--workers", "1",
                        # 4 steps whatever this machine's speed; the deadline only a guard inside the timeout below
                        "--max-steps", "4", "--deadline", "850", "--seeds", "0", "--keep-models",
                        "--variant", "base", "", "--variant", "slow", "schedule.lr=1e-3"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert '"steps": 4' in r.stdout and '"exit_codes": [\n  0,\n  0\n ]' in (out / "summary.md").read_text()
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0].startswith("run,seed,backbone,head,crop,batch,lr,steps,precision") and len(lines) == 3
    assert lines[1].startswith("base_seed0,0,resnet18,heatmap,256,8,0.002,4,bf16-mixed,")  # the experiment's lr
    assert lines[2].startswith("slow_seed0,0,resnet18,heatmap,256,8,0.001,4,bf16-mixed,")  # the variant's override
    import json
    import tarfile

    # packed photos are resampled per face: the labels' mirror shift (original-photo pixels) is left out
    assert json.loads((out / "runs" / "base_seed0" / "metrics.json").read_text())["config"]["data"]["real"][
        "mirror_shift"] == 0
    names = tarfile.open(out / "results.tar.gz").getnames()
    assert "runs/base_seed0/metrics.json" in names and not any(n.endswith((".ckpt", ".npy")) for n in names)
    from landmark_lab.models.checkpoint import load_landmark_model, read_checkpoint

    for name in ("base_seed0", "slow_seed0"):  # the tested model, without the optimiser's and EMA's state
        kept = out / "models" / f"{name}.ckpt"
        assert set(read_checkpoint(kept)) == {"state_dict", "hyper_parameters", "pytorch-lightning_version"}
        assert load_landmark_model(kept).input_size == 256


@needs_shared("300w", "dgfaces", "dgfaces_v1", "facesynthetics")
@pytest.mark.slow
def test_the_unlabelled_protocol_runs_its_chain_through_the_gpu_driver_on_cpu(tmp_path):
    """experiments/unlabelled/gpu/run.sh on a tiny packed copy: pre-training on the packed synthetic folder and the
    procedural faces, fine-tuning on 50, pseudo-labelling the whole photos, a student; steps from the overrides."""
    import json
    import shutil

    module = _pack_module()
    packed, tiny = tmp_path / "packed", tmp_path / "tiny"
    module.pack_whole(W300, packed, ["afw"], 320, 90)
    module.pack(W300, packed, ["lfpw/trainset"], 128, module.TEST_MARGIN, 90)
    for folder, n in (("afw", 40), ("lfpw/trainset", 8)):
        (tiny / folder).mkdir(parents=True)
        for jpg in sorted((packed / folder).glob("*.jpg"))[:n]:
            for f in (jpg, jpg.with_suffix(".pts")):
                shutil.copy(f, tiny / folder / f.name)
    shutil.copytree(tiny / "afw", tiny / "helen" / "trainset")  # 300-W needs both folders
    module.pack_synthetic(SHARED, tiny / "synthetic", 128, 90)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_WHEELS": "1", "DATA": str(tiny), "RUN_OUT": str(out), "PRE": "3",
           "FT": "3", "STUDENT": "3",
           "EXTRA": "data.synthetic.sources.procedural.n=32 data.unlabelled.limit=8 schedule.val_every=3 schedule.min_steps=1"}
    r = subprocess.run(["bash", str(ROOT / "experiments" / "unlabelled" / "gpu" / "run.sh"), "--cpu-smoke", "--seeds",
                        "0", "--workers", "1", "--deadline", "850"],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = json.loads((out / "runs" / "self_train_n50_seed0" / "metrics.json").read_text())
    assert [s["name"] for s in m["stages"]] == ["pretrain", "finetune", "student"]
    assert [s["steps"] for s in m["stages"]] == [3, 3, 3] and m["strategy"] == "self_train"
    assert m["data"]["synthetic_train"] >= 300  # the packed folder's 300 faces and the procedural ones
    row = (out / "results.csv").read_text().splitlines()[1].split(",")
    assert row[0] == "self_train_n50_seed0" and row[7] == "9"  # every stage's steps together
