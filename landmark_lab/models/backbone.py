"""Swappable timm backbones: any ``timm.create_model`` name, feature maps out."""

from __future__ import annotations

import difflib
from pathlib import Path

import timm
import torch
from torch import nn

from landmark_lab.errors import ConfigError


def _check_name(name: str) -> None:
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"model.backbone.name={name!r} is not a timm model.{hint} "
        "List them with: python -c \"import timm; print(timm.list_models('*resnet*'))\""
    )


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local state dict (``.pth``/``.pt``/``.bin`` or ``.safetensors``) into the backbone."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.backbone.checkpoint_path={str(path)!r}: file not found.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"model.backbone.checkpoint_path={str(path)!r}: cannot read weights ({exc}).") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ConfigError(
            f"model.backbone.checkpoint_path={str(path)!r}: none of its {len(state)} tensors match the "
            f"{type(model).__name__} backbone's parameters (wrong architecture?)."
        )
    model.load_state_dict(usable, strict=False)


class Backbone(nn.Module):
    """A timm model without its classifier; ``forward`` returns the last feature map (B, C, H, W)."""

    def __init__(self, name: str = "resnet18", pretrained: bool = False, checkpoint_path: str | None = None,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        _check_name(name)
        self.name = name
        kwargs = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
        try:
            self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, global_pool="", **kwargs)
        except Exception as exc:
            if not pretrained:
                raise
            raise ConfigError(
                f"could not fetch pretrained weights for {name!r} ({type(exc).__name__}: {exc}). This machine "
                "may not reach the model hub. Use model.backbone.pretrained=false, or download the weights "
                "elsewhere and set model.backbone.checkpoint_path=/path/to/weights.safetensors."
            ) from None
        if checkpoint_path:
            load_weights(self.model, checkpoint_path)
        self.num_features = int(self.model.num_features)
        info = getattr(self.model, "feature_info", None) or []
        # (index, channels, stride) of every feature level timm reports, for heads that read a pyramid
        self.levels = [(i, int(f["num_chs"]), int(f["reduction"])) for i, f in enumerate(info)]

    def pyramid_levels(self, min_stride: int) -> list[tuple[int, int, int]]:
        """``(index, channels, stride)`` of the feature levels at ``min_stride`` and coarser, one per stride
        (the last level of each stride: the deepest features at that resolution)."""
        by_stride: dict[int, tuple[int, int, int]] = {}
        for level in self.levels:
            if level[2] >= min_stride:
                by_stride[level[2]] = level
        if min_stride not in by_stride or not hasattr(self.model, "forward_intermediates"):
            have = sorted({lv[2] for lv in self.levels})
            raise ConfigError(
                f"backbone {self.name!r} has no stride-{min_stride} feature map for this head (it has strides "
                f"{have}). Choose a convolutional backbone such as resnet18, or set model.head.stride to one of them."
            )
        return [by_stride[s] for s in sorted(by_stride)]

    def forward_pyramid(self, x: torch.Tensor, min_stride: int) -> list[torch.Tensor]:
        """Feature maps from stride ``min_stride`` (first) to the coarsest (last)."""
        levels = self.pyramid_levels(min_stride)
        return self.model.forward_intermediates(x, indices=[lv[0] for lv in levels], intermediates_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.model.forward_features(x)
        if feats.ndim != 4:
            raise ConfigError(
                f"backbone returned features of shape {tuple(feats.shape)}; landmark heads need a CNN-style "
                "(B, C, H, W) feature map. Choose a convolutional backbone (resnet, mobilenetv3, efficientnet, "
                "hrnet, convnext)."
            )
        return feats
