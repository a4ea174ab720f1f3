"""Landmark heads: feature map (B, C, H, W) -> landmarks (B, 68, 2) in normalised crop coordinates.

Normalised coordinates are ``(pixel + 0.5) / input_size``: 0 and 1 are the crop's outer edges.
Every head subclasses :class:`LandmarkHead`, so a heatmap head drops in where the regression head was, and the
model, the inference network and export ask the base class what a head can do instead of probing attributes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from landmark_lab.errors import ConfigError
from landmark_lab.landmarks import NUM_LANDMARKS
from landmark_lab.models.heatmaps import DECODERS, decode_local, heatmap_loss
from landmark_lab.models.losses import weighted_mean
from landmark_lab.registry import Registry


class LandmarkHead(nn.Module):
    """What every landmark head is: ``forward(features) -> (B, K, 2)`` normalised coordinates, plus

    - ``pyramid``: False to read the backbone's last feature map (constructed with its channel count), True to read
      the list of maps from its ``stride`` attribute down (constructed with the list of their channel counts); a
      head whose options decide it (SimCC with or without ``stride``) overrides :meth:`reads_pyramid` and sets the
      instance's ``pyramid``;
    - ``has_maps``: True for heads trained on heatmaps too; they implement :meth:`forward_with_maps`,
      :meth:`map_loss` and carry ``coord_weight`` (the coordinate loss's weight beside the map loss);
    - :meth:`init_mean_shape` (a coordinate bias to start from the mean face; default none) and
      :meth:`forward_with_confidence` (default: no confidence, NaN).

    Register a new head with ``HEADS.register("name")`` and select it with ``model.head.name=name``.
    """

    pyramid: bool = False
    has_maps: bool = False
    coord_weight: float = 1.0

    @classmethod
    def reads_pyramid(cls, options: dict) -> bool:
        """Whether the head built with ``options`` reads the pyramid (default: the class's ``pyramid``)."""
        return cls.pyramid

    def init_mean_shape(self, mean_shape: torch.Tensor) -> None:
        """Start from ``mean_shape`` (normalised, ``(K, 2)``); heads without a coordinate bias ignore it."""

    def forward_with_confidence(self, feats: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks and a per-face confidence in [0, 1] (NaN for a head that has none)."""
        coords = self(feats)
        return coords, torch.full(coords.shape[:1], float("nan"), dtype=coords.dtype, device=coords.device)

    def forward_with_maps(self, feats: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks and the heatmaps :meth:`map_loss` supervises (heads with ``has_maps`` only)."""
        raise NotImplementedError(f"{type(self).__name__} has no heatmaps (has_maps is False)")

    def map_loss(self, maps: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The heatmap loss against normalised target points ``(B, K, 2)``, each map weighted by ``weight``
        ``(B, K)`` where given (heads with ``has_maps`` only)."""
        raise NotImplementedError(f"{type(self).__name__} has no heatmaps (has_maps is False)")



class RegressionHead(LandmarkHead):
    """Global average pool + linear regression of the 136 coordinates."""

    def __init__(self, in_channels: int, num_points: int = NUM_LANDMARKS, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_points = num_points
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_points * 2)
        nn.init.normal_(self.fc.weight, std=1e-3)
        nn.init.constant_(self.fc.bias, 0.5)

    def init_mean_shape(self, mean_shape: torch.Tensor) -> None:
        """Start from the mean training shape, so step 0 already predicts a face."""
        with torch.no_grad():
            self.fc.bias.copy_(mean_shape.reshape(-1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.drop(feats.mean(dim=(2, 3)))
        return self.fc(x).view(-1, self.num_points, 2)


class IntegralHead(LandmarkHead):
    """Heatmap head with soft-argmax (integral regression): upsample, one map per point, expectation."""

    def __init__(self, in_channels: int, num_points: int = NUM_LANDMARKS, channels: int = 128,
                 upsample: int = 2, beta: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        for _ in range(upsample):
            layers += [nn.ConvTranspose2d(channels, channels, 4, 2, 1, bias=False), nn.BatchNorm2d(channels),
                       nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.maps = nn.Conv2d(channels, num_points, 1)
        self.beta = beta

    def _prob(self, feats: torch.Tensor) -> torch.Tensor:
        maps = self.maps(self.body(feats))
        b, k, h, w = maps.shape
        return F.softmax(self.beta * maps.view(b, k, -1), dim=-1).view(b, k, h, w)

    @staticmethod
    def _expectation(prob: torch.Tensor) -> torch.Tensor:
        h, w = prob.shape[-2:]
        xs = (torch.arange(w, device=prob.device, dtype=prob.dtype) + 0.5) / w
        ys = (torch.arange(h, device=prob.device, dtype=prob.dtype) + 0.5) / h
        x = (prob.sum(2) * xs).sum(-1)
        y = (prob.sum(3) * ys).sum(-1)
        return torch.stack([x, y], dim=-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self._expectation(self._prob(feats))

    def forward_with_confidence(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks and a confidence in [0, 1]: the probability mass in the 3x3 heatmap cells around each
        point's peak, averaged over the points (a sharp, single peak scores near 1; a diffuse map near 0)."""
        prob = self._prob(feats)
        mass = F.avg_pool2d(prob, 3, stride=1, padding=1, count_include_pad=True) * 9.0
        return self._expectation(prob), mass.flatten(2).amax(-1).mean(-1)


def pyramid_layers(in_channels: list[int], channels: int) -> tuple[nn.ModuleList, nn.Sequential]:
    """A feature pyramid's layers, as a head's ``lateral`` and ``smooth`` attributes: a 1x1 projection of each level
    to ``channels`` (for :func:`top_down`) and the 3x3 convolution, BatchNorm and ReLU on the merged map."""
    lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
    smooth = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                           nn.ReLU(inplace=True))
    return lateral, smooth


def top_down(lateral: nn.ModuleList, feats: list[torch.Tensor]) -> torch.Tensor:
    """A feature pyramid's top-down pathway (Lin et al. 2017): each map through its 1x1 ``lateral`` projection, the
    coarser sum upsampled onto the finer level, down to the first (finest) map."""
    x = lateral[-1](feats[-1])
    for proj, f in zip(reversed(lateral[:-1]), reversed(feats[:-1]), strict=True):
        x = proj(f) + F.interpolate(x, size=f.shape[-2:], mode="nearest")
    return x


class HeatmapHead(LandmarkHead):
    """Gaussian heatmaps at ``stride`` (default 4) with sub-pixel decoding.

    A small feature pyramid (Lin et al. 2017) reads the backbone's maps from ``stride`` to its coarsest: each
    level is projected to ``channels`` by a 1x1 convolution and the coarser sum is upsampled onto it, so the
    finest map sees the deep features and keeps the fine position. A 3x3 convolution and a 1x1 one give one map
    per landmark. Training supervises the maps with Gaussian targets (``heatmap_loss``, ``sigma`` in map cells)
    and, with ``coord_weight``, the decoded coordinates too; ``decode`` (``dark`` | ``local`` | ``argmax``)
    turns maps into coordinates. The confidence is each map's peak height (1 on a target), averaged over points.
    """

    pyramid = True  # LandmarkModule passes the list of feature maps from ``stride`` down (Backbone.forward_pyramid)
    has_maps = True

    def __init__(self, in_channels: list[int], num_points: int = NUM_LANDMARKS, channels: int = 64, stride: int = 4,
                 sigma: float = 1.5, decode: str = "dark", coord_weight: float = 1.0, map_weight: float = 1.0,
                 foreground_weight: float = 0.0) -> None:
        super().__init__()
        self.stride, self.sigma, self.coord_weight, self.map_weight = int(stride), float(sigma), coord_weight, map_weight
        self.foreground_weight = float(foreground_weight)
        self.decoder = DECODERS.get(decode)
        self.lateral, self.smooth = pyramid_layers(in_channels, channels)
        self.maps = nn.Conv2d(channels, num_points, 1)
        nn.init.normal_(self.maps.weight, std=1e-3)
        nn.init.zeros_(self.maps.bias)

    def heatmaps(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """``(B, K, H/stride, W/stride)`` maps from the feature pyramid (finest first)."""
        x = top_down(self.lateral, feats)
        # float32 maps: the loss and the sub-pixel decoding (logs, Newton step) are too fine for bf16/fp16
        return self.maps(self.smooth(x)).float()

    def decode(self, maps: torch.Tensor) -> torch.Tensor:
        # Sub-pixel decoding takes logs and differences of near-equal values: keep it in float32 even under
        # bf16/fp16 autocast, which would otherwise run its blur convolution in half precision.
        if torch.is_autocast_enabled(maps.device.type):
            with torch.autocast(maps.device.type, enabled=False):
                return self.decoder(maps.float(), self.sigma)
        return self.decoder(maps, self.sigma)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.decode(self.heatmaps(feats))

    def forward_with_maps(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks for the coordinate loss and the maps for :meth:`map_loss`. In training the coordinates
        come from the local soft-argmax (differentiable in the map values; DARK's argmax step is not)."""
        maps = self.heatmaps(feats)
        coords = decode_local(maps, self.sigma) if self.training else self.decode(maps)
        return coords, maps

    def map_loss(self, maps: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Heatmap loss against normalised target points ``(B, K, 2)`` (maps weighted by ``weight`` (B, K))."""
        return self.map_weight * heatmap_loss(maps, target, self.sigma, self.foreground_weight, weight)

    def forward_with_confidence(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.heatmaps(feats)
        return self.decode(maps), maps.flatten(2).amax(-1).clamp(0.0, 1.0).mean(-1)


class SimCCHead(LandmarkHead):
    """SimCC-style coordinate classification (Li et al. 2022; RTMPose's head): each point's x and y as two 1-D
    distributions over ``bins`` sub-pixel bins across the crop, read from a feature map without pooling it away (the
    regression head's global average pool discards where the features are).

    A 1x1 convolution gives one map per point, resized to ``grid`` x ``grid`` where the map differs; each point's
    flattened map goes through a shared MLP (``hidden`` units) to its x and y logits. The map is the backbone's last
    one (4 x 4 at 128 px and stride 32), or with ``stride`` set (e.g. 16) a finer one: the pyramid from that stride
    down, merged top-down as the heatmap head does (``channels`` wide, a 3x3 convolution), so each point's map has
    more cells to say where it is (set ``grid`` to the crop size / ``stride``). Coordinates are the softmax
    expectation over bin centres (differentiable, sub-bin). Training: the KL divergence to Gaussian 1-D targets
    (``sigma`` in bins) as the map loss, and the coordinate loss on the expectation with ``coord_weight``. Its cost
    is the MLP, about ``K * (grid**2 * hidden + hidden * 2 * bins)`` multiply-adds (1.2 M at the defaults), plus the
    pyramid's convolutions at ``stride`` where set; both far below a stride-4 heatmap head's upsampling.
    """

    has_maps = True

    @classmethod
    def reads_pyramid(cls, options: dict) -> bool:
        return options.get("stride") is not None

    def __init__(self, in_channels: int | list[int], num_points: int = NUM_LANDMARKS, bins: int = 128,
                 hidden: int = 64, grid: int = 4, sigma: float = 2.0, coord_weight: float = 1.0,
                 map_weight: float = 1.0, stride: int | None = None, channels: int = 64) -> None:
        super().__init__()
        if min(bins, hidden, grid, channels) < 1 or sigma <= 0 or (stride is not None and stride < 1):
            raise ConfigError(f"model.head (simcc): bins={bins}, hidden={hidden}, grid={grid}, channels={channels} "
                              f"and stride={stride} must be positive whole numbers (stride may be null) and "
                              f"sigma={sigma} a positive number of bins.")
        self.num_points, self.bins, self.grid = num_points, int(bins), int(grid)
        self.sigma, self.coord_weight, self.map_weight = float(sigma), float(coord_weight), float(map_weight)
        self.pyramid = stride is not None  # LandmarkModule then passes the maps from ``stride`` down
        if self.pyramid:
            self.stride = int(stride)
            self.lateral, self.smooth = pyramid_layers(in_channels, channels)
            in_channels = channels
        self.reduce = nn.Conv2d(in_channels, num_points, 1)
        self.mlp = nn.Sequential(nn.LayerNorm(self.grid * self.grid), nn.Linear(self.grid * self.grid, hidden),
                                 nn.GELU(), nn.Linear(hidden, 2 * self.bins))
        self.register_buffer("centres", (torch.arange(self.bins, dtype=torch.float32) + 0.5) / self.bins,
                             persistent=False)

    def logits(self, feats: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """``(B, K, 2, bins)``: each point's x (index 0) and y (index 1) logits."""
        x = self.reduce(self.smooth(top_down(self.lateral, feats)) if self.pyramid else feats)
        if tuple(x.shape[-2:]) != (self.grid, self.grid):
            x = F.interpolate(x, size=(self.grid, self.grid), mode="bilinear", align_corners=False)
        # shapes from constants, not from x.shape: the exported graph then computes no shapes at run time
        # float32 logits: the softmax over many bins and the KL's logs are too fine for bf16/fp16
        return self.mlp(x.reshape(-1, self.num_points, self.grid * self.grid)).float().reshape(
            -1, self.num_points, 2, self.bins)

    def _decode(self, logits: torch.Tensor) -> torch.Tensor:
        return self._expectation(F.softmax(logits, dim=-1))

    def _expectation(self, prob: torch.Tensor) -> torch.Tensor:
        """Normalised coordinates: the mean bin centre under each axis's distribution ``prob``."""
        return (prob * self.centres.to(prob.dtype)).sum(-1)

    def forward(self, feats: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        return self._decode(self.logits(feats))

    def forward_with_maps(self, feats: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks and the 1-D logits ``(B, K, 2, bins)`` that :meth:`map_loss` supervises."""
        logits = self.logits(feats)
        return self._decode(logits), logits

    def targets(self, points: torch.Tensor) -> torch.Tensor:
        """Gaussian 1-D targets ``(B, K, 2, bins)`` around normalised points, each summing to 1 (points outside the
        crop are held at its edge: their coordinate loss still sees where they are)."""
        d = (self.centres.to(points.dtype) - points.clamp(0.0, 1.0).unsqueeze(-1)) * self.bins
        g = torch.exp(-(d**2) / (2 * self.sigma**2))
        return g / g.sum(-1, keepdim=True)

    def map_loss(self, maps: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """KL divergence of the predicted x and y distributions from the Gaussian targets, summed over both axes
        and averaged over points (weighted by ``weight`` (B, K))."""
        if maps.numel() == 0:
            return maps.sum() * 0.0
        t = self.targets(target.float())
        kl = (t * (torch.log(t.clamp_min(1e-12)) - F.log_softmax(maps, dim=-1))).sum(-1).sum(-1)  # (B, K)
        return self.map_weight * (kl.mean() if weight is None else weighted_mean(kl, weight))

    def forward_with_confidence(self, feats: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks and a confidence in [0, 1]: the probability within 2 sigma of each axis's peak, the two axes'
        product averaged over the points (a sharp, single peak scores near 1; a spread one near 0)."""
        prob = F.softmax(self.logits(feats), dim=-1)
        r = max(1, round(2 * self.sigma))
        # every window's sum as a 2-D average pool over (B, K, 2, bins) as it is: ONNX Runtime's 2-D pooling on one
        # thread takes about half the time of the 1-D pool over flattened rows (0.04 vs 0.075 ms at 68 x 2 x 128);
        # the one softmax serves the coordinates too (both: 7 % of an exported 128 px repghostnet_050)
        window = F.avg_pool2d(prob, (1, 2 * r + 1), stride=1, padding=(0, r), count_include_pad=True)
        mass = (window.amax(-1) * (2 * r + 1)).clamp(0.0, 1.0)
        return self._expectation(prob), mass.prod(-1).mean(-1)


def head_features(backbone: nn.Module, head: LandmarkHead, image: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
    """What ``head`` reads from ``backbone``: the last feature map, or the pyramid for heads that ask for it."""
    if head.pyramid:
        return backbone.forward_pyramid(image, head.stride)
    return backbone(image)


def build_head(name: str, backbone: nn.Module, **options: object) -> LandmarkHead:
    """The head called ``name`` for ``backbone`` (pyramid heads get the channels of each level they read)."""
    cls = HEADS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, LandmarkHead)):
        raise ConfigError(f"model.head.name={name}: {cls!r} is registered as a head but does not subclass "
                          "landmark_lab.models.heads.LandmarkHead (the contract the model and export rely on).")
    if cls.reads_pyramid(options):
        levels = backbone.pyramid_levels(int(options.get("stride", 4)))
        return cls([c for _, c, _ in levels], **options)
    return cls(backbone.num_features, **options)


HEADS: Registry[type[LandmarkHead]] = Registry("landmark head", "model.head.name")
HEADS.register("regression")(RegressionHead)
HEADS.register("integral")(IntegralHead)
HEADS.register("heatmap")(HeatmapHead)
HEADS.register("simcc")(SimCCHead)
