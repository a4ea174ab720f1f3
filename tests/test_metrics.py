import math

import pytest
import torch

from landmark_lab.metrics import NME, LandmarkMetrics, auc, ced_curve, failure_rate, nme_per_face


def _face(iod: float = 10.0) -> torch.Tensor:
    """A target with outer eye corners (36, 45) iod apart, eye centres 6 apart, box 20 x 30."""
    t = torch.zeros(68, 2)
    t[:, 0] = torch.linspace(0, 20, 68)
    t[:, 1] = torch.linspace(0, 30, 68)
    t[36:42] = torch.tensor([7.0, 10.0])
    t[42:48] = torch.tensor([13.0, 10.0])
    t[36] = torch.tensor([5.0, 10.0])
    t[45] = torch.tensor([5.0 + iod, 10.0])
    return t


def test_nme_by_hand():
    target = _face(10.0)[None]
    pred = target.clone()
    pred[0, :, 0] += 1.0  # every point 1 px off
    assert torch.isclose(nme_per_face(pred, target, "inter_ocular"), torch.tensor([0.1]))
    # eye centres: mean of 36-41 = ((5 + 5*7)/6, 10), of 42-47 = ((5*13 + 15)/6, 10)
    ip = (5 * 13 + 15) / 6 - (5 + 5 * 7) / 6
    assert torch.isclose(nme_per_face(pred, target, "inter_pupil"), torch.tensor([1 / ip]))
    assert torch.isclose(nme_per_face(pred, target, "box"), torch.tensor([1 / math.sqrt(20 * 30)]))


def test_fr_auc_ced_by_hand():
    e = torch.tensor([0.02, 0.05, 0.09, 0.12])
    assert failure_rate(e, 0.08) == 0.5 and failure_rate(e, 0.10) == 0.25
    # AUC@0.1 = mean(max(0, 1 - e / 0.1)) = (0.8 + 0.5 + 0.1 + 0) / 4
    assert torch.isclose(auc(e, 0.10), torch.tensor(0.35))
    xs, ys = ced_curve(e, 0.1, 11)
    assert ys[0] == 0 and torch.isclose(ys[5], torch.tensor(0.5)) and torch.isclose(ys[-1], torch.tensor(0.75))
    # the closed form equals the numerical integral of the CED curve
    xs, ys = ced_curve(e, 0.1, 100001)
    assert torch.isclose(torch.trapezoid(ys, xs) / 0.1, auc(e, 0.1), atol=1e-4)


def test_metric_classes_accumulate_and_regions():
    target = torch.stack([_face(10.0), _face(20.0)])
    pred = target.clone()
    pred[:, :17, 1] += 2.0  # only the jaw is off
    m = LandmarkMetrics()
    m.update(pred[:1], target[:1])
    m.update(pred[1:], target[1:])
    out = m.compute()
    assert torch.isclose(out["nme_io"], torch.tensor((2 * 17 / 68 / 10 + 2 * 17 / 68 / 20) / 2))
    assert torch.isclose(out["nme_io_jaw"], torch.tensor((0.2 + 0.1) / 2))
    assert out["nme_io_inner"] == 0 and out["nme_io_eyes"] == 0 and out["count"] == 2
    assert out["fr_io@0.08"] == 0 and torch.isclose(out["auc_io@0.1"], 1 - out["nme_io"] / 0.1)
    nme = NME("inter_ocular")
    nme.update(pred, target)
    assert torch.isclose(nme.compute(), out["nme_io"])
    with pytest.raises(ValueError, match="unknown NME normaliser"):
        NME("eyes")
