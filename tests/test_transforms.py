import cv2
import numpy as np
import pytest
import torch

from landmark_lab.data.sample import Sample
from landmark_lab.errors import ConfigError
from landmark_lab.landmarks import FLIP_68, flip_landmarks
from landmark_lab.transforms.augment import build_pipeline
from landmark_lab.transforms.geometry import crop_matrix, hflip, warp
from landmark_lab.transforms.pipeline import FaceTransform

# A few landmarks far apart, each marked on the image by a blob of its own colour.
MARKED = {36: (255, 0, 0), 45: (0, 255, 0), 8: (0, 0, 255), 30: (255, 255, 0), 48: (255, 0, 255)}


def _marked_sample(h=120, w=160) -> Sample:
    rng = np.random.default_rng(0)
    lm = np.c_[rng.uniform(50, 110, 68), rng.uniform(30, 90, 68)].astype(np.float32)
    lm[36], lm[45], lm[8], lm[30], lm[48] = (55, 40), (105, 42), (80, 95), (82, 62), (62, 80)
    img = np.full((h, w, 3), 128, np.uint8)
    for k, colour in MARKED.items():
        cv2.circle(img, (int(lm[k, 0]), int(lm[k, 1])), 4, colour, -1)
    return Sample(img, lm, "real", "2d", "marked")


def _colour_at(img, pt):
    x, y = np.round(pt).astype(int)
    return img[y, x].astype(int)


def test_flip_permutation_is_an_involution_and_swaps_sides():
    assert np.array_equal(FLIP_68[FLIP_68], np.arange(68))
    lm = _marked_sample().landmarks
    f = flip_landmarks(lm, 160)
    assert np.allclose(flip_landmarks(f, 160), lm)
    assert f[36, 0] < f[45, 0]  # still the image-left eye corner at index 36
    assert np.isclose(f[36, 0], 159 - lm[45, 0])
    g = flip_landmarks(lm, 160, shift=0.75)  # labels 0.75 px right of symmetric: their mirrors are too
    assert np.allclose(g[:, 0], f[:, 0] + 1.5) and np.allclose(g[:, 1], f[:, 1])
    assert np.allclose(flip_landmarks(g, 160, shift=0.75), lm)  # still an involution


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_the_training_flip_keeps_the_labels_mirror_shift_in_crop_pixels(shift):
    """A mirrored training crop's labels are its unmirrored labels mirrored with the source's shift (image pixels)
    times the crop's scale."""
    s = _marked_sample()
    s.meta["mirror_shift"] = shift
    crop = {"size": 64, "scale": 1.25, "shift_jitter": 0.0, "zoom_jitter": 0.0}
    plain = FaceTransform(crop, train=True, flip_p=0.0, seed=0)(s)
    flipped = FaceTransform(crop, train=True, flip_p=1.0, seed=0)(s)
    m = plain["crop_matrix"].numpy()
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    expected = flip_landmarks(plain["landmarks"].numpy(), 64, shift * scale)
    assert np.allclose(flipped["landmarks"].numpy(), expected, atol=1e-4)
    assert torch.equal(flipped["image"], torch.flip(plain["image"], dims=[-1]))


def test_crop_maps_box_centre_to_crop_centre():
    m = crop_matrix((10, 20, 50, 40), 64, scale=1.0)
    centre = np.array([[30.0, 30.0]]) @ m[:, :2].T + m[:, 2]
    assert np.allclose(centre, 31.5)
    corner = np.array([[10.0, 30.0]]) @ m[:, :2].T + m[:, 2]
    assert np.isclose(corner[0, 0], 31.5 - 32 * 64 / 40 * 20 / 32)


@pytest.mark.parametrize("flip", [False, True])
def test_known_points_follow_crop_flip_and_rotation(flip):
    s = _marked_sample()
    img, pts = warp(s.image, s.landmarks, crop_matrix((40, 30, 120, 100), 96, scale=1.3), 96)
    if flip:
        img, pts = hflip(img, pts)
    aug = build_pipeline([{"name": "Affine", "rotate": [25, 25], "scale": [1.1, 1.1], "p": 1.0}])
    out = aug(image=img, keypoints=pts)
    img2, pts2 = out["image"], np.asarray(out["keypoints"])
    for k, colour in MARKED.items():
        # after a flip, the blob drawn for point k is now labelled with index FLIP_68[k]
        idx = int(np.nonzero(FLIP_68 == k)[0][0]) if flip else k
        assert np.abs(_colour_at(img2, pts2[idx]) - colour).max() < 60, (k, flip)


def test_face_transform_outputs_and_train_randomness():
    s = _marked_sample()
    tf = FaceTransform({"size": 64, "scale": 1.25}, train=False)
    out = tf(s)
    assert out["image"].shape == (3, 64, 64) and out["landmarks"].shape == (68, 2)
    # the landmark box is centred in the crop and spans size/scale pixels
    lm = out["landmarks"].numpy()
    assert np.allclose((lm.min(0) + lm.max(0)) / 2, 31.5, atol=0.01)
    assert np.isclose((lm.max(0) - lm.min(0)).max(), 64 / 1.25, atol=0.01)
    train = FaceTransform({"size": 64, "scale": 1.25, "shift_jitter": 0.05}, train=True, flip_p=0.5, seed=1)
    a, b = train(s)["landmarks"], train(s)["landmarks"]
    assert not np.allclose(a, b)


def test_augmentations_are_strict():
    with pytest.raises(ConfigError, match="rotat"):
        build_pipeline([{"name": "Affine", "rotat": [-10, 10]}])
    with pytest.raises(ConfigError, match="not an albumentations transform"):
        build_pipeline([{"name": "Afine"}])
    with pytest.raises(ConfigError, match="flip_p"):
        build_pipeline([{"name": "HorizontalFlip"}])


def test_shipped_augment_presets_build(tmp_path):
    from omegaconf import OmegaConf

    from .conftest import CONF

    for preset in (CONF / "augment").glob("*.yaml"):
        specs = OmegaConf.to_container(OmegaConf.load(preset))
        build_pipeline(specs.get("transforms"))  # domain_adapt takes its shared list from basic
        build_pipeline(specs.get("synthetic_transforms"))


def _domain_adapt_leaves() -> list[dict]:
    from omegaconf import OmegaConf

    from landmark_lab.transforms.augment import leaves

    from .conftest import CONF

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "augment" / "domain_adapt.yaml"))
    basic = OmegaConf.to_container(OmegaConf.load(CONF / "augment" / "basic.yaml"))
    return leaves(basic["transforms"] + cfg["synthetic_transforms"])


GEOMETRIC = ("Affine", "Perspective")


@pytest.mark.parametrize("spec", _domain_adapt_leaves(), ids=lambda s: s["name"])
def test_every_domain_adapt_transform_keeps_landmarks_on_the_face(spec):
    s = _marked_sample()
    crop = FaceTransform({"size": 96, "scale": 1.6}, train=False)
    img, pts, _ = crop.geometry(s)
    pipe = build_pipeline([{**spec, "p": 1.0}])
    for seed in range(4):
        pipe.set_random_seed(seed)
        out = pipe(image=img, keypoints=pts)
        img2, pts2 = out["image"], np.asarray(out["keypoints"], np.float32)
        assert img2.shape == img.shape and pts2.shape == (68, 2)
        if spec["name"] not in GEOMETRIC:
            np.testing.assert_array_equal(pts2, pts)  # pixel-level transforms never move points
            continue
        assert not np.allclose(pts2, pts)
        for k, colour in MARKED.items():
            assert np.abs(_colour_at(img2, pts2[k]) - colour).max() < 70, (spec["name"], k, seed)


def test_albumentations_1x_names_fail_and_synthetic_transforms_only_touch_synthetic():
    with pytest.raises(ConfigError, match="fog_coef_lower"):
        build_pipeline([{"name": "RandomFog", "fog_coef_lower": 0.1}])
    with pytest.raises(ConfigError, match="non-empty 'transforms'"):
        build_pipeline([{"name": "OneOf"}])
    with pytest.raises(ConfigError, match="flip_p"):
        build_pipeline([{"name": "OneOf", "transforms": [{"name": "HorizontalFlip"}]}])
    dark = [{"name": "RandomBrightnessContrast", "brightness_limit": [-0.5, -0.5], "contrast_limit": [0, 0], "p": 1.0}]
    tf = FaceTransform({"size": 64}, train=True, synthetic_augment=dark, seed=0)
    real = _marked_sample()
    synthetic = Sample(real.image, real.landmarks, "synthetic", "3d", "syn")
    assert tf(synthetic)["image"].mean() < tf(real)["image"].mean() - 0.5
