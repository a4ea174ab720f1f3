"""The recipe's parts: heatmap targets and sub-pixel decoding, the heatmap head on every shipped backbone, the
heatmap loss routing, weight averaging (EMA), the real-face augmentation preset and the recipe configs."""

from __future__ import annotations

import re
import shlex

import lightning as L
import pytest
import torch

from landmark_lab.errors import ConfigError
from landmark_lab.evaluation.core import base_is_meaningful
from landmark_lab.models.backbone import Backbone
from landmark_lab.models.heads import HeatmapHead, build_head, head_features
from landmark_lab.models.heatmaps import DECODERS, gaussian_targets, heatmap_loss
from landmark_lab.models.module import LandmarkModule
from landmark_lab.training.callbacks import EMA
from landmark_lab.transforms.augment import build_pipeline

from .conftest import ROOT, W300, load_script

RECIPE_RUN = ROOT / "experiments" / "recipe" / "run.sh"


def _points(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 68, 2, generator=g) * 0.8 + 0.1


@pytest.mark.parametrize(("decoder", "max_cells"), [("dark", 0.05), ("local", 0.25), ("argmax", 0.5)])
def test_decoders_find_a_gaussian_to_sub_pixel(decoder, max_cells):
    pts = _points()
    maps = gaussian_targets(pts, 32, 32, 1.5)
    assert maps.shape == (3, 68, 32, 32) and float(maps.max()) <= 1.0
    err_cells = (DECODERS.get(decoder)(maps, 1.5) - pts).abs().max() * 32
    assert float(err_cells) <= max_cells


def test_dark_beats_argmax_on_noisy_maps():
    pts = _points(8, seed=1)
    maps = gaussian_targets(pts, 32, 32, 1.5) + 0.02 * torch.randn(8, 68, 32, 32, generator=torch.Generator().manual_seed(2))
    err = {d: float((DECODERS.get(d)(maps, 1.5) - pts).norm(dim=-1).mean() * 32) for d in ("dark", "argmax")}
    assert err["dark"] < 0.7 * err["argmax"]


def test_heatmap_decoding_stays_float32_under_bf16_autocast():
    # the GPU recipe trains and tests under bf16 autocast; DARK's blur and logs must not run in bf16
    pts = _points(2, seed=3)
    head = HeatmapHead([8, 16, 32, 64], channels=8)
    maps = gaussian_targets(pts, 32, 32, 1.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        decoded = head.decode(maps)
    assert decoded.dtype == torch.float32
    assert torch.equal(decoded, head.decode(maps))
    assert float((decoded - pts).abs().max() * 32) <= 0.05


def test_heatmap_loss_scale_and_minimum():
    pts = _points()
    target = gaussian_targets(pts, 16, 16, 1.5)
    assert float(heatmap_loss(target, pts, 1.5)) == pytest.approx(0.0, abs=1e-10)
    # an all-zero map costs the target's energy, pi * sigma^2 away from the borders: coordinate-loss sized
    assert float(heatmap_loss(torch.zeros_like(target), pts, 1.5)) == pytest.approx(torch.pi * 1.5**2, rel=0.05)
    assert float(heatmap_loss(torch.zeros(0, 68, 16, 16), pts[:0], 1.5)) == 0.0


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3_small_100", "efficientnet_b0", "convnext_atto"])
def test_heatmap_head_reads_a_stride4_pyramid(name):
    backbone = Backbone(name)
    head = build_head("heatmap", backbone, channels=16)
    x = torch.randn(2, 3, 64, 64)
    feats = head_features(backbone, head, x)
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    assert head.heatmaps(feats).shape == (2, 68, 16, 16)
    pts, score = head.forward_with_confidence(feats)
    assert pts.shape == (2, 68, 2) and score.shape == (2,) and bool(((score >= 0) & (score <= 1)).all())


def test_heatmap_head_refuses_a_stride_the_backbone_lacks():
    with pytest.raises(ConfigError, match="stride-3"):
        build_head("heatmap", Backbone("resnet18"), stride=3)


def _heatmap_module(adapter: str) -> LandmarkModule:
    m = LandmarkModule({"name": "resnet18"}, {"name": "heatmap", "channels": 16}, {"name": adapter}, {"name": "wing"},
                       input_size=64)
    m.log = lambda *a, **k: None  # no trainer attached
    return m


def test_heatmap_maps_learn_only_labels_in_their_convention():
    batch = {"image": torch.randn(2, 3, 64, 64), "landmarks": torch.rand(2, 68, 2) * 50 + 7,
             "is_3d": torch.tensor([False, False])}
    # no adapter: the base output is the model output, so 2d labels supervise the maps
    with_maps = _heatmap_module("none")
    loss_none = with_maps.training_step(batch, 0)
    # an adapter between them: 2d labels supervise the adapted points only, not the (3d-convention) maps
    m = _heatmap_module("mlp")
    m.head.coord_weight = 0.0
    m.head.map_weight = 0.0
    loss_mlp = m.training_step(batch, 0)
    assert float(loss_none) > 1.0
    # ... where the coordinate loss is their only signal, so coord_weight does not switch it off
    assert float(loss_mlp) > 1.0
    m.head.map_weight = 1.0
    assert float(m.training_step(batch, 0)) == pytest.approx(float(loss_mlp))  # no map loss from 2d labels
    batch["is_3d"] = torch.tensor([True, False])
    assert float(m.training_step(batch, 0)) > float(loss_mlp) / 2  # the 3d sample's maps count
    # a run with no 3d-labelled face at all (real-only, recorded by the runner): 2d is the maps' convention
    batch["is_3d"] = torch.tensor([False, False])
    m.hparams.base_supervised = False
    # the maps' loss (near-zero maps: pi * sigma^2) and no longer the coordinate loss (coord_weight 0)
    assert float(m.training_step(batch, 0)) == pytest.approx(torch.pi * 1.5**2, rel=0.1)


def test_without_adapter_figure_only_where_the_base_was_supervised():
    m = _heatmap_module("mlp")
    assert base_is_meaningful(m)  # nothing recorded (an older checkpoint): reported
    m.hparams.base_supervised = False
    assert not base_is_meaningful(m)
    m.hparams.base_supervised = True
    assert base_is_meaningful(m)
    assert not base_is_meaningful(_heatmap_module("none"))  # identical to the output: nothing to report


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(2, 1)
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch, _):
        return (self.w(batch[0]) - 1.0).pow(2).mean()

    def validation_step(self, batch, _):
        self.seen.append(self.w.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_ema_validates_and_keeps_the_average(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 2))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    model, ema = _Tiny(), EMA(decay=0.9)
    trainer = L.Trainer(max_steps=16, max_epochs=2, val_check_interval=4, callbacks=[ema], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    trainer.fit(model, loader, loader)
    average = ema.average["w.weight"]
    assert ema.updates == 16
    # validation saw the average, and the stage ends holding it (not the live weights)
    assert torch.allclose(model.seen[-1], average) and torch.allclose(model.w.weight, average)
    state = ema.state_dict()
    restored = EMA(decay=0.9)
    restored.load_state_dict(state)
    assert restored.updates == 16 and torch.allclose(restored.average["w.weight"], average)
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)


def test_real_augmentation_preset_builds_and_keeps_68_points(make_cfg):
    import numpy as np

    cfg = make_cfg(["augment=real"])
    pipe = build_pipeline(cfg.augment.transforms)
    pipe.set_random_seed(0)
    image = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    pts = np.random.default_rng(1).uniform(30, 98, (68, 2)).astype(np.float32)
    for _ in range(5):
        out = pipe(image=image, keypoints=pts)
        assert out["image"].shape == image.shape and np.asarray(out["keypoints"]).shape == (68, 2)


@pytest.mark.parametrize("experiment", ["recipe_300w", "recipe_300w_gpu"])
def test_recipe_configs_compose_and_pass_the_checks(make_cfg, experiment):
    from landmark_lab.cli.checks import check_train_config

    cfg = make_cfg([f"+experiment={experiment}"])
    assert cfg.model.head.name == "heatmap" and cfg.model.adapter.name == "none" and cfg.eval.flip
    assert cfg.callbacks.ema._target_.endswith("EMA")
    if experiment.endswith("gpu"):
        return  # its trainer asks for a GPU, which the check refuses on a CPU-only machine
    if not W300.is_dir():
        pytest.skip("needs ../shared/data/300w")
    check_train_config(cfg)


def _ablation_rows() -> tuple[dict[str, list[str]], list[str]]:
    """The rows of experiments/recipe/run.sh (name -> overrides, protocol included) and its run order."""
    text = RECIPE_RUN.read_text()
    proto = shlex.split(re.search(r"^PROTO=\((.*?)\)$", text, re.M | re.S).group(1))
    rows = {name: [*shlex.split(args), *proto] for name, args in re.findall(r'^\s*\[(\w+)\]="([^"]*)"', text, re.M)}
    order = shlex.split(re.search(r"^ORDER=\((.*?)\)$", text, re.M | re.S).group(1))
    return rows, order


def test_every_recipe_ablation_row_composes_and_passes_the_checks(make_cfg):
    # A reader reruns one row of the table by name: a typo in a row's overrides would only show hours into a run.
    from landmark_lab.cli.checks import check_train_config

    rows, order = _ablation_rows()
    assert len(rows) >= 10 and sorted(order) == sorted(rows), "run.sh: ORDER must list every row once"
    # table.py describes each row for the table: a row it does not know would be left out without a word
    table_rows = load_script(RECIPE_RUN.parent / "table.py").ROWS
    assert sorted(table_rows) == sorted(rows), (
        f"experiments/recipe/table.py ROWS and run.sh rows differ: only in run.sh {sorted(set(rows) - set(table_rows))}"
        f", only in table.py {sorted(set(table_rows) - set(rows))}")
    if not W300.is_dir():
        pytest.skip("needs ../shared/data/300w")
    for name, overrides in rows.items():
        try:
            cfg = make_cfg(overrides)
            check_train_config(cfg)
        except ConfigError as exc:
            pytest.fail(f"experiments/recipe/run.sh row {name}: {exc}")
        assert cfg.data.split == ["lfpw/trainset"], name  # the protocol's test folder, never trained on


def test_heatmap_head_config_typos_are_named(make_cfg):
    from landmark_lab.cli.checks import check_train_config

    cfg = make_cfg(["model.head.name=heatmap", "+model.head.decode=darkk"])
    with pytest.raises(ConfigError, match=r"model\.head\.decode"):
        check_train_config(cfg)


def test_heatmap_head_class_is_registered():
    from landmark_lab.models.heads import HEADS

    assert HEADS.get("heatmap") is HeatmapHead


def test_ema_resumes_from_last_checkpoint_with_live_weights(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 2)), batch_size=8)

    def fit(steps: int, ema: EMA, model: _Tiny, ckpt_path: str | None = None) -> ModelCheckpoint:
        ckpt = ModelCheckpoint(dirpath=str(tmp_path), save_last=True, monitor=None)
        trainer = L.Trainer(max_steps=steps, max_epochs=4, val_check_interval=4, callbacks=[ema, ckpt], logger=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                            default_root_dir=str(tmp_path))
        trainer.fit(model, loader, loader, ckpt_path=ckpt_path, weights_only=True)
        return ckpt

    first = EMA(decay=0.9)
    fit(8, first, _Tiny())
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    state = next(v for k, v in saved["callbacks"].items() if k.startswith("EMA"))
    # saved during validation: the checkpoint's weights are the average, the live ones ride along
    assert torch.allclose(saved["state_dict"]["w.weight"], state["average"]["w.weight"])
    assert state["live"] is not None and state["updates"] == 8
    resumed, model = EMA(decay=0.9), _Tiny()
    fit(12, resumed, model, ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.updates == 12 and torch.allclose(model.w.weight, resumed.average["w.weight"])
