"""Domain-gap analyses and figures: ``python -m landmark_lab.analyze COMMAND [overrides]``.

Commands: ``crops`` (framing before/after crop imitation), ``augment`` (augmentation grid),
``labels`` (label ambiguity), ``conventions`` (3D vs 2D labels, adapter output), ``all`` (those four), and
``pseudo run_dir=RUN`` (a self-training run's pseudo-labels against the hidden labels).
Overrides are the training config's (``data=300w``, ``data/synthetic=dgfaces``, ``augment=basic`` ...)
plus ``out_dir``, ``max_faces``, ``ckpt_path``; see ``conf/analyze.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from landmark_lab.analysis.figures import ambiguity_figure, augment_grid, conventions_figure, framing_figure
from landmark_lab.analysis.label_ambiguity import point_std, region_std, shape_residual_std
from landmark_lab.analysis.pseudo_labels import pseudo
from landmark_lab.analysis.stats import ks_distance
from landmark_lab.datamodules.sources import open_sources, prepare
from landmark_lab.datamodules.splits import budget_items, expand, groups_of
from landmark_lab.errors import ConfigError
from landmark_lab.registry import Registry
from landmark_lab.transforms.augment import build_pipeline, leaves
from landmark_lab.transforms.crop_imitation import CropImitation, measure_sources
from landmark_lab.transforms.pipeline import FaceTransform, denormalize


def _side(cfg: DictConfig, side: str, split: str = "train") -> tuple[list, list]:
    spec = OmegaConf.to_container(cfg.data[side], resolve=True)
    prepare(spec, side)
    sources = open_sources(spec, side, split)
    items = expand(groups_of([len(s) for s in sources]), False)
    # An even spread over all sources (a multi source's first files are all from its first dataset).
    if len(items) > cfg.max_faces:
        items = [items[i] for i in np.linspace(0, len(items) - 1, int(cfg.max_faces)).round().astype(int)]
    return sources, items


def crops(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Framing distributions of real vs synthetic, before and after crop imitation, with KS distances."""
    real_src, real_items = _side(cfg, "real")
    syn_src, syn_items = _side(cfg, "synthetic")
    real = measure_sources(real_src, real_items)
    before = measure_sources(syn_src, syn_items)
    # Imitation is fitted as training fits it: on the first n_real real images of the budget order.
    n_fit = int(cfg.data.crop_imitation.n_real)
    fit_items = budget_items(groups_of([len(s) for s in real_src]), min(n_fit, len(real_items)), False, int(cfg.seed))
    imitation = CropImitation(measure_sources(real_src, fit_items), bool(cfg.data.crop_imitation.resolution))
    syn_lm = np.stack([syn_src[it.source].landmarks[it.index] for it in syn_items])
    after = imitation.imitated(syn_lm, seed=int(cfg.seed))
    r, b, a = real.columns(), before.columns(), after.columns()
    distances = {k: (ks_distance(b[k], r[k]), ks_distance(a[k], r[k])) for k in r}
    framing_figure(r, b, a, distances, out / "crops.png")
    table = ["| framing | real median | synthetic median | after imitation | KS before | KS after |",
             "|---|---|---|---|---|---|"]
    for k, (d0, d1) in distances.items():
        table.append(f"| {k} | {np.median(r[k]):.3f} | {np.median(b[k]):.3f} | {np.median(a[k]):.3f} | {d0:.3f} | {d1:.3f} |")
    text = (f"# Crop framing: real ({len(real)} faces) vs synthetic ({len(before)} faces)\n\n"
            f"Imitation fitted on {len(fit_items)} real training faces. KS = two-sample Kolmogorov-Smirnov "
            "distance to the real distribution (0 = same).\n\n" + "\n".join(table) + "\n")
    (out / "crops.md").write_text(text)
    result = {"real_faces": len(real), "synthetic_faces": len(before), "fitted_on": len(fit_items),
              "ks": {k: {"before": d0, "after": d1} for k, (d0, d1) in distances.items()}}
    (out / "crops.json").write_text(json.dumps(result, indent=2))
    print(text)
    return result


def augment(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """One synthetic face under each augmentation (p=1), plus three draws of the whole pipeline."""
    src, items = _side(cfg, "synthetic")
    crop = {**OmegaConf.to_container(cfg.data.transform.crop, resolve=True), "size": 128}
    sample = src[items[0].source].load(items[0].index)
    image, pts, _ = FaceTransform(crop).geometry(sample)
    shared = list(cfg.augment.transforms or [])
    specific = list(cfg.augment.get("synthetic_transforms") or [])
    specs = OmegaConf.to_container(OmegaConf.create(shared + specific), resolve=True)
    if not specs:
        raise ConfigError("augment has no transforms to show; pick one with augment=basic or augment=domain_adapt.")
    tiles = [("original", image, pts)]
    for i, spec in enumerate(leaves(specs)):
        pipe = build_pipeline([{**spec, "p": 1.0}])
        pipe.set_random_seed(int(cfg.seed) + i)
        o = pipe(image=image, keypoints=pts)
        tiles.append((spec["name"], o["image"], np.asarray(o["keypoints"], np.float32)))
    pipe = build_pipeline(specs)
    for k in range(3):
        pipe.set_random_seed(int(cfg.seed) + 100 + k)
        o = pipe(image=image, keypoints=pts)
        tiles.append((f"whole pipeline #{k + 1}", o["image"], np.asarray(o["keypoints"], np.float32)))
    augment_grid(tiles, out / "augment.png")
    names = [t[0] for t in tiles]
    print(f"augment.png: {len(tiles)} panels ({', '.join(names)})")
    return {"panels": names}


def labels(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Per-landmark label spread, real vs synthetic: std after Procrustes alignment (the study's measure)
    and the residual of a ``shape_components``-mode shape model (mostly labelling noise)."""
    k = int(cfg.shape_components)
    procrustes_std: dict[str, tuple] = {}
    residual_std: dict[str, tuple] = {}
    names = {}
    for side in ("real", "synthetic"):
        src, items = _side(cfg, side)
        lms = np.stack([src[it.source].landmarks[it.index] for it in items])
        names[side] = name = f"{side}: {', '.join(s.name for s in src)} ({len(lms)})"
        procrustes_std[name] = point_std(lms)
        residual_std[name] = shape_residual_std(lms, k)
    ambiguity_figure({"std after Procrustes": procrustes_std, f"residual of a {k}-mode shape model": residual_std},
                     out / "labels.png")
    tables = []
    payload: dict[str, Any] = {"real": names["real"], "synthetic": names["synthetic"], "shape_components": k}
    for key, title, res in (("procrustes", "std after Procrustes alignment", procrustes_std),
                            ("shape_residual", f"residual of a {k}-mode shape model (mostly labelling noise)", residual_std)):
        real_std, syn_std = res[names["real"]][0], res[names["synthetic"]][0]
        regions = {"real": region_std(real_std), "synthetic": region_std(syn_std)}
        rows = [f"### {title}", "", "| region | real (% IOD) | synthetic (% IOD) | real / synthetic |", "|---|---|---|---|"]
        for region in regions["real"]:
            r, s = regions["real"][region], regions["synthetic"][region]
            rows.append(f"| {region} | {100 * r:.2f} | {100 * s:.2f} | {r / max(s, 1e-9):.2f} |")
        top = np.argsort(-real_std)[:10]
        rows += ["", "Most variable real landmarks (0-based index: real / synthetic, % IOD): "
                 + ", ".join(f"{i}: {100 * real_std[i]:.1f}/{100 * syn_std[i]:.1f}" for i in top), ""]
        tables.append("\n".join(rows))
        payload[key] = {"real": real_std.tolist(), "synthetic": syn_std.tolist(), "regions": regions}
    text = f"# Label ambiguity\n\nreal = {names['real']}; synthetic = {names['synthetic']}\n\n" + "\n".join(tables)
    (out / "labels.md").write_text(text)
    (out / "labels.json").write_text(json.dumps(payload, indent=2))
    print(text)
    return payload


def conventions(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Projected-3D vs 2D-outline labels on a turned procedural face; with ``ckpt_path``, a model's
    base vs adapted prediction on a real test face."""
    from landmark_lab.data.procedural.domains import generate_face

    panels = []
    for seed in range(200):  # a clearly turned head shows the difference best
        face = generate_face("real", seed + 1000 * int(cfg.seed), 256)
        if abs(face.pose[0]) > 30:
            break
    panels.append((f"procedural face, yaw {face.pose[0]:.0f} deg", face.image,
                   {"3d (projected)": face.lm_3d, "2d (outline)": face.lm_2d}))
    result: dict[str, Any] = {"yaw": float(face.pose[0]),
                              "jaw_gap_px": float(np.linalg.norm(face.lm_3d[:17] - face.lm_2d[:17], axis=1).mean())}
    if cfg.ckpt_path:
        import torch

        from landmark_lab.models.checkpoint import load_checkpoint

        model = load_checkpoint(cfg.ckpt_path)
        src, items = _side(cfg, "real", "test")
        tf = FaceTransform(dict(model.hparams.crop))
        if cfg.face is None:
            # Of the first 64 test faces the model gets roughly right (better half by error), the one whose
            # jaw the adapter moves most: where the convention change shows.
            batch = torch.utils.data.default_collate([tf(src[it.source].load(it.index)) for it in items[:64]])
            with torch.no_grad():
                base, adapted = model(batch["image"])
            error = (model.to_pixels(adapted) - batch["landmarks"]).norm(dim=-1).mean(1)
            move = (adapted - base)[:, :17].norm(dim=-1).mean(1)
            move[error > error.median()] = -1.0
            pick = int(move.argmax())
        else:
            pick = int(cfg.face) % len(items)
        item = items[pick]
        batch = tf(src[item.source].load(item.index))
        with torch.no_grad():
            base, adapted = model(batch["image"][None])
        to_px = model.to_pixels
        panels.append((f"model on a real test face ({batch['id']})", denormalize(batch["image"]),
                       {"base (3d convention)": to_px(base)[0].numpy(), "adapted (2d)": to_px(adapted)[0].numpy(),
                        "ground truth": batch["landmarks"].numpy()}))
        err = lambda p: float(np.linalg.norm(to_px(p)[0].numpy()[:17] - batch["landmarks"].numpy()[:17], axis=1).mean())  # noqa: E731
        result.update(model_jaw_error_px={"base": err(base), "adapted": err(adapted)})
    conventions_figure(panels, out / "conventions.png")
    print(f"conventions.png: {len(panels)} panel(s); mean jaw gap 3d vs 2d on the procedural face "
          f"{result['jaw_gap_px']:.1f} px")
    return result


ANALYSES: Registry[Any] = Registry("analysis", "command")
for _name, _fn in (("crops", crops), ("augment", augment), ("labels", labels), ("conventions", conventions),
                   ("pseudo", pseudo)):
    ANALYSES.register(_name)(_fn)
# Analyses of a finished run (run_dir=RUN), not of the data: left out of ``all``.
OF_A_RUN = ("pseudo",)
