import pytest
import timm
import torch

from landmark_lab.errors import ConfigError
from landmark_lab.models.adapter import ADAPTERS
from landmark_lab.models.backbone import Backbone
from landmark_lab.models.heads import IntegralHead, RegressionHead, SimCCHead, build_head, head_features
from landmark_lab.models.losses import CoordLoss
from landmark_lab.models.module import LandmarkModule

MODEL = dict(
    backbone={"name": "resnet18"}, head={"name": "regression"}, adapter={"name": "mlp"},
    loss={"name": "wing"}, optimizer={"name": "adamw", "lr": 1e-3}, scheduler={"name": "cosine"},
)


def test_module_shapes_and_loss_routing():
    m = LandmarkModule(**MODEL, input_size=64)
    x = torch.randn(4, 3, 64, 64)
    base, adapted = m(x)
    assert base.shape == adapted.shape == (4, 68, 2)
    torch.testing.assert_close(base, adapted)  # adapter is the identity at init
    batch = {"image": x, "landmarks": torch.rand(4, 68, 2) * 63, "is_3d": torch.tensor([True, True, False, False])}
    loss = m.training_step(batch, 0)
    loss.backward()
    # only 2d-labelled samples reach the adapter's last layer
    assert m.adapter.net[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("head", [{"name": "regression"}, {"name": "heatmap", "stride": 4}, {"name": "simcc", "grid": 2},
                                  {"name": "simcc", "stride": 16}])
def test_a_teacher_adds_its_loss_and_stays_out_of_the_student(head):
    """Distillation: the teacher's landmarks on the same crops (resized to its input size) add a loss; the teacher is
    frozen, in no state_dict and no optimiser group, and set_teacher(None) ends it."""
    cfg = {**MODEL, "backbone": {"name": "test_resnet"}, "head": head, "adapter": {"name": "none"}}
    torch.manual_seed(0)
    student, teacher = LandmarkModule(**cfg, input_size=64), LandmarkModule(**cfg, input_size=96)
    batch = {"image": torch.randn(2, 3, 64, 64), "landmarks": torch.rand(2, 68, 2) * 63, "is_3d": torch.tensor([False, False])}
    keys = set(student.state_dict())
    alone = student.training_step(batch, 0).item()
    student.set_teacher(teacher, weight=2.0)
    taught = student.training_step(batch, 0)
    taught.backward()
    assert taught.item() > alone and all(p.grad is None for p in teacher.parameters())
    assert set(student.state_dict()) == keys and not teacher.training
    student.set_teacher(None)
    assert student.training_step(batch, 0).item() == pytest.approx(alone)


def test_a_flip_teacher_teaches_its_flip_average():
    """distill.flip: the teacher's targets are the mean of its landmarks on the crop and, un-mirrored, on the
    mirrored crop (what evaluate's flip average gives), not its one-pass landmarks."""
    from landmark_lab.transforms.flip import flip_average

    cfg = {**MODEL, "backbone": {"name": "test_resnet"}, "adapter": {"name": "none"}}
    torch.manual_seed(0)
    student, teacher = LandmarkModule(**cfg, input_size=64), LandmarkModule(**cfg, input_size=64)
    teacher.eval()
    image = torch.randn(3, 3, 64, 64)
    batch = {"image": image, "landmarks": torch.rand(3, 68, 2) * 63, "is_3d": torch.tensor([False, True, False])}
    with torch.no_grad():
        one = teacher(image)[1]
        mirrored = teacher(torch.flip(image, dims=[-1]))[1]
    expected = teacher.to_normalised(flip_average(teacher.to_pixels(one), teacher.to_pixels(mirrored), 64))
    student.set_teacher(teacher, flip=True)
    torch.testing.assert_close(student._teacher_targets(batch), expected, atol=1e-5, rtol=0)
    assert (student._teacher_targets(batch) - one).abs().max() > 1e-4  # the mirror moved them: not the one pass
    student.set_teacher(teacher)
    torch.testing.assert_close(student._teacher_targets(batch), one, atol=1e-6, rtol=0)
    # a teacher trained with the labels' mirror shift un-mirrors with it, in each crop's pixels (scale 0.5 here: one
    # image px is half a crop px); its base output too, unless 3d labels (which mirror exactly) trained it
    teacher.hparams.mirror_shift = 1.0
    batch["crop_matrix"] = torch.tensor([[0.5, 0.0, 3.0], [0.0, 0.5, 1.0]]).expand(3, 2, 3)
    student.set_teacher(teacher, flip=True)
    shifted = teacher.to_normalised(flip_average(teacher.to_pixels(one), teacher.to_pixels(mirrored), 64, 0.5))
    torch.testing.assert_close(student._teacher_targets(batch), shifted, atol=1e-5, rtol=0)
    teacher.hparams.base_supervised = True
    rows = torch.where(batch["is_3d"].view(-1, 1, 1), expected, shifted)
    torch.testing.assert_close(student._teacher_targets(batch), rows, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_adapters_are_identity_at_init(name):
    pts = torch.rand(3, 68, 2)
    torch.testing.assert_close(ADAPTERS[name]()(pts), pts)


def test_heads_share_interface():
    feats = torch.randn(2, 32, 4, 4)
    for head in (RegressionHead(32), IntegralHead(32, channels=16)):
        out = head(feats)
        assert out.shape == (2, 68, 2) and out.min() >= -1 and out.max() <= 2


def test_a_new_head_is_one_registered_subclass():
    """The head contract is the base class: a head that implements only ``forward`` trains through the module and
    runs in the inference network (confidence NaN); a registered class that is not a LandmarkHead is refused."""
    from landmark_lab.models.heads import HEADS, LandmarkHead

    class CentreHead(LandmarkHead):
        def __init__(self, in_channels: int) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(in_channels, 68 * 2)

        def forward(self, feats: torch.Tensor) -> torch.Tensor:
            return self.fc(feats.mean(dim=(2, 3))).view(-1, 68, 2).sigmoid()

    HEADS.register("test_centre")(CentreHead)
    HEADS.register("test_not_a_head")(torch.nn.Identity)
    try:
        m = LandmarkModule(**{**MODEL, "head": {"name": "test_centre"}}, input_size=64)
        batch = {"image": torch.randn(2, 3, 64, 64), "landmarks": torch.rand(2, 68, 2) * 63,
                 "is_3d": torch.tensor([True, False])}
        m.training_step(batch, 0).backward()
        assert m.head.fc.weight.grad.abs().sum() > 0
        points, score = m.inference_net()(torch.rand(1, 3, 64, 64) * 255)
        assert points.shape == (1, 68, 2) and torch.isnan(score).all()
        with pytest.raises(ConfigError, match=r"model\.head\.name=test_not_a_head.*LandmarkHead"):
            LandmarkModule(**{**MODEL, "head": {"name": "test_not_a_head"}}, input_size=64)
    finally:
        HEADS._items.pop("test_centre", None)
        HEADS._items.pop("test_not_a_head", None)


def test_losses():
    p, t = torch.zeros(1, 68, 2), torch.zeros(1, 68, 2)
    t[..., 0] = 1 / 64  # one pixel at scale 64
    assert torch.isclose(CoordLoss("l1")(p, t), torch.tensor(1.0))
    assert torch.isclose(CoordLoss("l2")(p, t), torch.tensor(1.0))
    assert torch.isclose(CoordLoss("wing")(p, t), torch.tensor(10 * torch.log1p(torch.tensor(0.5)).item()))


def test_unknown_backbone_suggests_names():
    with pytest.raises(ConfigError, match=r"resnet181.*not a timm model.*Did you mean.*resnet18"):
        Backbone("resnet181")


def test_pretrained_weights_unavailable_is_clear(monkeypatch):
    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("hub unreachable")
        return original(*args, **kwargs)

    original = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ConfigError, match=r"pretrained=false.*checkpoint_path"):
        Backbone("resnet18", pretrained=True)


def test_local_checkpoint_loads(tmp_path):
    src = Backbone("resnet18")
    torch.save(src.model.state_dict(), tmp_path / "w.pth")
    dst = Backbone("resnet18", checkpoint_path=str(tmp_path / "w.pth"))
    torch.testing.assert_close(dst.model.conv1.weight, src.model.conv1.weight)
    torch.save({"foo": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="none of its 1 tensors match"):
        Backbone("resnet18", checkpoint_path=str(tmp_path / "bad.pth"))
    with pytest.raises(ConfigError, match="file not found"):
        Backbone("resnet18", checkpoint_path=str(tmp_path / "missing.pth"))


def test_loss_scale_follows_the_crop_unless_set():
    # errors are measured in pixels of the crop the model sees, so a 128-px crop keeps the wing loss's shape
    m = LandmarkModule(**{**MODEL, "loss": {"name": "wing", "scale": None}}, input_size=128)
    assert m.criterion.scale == 128.0
    m = LandmarkModule(**{**MODEL, "loss": {"name": "wing", "scale": 64}}, input_size=128)
    assert m.criterion.scale == 64.0


def test_simcc_head_decodes_its_own_targets_and_learns_a_point():
    """The SimCC head: its Gaussian 1-D targets decode back to the point (inside the crop, away from the edges), its
    map loss is zero there and a weight of 0 leaves a point out, and a few steps on one face move the expectation
    onto the labels with a confidence above one half (from any map size: the map is resized to the head's grid)."""
    torch.manual_seed(0)
    head = SimCCHead(32, bins=64, hidden=32, grid=3, sigma=2.0)
    pts = torch.rand(2, 68, 2) * 0.6 + 0.2
    target = head.targets(pts)
    assert target.shape == (2, 68, 2, 64) and torch.allclose(target.sum(-1), torch.ones(2, 68, 2))
    exact = torch.log(target.clamp_min(1e-30))  # logits whose softmax is the target
    torch.testing.assert_close(head._decode(exact), pts, atol=1e-3, rtol=0)
    assert head.map_loss(exact, pts).item() == pytest.approx(0.0, abs=1e-5)
    assert head.map_loss(torch.zeros_like(target), pts).item() > 1.0
    weight = torch.ones(2, 68)
    weight[0, 5] = 0.0
    wrong = exact.clone()
    wrong[0, 5] = 0.0  # a flat distribution where the weight is 0: no loss
    assert head.map_loss(wrong, pts, weight).item() == pytest.approx(0.0, abs=1e-5)
    feats = torch.randn(2, 32, 5, 5)  # resized to the 3x3 grid
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        coords, logits = head.forward_with_maps(feats)
        loss = head.map_loss(logits, pts) + (coords - pts).abs().mean()
        first = first if first is not None else (coords - pts).abs().mean().item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    coords, conf = head.forward_with_confidence(feats)
    assert (coords - pts).abs().mean().item() < first / 5 and coords.shape == (2, 68, 2)
    assert conf.shape == (2,) and ((conf > 0.5) & (conf <= 1.0)).all()
    # the confidence is its definition: each axis's largest probability mass in a window of 2 sigma either side
    # (however the exported graph sums the windows), and the points are forward's
    with torch.no_grad():
        prob = torch.softmax(head.logits(feats), -1)
        r = round(2 * head.sigma)
        mass = torch.nn.functional.pad(prob, (r, r)).unfold(-1, 2 * r + 1, 1).sum(-1).amax(-1)
        torch.testing.assert_close(conf, mass.prod(-1).mean(-1))
        torch.testing.assert_close(coords, head(feats))
    with pytest.raises(ConfigError, match="simcc"):
        SimCCHead(32, bins=0)


def test_simcc_head_with_a_stride_reads_the_pyramid_from_that_stride():
    """``stride=16``: the head reads the backbone's maps from stride 16 down (resnet18: 16 and 32), an 8x8 grid at
    128 px, and still gives (B, 68, 2) points; a stride the backbone does not have is refused by name."""
    backbone = Backbone("resnet18")
    head = build_head("simcc", backbone, stride=16, grid=8)
    assert head.pyramid and len(head.lateral) == 2 and not build_head("simcc", backbone).pyramid
    feats = head_features(backbone, head, torch.randn(2, 3, 128, 128))
    assert [f.shape[-1] for f in feats] == [8, 4]
    assert head(feats).shape == (2, 68, 2)
    with pytest.raises(ConfigError, match="stride-12"):
        build_head("simcc", backbone, stride=12)


@pytest.mark.parametrize("head", [{"name": "regression"}, {"name": "heatmap", "stride": 4}, {"name": "simcc", "grid": 2},
                                  {"name": "simcc", "stride": 16}])
def test_a_point_of_weight_zero_leaves_the_loss_and_all_ones_is_the_plain_mean(head):
    """Per-point weights (pseudo-labelled points the teacher is unsure of): moving a weight-0 point's label changes
    nothing; weights of one give exactly the unweighted loss."""
    cfg = {**MODEL, "backbone": {"name": "test_resnet"}, "head": head, "adapter": {"name": "none"}}
    torch.manual_seed(0)
    m = LandmarkModule(**cfg, input_size=64)
    m.train()
    batch = {"image": torch.randn(2, 3, 64, 64), "landmarks": torch.rand(2, 68, 2) * 63, "is_3d": torch.tensor([False, False])}
    plain = m.training_step(batch, 0).item()
    assert m.training_step({**batch, "point_weight": torch.ones(2, 68)}, 0).item() == plain
    weight = torch.ones(2, 68)
    weight[0, 30] = weight[1, 8] = 0.0
    weighted = m.training_step({**batch, "point_weight": weight}, 0).item()
    moved = batch["landmarks"].clone()
    moved[0, 30] += 20.0
    moved[1, 8] -= 15.0
    assert m.training_step({**batch, "landmarks": moved, "point_weight": weight}, 0).item() == pytest.approx(weighted)
    assert m.training_step({**batch, "landmarks": moved}, 0).item() != pytest.approx(plain)


def test_weighted_coordinate_loss_is_the_mean_over_the_weighted_points():
    loss = CoordLoss("l1", scale=1.0)
    pred, target = torch.zeros(1, 3, 2), torch.tensor([[[1.0, 0.0], [2.0, 0.0], [9.0, 0.0]]])
    assert loss(pred, target).item() == pytest.approx(4.0)
    assert loss(pred, target, torch.tensor([[1.0, 1.0, 0.0]])).item() == pytest.approx(1.5)
    assert loss(pred, target, torch.zeros(1, 3)).item() == 0.0
