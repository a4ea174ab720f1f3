"""Run every command with bad input, as a hostile new user would, and record what each gets.

    python experiments/bad_inputs/probe.py [--out experiments/bad_inputs/README.md]

Each case runs the real CLI in a subprocess (tiny built-in data; nothing outside a temp folder is touched)
and records the exit status, whether a traceback was printed, and the message. The table it writes is the
one committed beside this script.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
TINY = ["++data.synthetic.n=48", "++data.real.n_train=70", "++data.real.n_test=16", "++data.synthetic.workers=1",
        "++data.real.workers=1", "data.val_size=8", "data.synthetic_val_size=8", "data.batch_size=8",
        "data.num_workers=0", "trainer.enable_progress_bar=false", "logger=none"]


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def write_pts(path: Path, pts: np.ndarray) -> None:
    body = "\n".join(f"{x + 1:.2f} {y + 1:.2f}" for x, y in pts)
    path.write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")


def face_folder(path: Path, n: int = 12, size: int = 64) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(path / f"f{i}.png"), np.full((size, size, 3), 20 * (i % 10), np.uint8))
        write_pts(path / f"f{i}.pts", np.random.default_rng(i).uniform(4, size - 4, (68, 2)))
    return path


def cases(tmp: Path) -> list[tuple[str, str, list[str], Path | None]]:
    """(class, what was tried, argv after `python -m`, marker file that must not appear)."""
    cache = tmp / "cache"
    base = [f"paths.cache_dir={cache}", *TINY]
    marker = tmp / "PAYLOAD_RAN"
    evil = tmp / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "x": Payload(marker)}, evil)
    out: list[tuple[str, str, list[str], Path | None]] = []

    def train(what: str, *over: str, cls: str = "typo", run: str | None = None, m: Path | None = None) -> None:
        exp = [] if any(o.startswith("+experiment=") for o in over) else ["+experiment=real_only"]
        out.append((cls, what, ["landmark_lab.train", *exp, *base, *over,
                                f"hydra.run.dir={tmp / (run or 'runs/' + str(len(out)))}"], m))

    out.append(("security", "evaluate a crafted pickle checkpoint", ["landmark_lab.evaluate", f"ckpt_path={evil}",
                f"hydra.run.dir={tmp / 'ev_evil'}"], marker))
    rec = tmp / "resume_run" / "checkpoints" / "train"
    rec.mkdir(parents=True)
    (rec / "done.json").write_text(json.dumps({"best_checkpoint": f"../../../{evil.name}"}))
    train("resume a run whose done.json points at ../../evil.ckpt", "resume=true", cls="security", run="resume_run",
          m=marker)
    pc = cache / "pretrain"
    pc.mkdir(parents=True)
    mine = face_folder(tmp / "table")
    (mine / "labels.json").write_text(json.dumps({"../evil_dir/x.png": np.ones((68, 2)).tolist()}))
    train("label table entry ../evil_dir/x.png", "data/real=folder", f"data.real.root={mine}",
          f"data.real.test_root={mine}", "data.real.labels=labels.json", cls="security")
    train("schedule.lr=1e6 (diverges)", "schedule.lr=1e6", "strategy.stages.0.steps=30", "schedule.val_every=10",
          cls="diverged", run="sweep/diverged")
    out.append(("diverged", "report on a sweep whose only run diverged", ["landmark_lab.report", str(tmp / "sweep")],
                None))
    a = face_folder(tmp / "nopts")
    (a / "f3.pts").unlink()
    train("a real folder with an image but no .pts", "data/real=folder", f"data.real.root={a}",
          f"data.real.test_root={a}", cls="silent data")
    b = face_folder(tmp / "noimg")
    (b / "f4.png").unlink()
    train("a .pts without its image", "data/real=folder", f"data.real.root={b}", f"data.real.test_root={b}",
          cls="silent data")
    c = face_folder(tmp / "far")
    lm = np.random.default_rng(0).uniform(4, 60, (68, 2))
    lm[10] = (-50000, 90000)
    write_pts(c / "f2.pts", lm)
    train("one landmark at (-50000, 90000)", "data/real=folder", f"data.real.root={c}", f"data.real.test_root={c}",
          cls="silent data")
    d = face_folder(tmp / "shift")
    write_pts(d / "f5.pts", np.random.default_rng(0).uniform(4, 60, (68, 2)) + 1e5)
    train("every point shifted by 1e5 px", "data/real=folder", f"data.real.root={d}", f"data.real.test_root={d}",
          cls="silent data")
    train("data.real_budget=12.7", "data.real_budget=12.7", cls="silent data")
    e = face_folder(tmp / "json34", n=10)
    (e / "labels.json").write_text(json.dumps({f"f{i}.png": np.ones((34, 4)).tolist() for i in range(10)}))
    train("a JSON label of shape 34x4", "data/real=folder", f"data.real.root={e}", f"data.real.test_root={e}",
          "data.real.labels=labels.json", cls="silent data")
    f = face_folder(tmp / "corrupt_test")
    (f / "f0.png").write_bytes(b"\x89PNG broken")
    train("a corrupt test image", "data/real=folder", f"data.real.root={face_folder(tmp / 'ok_train', n=20)}",
          "data.val_size=4", f"data.real.test_root={f}", cls="silent data")
    train("skip_bad=true on a folder with one corrupt image (runs, counts it)", "data/real=folder",
          f"data.real.root={face_folder(tmp / 'ok_train2', n=20)}", "data.val_size=4", f"data.real.test_root={f}",
          "data.real.skip_bad=true", "strategy.stages.0.steps=4", "schedule.val_every=2", cls="silent data")
    train("a first run (for the next two rows)", "strategy.stages.0.steps=4", "schedule.val_every=2", cls="run folder",
          run="finished")
    train("re-run seed=5 into that finished folder", "seed=5", cls="run folder", run="finished")
    out.append(("run folder", "evaluate a checkpoint that does not exist", ["landmark_lab.evaluate",
                f"ckpt_path={tmp / 'missing.ckpt'}", f"hydra.run.dir={tmp / 'ev_missing'}"], None))
    for what, over in [
        ("model.head.name=heatmapz", ["model.head.name=heatmapz"]),
        ("model.adapter.name=linear", ["model.adapter.name=linear"]),
        ("model.loss.name=huber", ["model.loss.name=huber"]),
        ("data.batch_size=abc", ["data.batch_size=abc"]),
        ("schedule.val_every=0", ["schedule.val_every=0"]),
        ("posthoc_adapter.name=affinee (synth_only_adapted)", ["+experiment=synth_only_adapted", "posthoc_adapter.name=affinee"]),
        ("model.backbone.name=resnet181", ["model.backbone.name=resnet181"]),
        ("trainer.precision=17", ["trainer.precision=17"]),
        ("+trainer.max_epoch=3", ["+trainer.max_epoch=3"]),
        ("trainer.accelerator=gpu (no GPU)", ["trainer.accelerator=gpu"]),
        ("data=300w data.root=/nonexistent", ["data=300w", "data.root=/nonexistent"]),
        ("model.backbone.pretrained=true (no hub)", ["model.backbone.pretrained=true"]),
        ("+model.head.chanels=3", ["+model.head.chanels=3"]),
        ("data.synth_share=1.5", ["data.synth_share=1.5"]),
        ("model.head.chanels=3 (a key that does not exist)", ["model.head.chanels=3"]),
        ("data.flip_test=true (renamed)", ["++data.flip_test=true"]),
        ("strategy.stages.0.steps=-5", ["strategy.stages.0.steps=-5"]),
        ("data.num_workers=-1", ["data.num_workers=-1"]),
    ]:
        train(what, *over)
    out.append(("typo", "evaluate device=cuda (no GPU)", ["landmark_lab.evaluate", f"ckpt_path={evil}", "device=cuda",
                f"hydra.run.dir={tmp / 'ev_cuda'}"], marker))
    out.append(("typo", "adapt without ckpt_path", ["landmark_lab.adapt", f"hydra.run.dir={tmp / 'ad'}"], None))
    nullrun = tmp / "nullsweep" / "r"
    (nullrun / ".hydra").mkdir(parents=True)
    (nullrun / "metrics.json").write_text(json.dumps({"strategy": "real_only", "test": None}))
    out.append(("typo", "report on a metrics.json whose test is null", ["landmark_lab.report", str(tmp / "nullsweep")],
                None))
    out.append(("typo", "predict without input", ["landmark_lab.predict", f"ckpt_path={evil}",
                f"hydra.run.dir={tmp / 'pr'}"], marker))
    out.append(("typo", "export format=tflite", ["landmark_lab.export", f"ckpt_path={evil}", "format=tflite",
                f"hydra.run.dir={tmp / 'ex'}"], marker))
    out += round_two(tmp, base, train)
    return out


def tiny_checkpoint(tmp: Path, name: str, poison: bool = False, crop_size: int | None = None) -> Path:
    """An untrained tiny model saved as the project saves one (NaN weights or an edited crop size on request)."""
    from landmark_lab.models.checkpoint import save_model
    from landmark_lab.training.builders import build_model
    from landmark_lab.utils.compose import compose_config

    cfg = compose_config("train", ["model.backbone.name=test_resnet", f"paths.cache_dir={tmp / 'cache'}"])
    model = build_model(cfg)
    if poison:
        next(p for p in model.parameters()).data[...] = float("nan")
    if crop_size is not None:
        model.hparams.crop = {**dict(model.hparams.crop), "size": crop_size}
    return save_model(model.eval(), tmp / name)


# Rows run while the probe holds this run folder's lock, as a run in progress would.
HOLD: dict[str, Path] = {}


def round_two(tmp: Path, base: list[str], train) -> list[tuple[str, str, list[str], Path | None]]:
    """The surfaces of reliability round 2: links out of the data folder, outputs over a user's files, records
    and tables read back, garbage into predict/export/evaluate, forced keys."""
    out: list[tuple[str, str, list[str], Path | None]] = []
    good, nan, crop = (tiny_checkpoint(tmp, "good.ckpt"), tiny_checkpoint(tmp, "nan.ckpt", poison=True),
                       tiny_checkpoint(tmp, "crop.ckpt", crop_size=-64))
    secret = tmp / "secret.txt"
    secret.write_text("version: 1\nn_points: 68\n{\n" + "TOPSECRET_API_KEY=0123456789abcdef\n" * 68 + "}\n")
    link = face_folder(tmp / "linked")
    (link / "f1.pts").unlink()
    (link / "f1.pts").symlink_to(secret)
    train("a NAME.pts that links to a file outside the data folder", "data/real=folder", f"data.real.root={link}",
          f"data.real.test_root={link}", cls="security")
    notes = tmp / "notes.txt"
    notes.write_text("my notes\n")
    out.append(("data loss", "export out=notes.txt (a file of the user's)",
                ["landmark_lab.export", f"ckpt_path={good}", f"out={notes}", f"hydra.run.dir={tmp / 'ex1'}"], None))
    (tmp / "model.onnx").write_text("the user's model\n")
    out.append(("data loss", "export onto an existing model.onnx",
                ["landmark_lab.export", f"ckpt_path={good}", f"out={tmp / 'model.onnx'}", f"hydra.run.dir={tmp / 'ex2'}"],
                None))
    photos = tmp / "photos"
    photos.mkdir()
    for n in ("face.jpg", "face.png"):
        cv2.imwrite(str(photos / n), np.full((80, 80, 3), 90, np.uint8))
    out.append(("data loss", "predict with out_dir= the folder of the photos",
                ["landmark_lab.predict", f"ckpt_path={good}", f"input={photos}", "detector=none", f"out_dir={photos}",
                 f"hydra.run.dir={tmp / 'pr1'}"], None))
    HOLD["a second run into a folder another run is using"] = tmp / "busy"
    train("a second run into a folder another run is using", "strategy.stages.0.steps=4", cls="data loss", run="busy")
    a_file = tmp / "a_file"
    a_file.write_text("x")
    train("paths.cache_dir= an existing file", f"paths.cache_dir={a_file}", cls="unclear")
    (tmp / "empty_sweep").mkdir()
    out.append(("unclear", "report --out an existing file", ["landmark_lab.report", str(tmp / "empty_sweep"), "--recorded",
                str(ROOT / "experiments" / "budget_sweep" / "results.csv"), "--out", str(a_file)], None))
    for what, over in [("++schedule.lrr=0.1", "++schedule.lrr=0.1"), ("+data.real_budgett=10", "+data.real_budgett=10"),
                       ("+data.transform.crop.szie=128", "+data.transform.crop.szie=128"),
                       ("eval.flip=maybe", "eval.flip=maybe"), ("trainer.val_every=5 (renamed)", "trainer.val_every=5")]:
        train(what, over, cls="silent")
    tab = face_folder(tmp / "bom", n=12)
    rows = ["image," + ",".join(f"{a}{k}" for k in range(68) for a in "xy")]
    rows += [f"f{i}.png," + ",".join(f"{v:.2f}" for v in np.random.default_rng(i).uniform(4, 60, 136)) for i in range(12)]
    (tab / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    bom_test = face_folder(tmp / "bom_test", n=4, size=60)
    test_rows = [rows[0], *(f"f{i}.png," + ",".join(f"{v:.2f}" for v in np.random.default_rng(50 + i).uniform(4, 56, 136))
                            for i in range(4))]
    (bom_test / "labels.csv").write_text("\n".join(test_rows) + "\n", encoding="utf-8-sig")
    train("a CSV table saved with a byte-order mark (reads)", "data/real=folder", f"data.real.root={tab}",
          f"data.real.test_root={bom_test}", "data.real.labels=labels.csv",
          "data.val_size=2", "strategy.stages.0.steps=4", "schedule.val_every=2", cls="silent")
    (tab / "twice.csv").write_text("\n".join([*rows, rows[3]]) + "\n")
    train("a CSV table listing one image twice", "data/real=folder", f"data.real.root={tab}",
          f"data.real.test_root={tmp / 'bom_test'}", "data.real.labels=twice.csv", "data.val_size=2", cls="silent")
    trainf, testf = face_folder(tmp / "hl_train", n=12), face_folder(tmp / "hl_test", n=4, size=60)
    os.link(trainf / "f3.png", testf / "x.png")
    (testf / "x.pts").write_bytes((trainf / "f3.pts").read_bytes())
    train("a test image that is a hard link to a training image", "data/real=folder", f"data.real.root={trainf}",
          f"data.real.test_root={testf}", "data.val_size=2", cls="silent")
    for command, extra in (("evaluate", []), ("predict", [f"input={photos}", "detector=none", f"out_dir={tmp / 'pr2'}"]),
                           ("export", [f"out={tmp / 'nan.onnx'}"])):
        out.append(("silent", f"{command} a checkpoint with NaN weights",
                    [f"landmark_lab.{command}", f"ckpt_path={nan}", *extra, f"hydra.run.dir={tmp / ('nan_' + command)}"],
                    None))
    out.append(("unclear", "evaluate a checkpoint whose crop size is -64",
                ["landmark_lab.evaluate", f"ckpt_path={crop}", f"hydra.run.dir={tmp / 'crop_ev'}"], None))
    boxes = {"keyed by a path (matched by name)": "image,x0,y0,x1,y1\nsome/dir/face.jpg,10,10,70,70\n",
             "a box at (90000, 90000)": "image,x0,y0,x1,y1\nface.jpg,90000,90000,90100,90100\n",
             "an inf box": "image,x0,y0,x1,y1\nface.jpg,inf,0,10,10\n"}
    for k, (what, table) in enumerate(boxes.items()):
        (tmp / f"boxes{k}.csv").write_text(table)
        out.append(("silent", f"predict with boxes {what}",
                    ["landmark_lab.predict", f"ckpt_path={good}", f"input={photos / 'face.jpg'}", "detector=boxes",
                     f"boxes={tmp / f'boxes{k}.csv'}", f"out_dir={tmp / f'pr_boxes{k}'}", f"hydra.run.dir={tmp / 'prb'}"],
                    None))
    odd = tmp / "odd"
    odd.mkdir()
    (odd / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(odd / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    out.append(("silent", "predict a 0-byte and a 1x1 image (nothing else)",
                ["landmark_lab.predict", f"ckpt_path={good}", f"input={odd}", "detector=none", f"out_dir={tmp / 'pr3'}",
                 f"hydra.run.dir={tmp / 'pr3run'}"], None))
    out.append(("silent", "evaluate peer=dlib ckpt_path=X", ["landmark_lab.evaluate", "peer=dlib", f"ckpt_path={good}",
                f"hydra.run.dir={tmp / 'peer'}"], None))
    out.append(("unclear", "export opset=abc", ["landmark_lab.export", f"ckpt_path={good}", "opset=abc",
                f"hydra.run.dir={tmp / 'ex3'}"], None))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("README.md"))
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bad_inputs_") as d:
        tmp = Path(d)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "0"}
        for cls, what, argv, marker in cases(tmp):
            t0 = time.perf_counter()
            hold = None
            if what in HOLD:  # another run holds the folder while this one starts
                from filelock import FileLock

                HOLD[what].mkdir(parents=True, exist_ok=True)
                hold = FileLock(str(HOLD[what] / "run.lock"))
                hold.acquire()
            r = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True)
            if hold is not None:
                hold.release()
            secs = time.perf_counter() - t0
            err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
            out_lines = [ln for ln in r.stdout.splitlines() if "[landmark_lab]" in ln]
            # Hydra reports override errors itself, over a few lines, before its HYDRA_FULL_ERROR hint
            hydra_lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln
                           and not ln.startswith(("Warning", "  warnings"))]
            msg = err[-1] if err else (" ".join(hydra_lines[:3]) if r.returncode else (out_lines[-1] if out_lines else ""))
            msg = msg.replace(str(tmp), "<tmp>")[:330]
            ran = marker is not None and marker.exists()
            rows.append((cls, what, r.returncode, "Traceback" in r.stderr, ran, round(secs, 1), msg))
            print(f"{cls:12} rc={r.returncode} tb={'Traceback' in r.stderr} {secs:5.1f}s {what}: {msg[:120]}", flush=True)
    md = ["# Bad inputs and what each gets", "",
          "Generated by `python experiments/bad_inputs/probe.py` (each row runs the real command in a subprocess on",
          "tiny built-in data). `exit 2` is the one exit status for user errors; `traceback` must be `no`;",
          "`payload ran` says whether a crafted pickle's code ran (it must never). Paths under the temporary",
          "folder are shown as `<tmp>`.", "",
          "| class | input | exit | traceback | payload ran | seconds | message |", "|---|---|---|---|---|---|---|"]
    for cls, what, rc, tb, ran, secs, msg in rows:
        md.append(f"| {cls} | {what} | {rc} | {'yes' if tb else 'no'} | {'YES' if ran else 'no'} | {secs} | "
                  f"{msg.replace('|', '/')} |")
    md += ["", f"{len(rows)} inputs; {sum(r[3] for r in rows)} with a traceback; {sum(r[4] for r in rows)} ran a payload.",
           ""]
    a.out.write_text("\n".join(md))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
