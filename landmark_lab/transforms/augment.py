"""Albumentations pipelines built from config, strictly: a misspelt argument is an error, not a warning.

albumentations 2.x only *warns* about unknown arguments and then ignores them, so a typo in a
config would silently disable an augmentation. Building under ``warnings`` as errors turns that
into a :class:`ConfigError` naming the transform and argument.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A

from landmark_lab.errors import ConfigError

CONTAINERS = ("OneOf", "SomeOf", "Sequential")
MIRRORS = ("HorizontalFlip", "VerticalFlip", "Transpose", "D4", "RandomRotate90")


def leaves(specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The individual transforms of a config list, containers (``OneOf`` ...) opened up."""
    out: list[dict[str, Any]] = []
    for spec in specs:
        if spec.get("name") in CONTAINERS:
            out += leaves(spec.get("transforms", []))
        else:
            out.append(dict(spec))
    return out


def build_transform(spec: Mapping[str, Any]) -> A.BasicTransform:
    """One albumentations transform from ``{"name": ClassName, **kwargs}``; ``OneOf``/``SomeOf``/
    ``Sequential`` take their children from ``transforms``."""
    spec = dict(spec)
    name = spec.pop("name", None)
    cls = getattr(A, str(name), None) if name else None
    if cls is None or not isinstance(cls, type):
        raise ConfigError(f"augmentation {name!r} is not an albumentations transform (check the spelling in conf/augment/).")
    if name in CONTAINERS:
        children = spec.pop("transforms", None)
        if not children:
            raise ConfigError(f"augmentation {name} needs a non-empty 'transforms' list.")
        spec["transforms"] = [build_transform(c) for c in children]
    # Lists from YAML become tuples: albumentations validates ranges as tuples.
    kwargs = {k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) and k != "transforms" else v
              for k, v in spec.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return cls(**kwargs)
        except (UserWarning, TypeError, ValueError) as exc:
            raise ConfigError(f"augmentation {name}({kwargs}) is invalid: {exc}") from None


def build_pipeline(specs: Sequence[Mapping[str, Any]] | None) -> A.Compose | None:
    """A keypoint-aware ``Compose`` of the given transforms, or ``None`` for no augmentation.

    Keypoints are kept even when they leave the image (``remove_invisible=False``) so there are
    always 68. ``HorizontalFlip`` is refused: it would not swap left/right landmark indices; use
    the data pipeline's ``flip_p`` instead, which does.
    """
    if not specs:
        return None
    for spec in leaves(specs):
        if spec.get("name") in MIRRORS:
            raise ConfigError(
                f"augmentation {spec.get('name')} would mirror the face without swapping left/right "
                "landmark indices; set data.transform.flip_p instead."
            )
    transforms = [build_transform(s) for s in specs]
    with warnings.catch_warnings():
        # A pixel-only list (blur, noise ...) has nothing that moves keypoints; that is fine.
        warnings.filterwarnings("ignore", "Got processor for keypoints")
        return A.Compose(transforms, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))
