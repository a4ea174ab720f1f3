"""Heatmaps: Gaussian targets, the heatmap loss, and sub-pixel decoding (DARK and local soft-argmax).

Map cell ``(i, j)`` covers normalised crop coordinates ``[j/W, (j+1)/W) x [i/H, (i+1)/H)``; its centre is
``((j + 0.5)/W, (i + 0.5)/H)``, the same pixel-centre convention as the rest of the model. Everything here is
plain tensor arithmetic (argmax, gather, pad), so it exports to ONNX with the network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from landmark_lab.models.losses import weighted_mean
from landmark_lab.registry import Registry


def gaussian_targets(points: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """``(B, K, 2)`` normalised points -> ``(B, K, H, W)`` unnormalised Gaussians (peak 1 at the point)."""
    xs = torch.arange(width, device=points.device, dtype=points.dtype)
    ys = torch.arange(height, device=points.device, dtype=points.dtype)
    cx = points[..., 0:1] * width - 0.5  # (B, K, 1) in map cells
    cy = points[..., 1:2] * height - 0.5
    gx = torch.exp(-((xs - cx) ** 2) / (2 * sigma**2))  # (B, K, W)
    gy = torch.exp(-((ys - cy) ** 2) / (2 * sigma**2))  # (B, K, H)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def heatmap_loss(maps: torch.Tensor, points: torch.Tensor, sigma: float, foreground_weight: float = 0.0,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error to Gaussian targets, summed over each map's cells and averaged over maps and samples.

    Summing over cells (not averaging) keeps the loss at the scale of the coordinate losses (a map that is all
    zeros scores ``pi * sigma**2``), so one learning rate suits both. ``foreground_weight``: extra weight on
    cells near the point (target > 0.1), the usual cure for maps that collapse to zero on small data. ``weight``
    (B, K): each map's weight in the average (0 leaves a map out).
    """
    if maps.numel() == 0:
        return maps.sum() * 0.0
    target = gaussian_targets(points, maps.shape[-2], maps.shape[-1], sigma)
    err = (maps - target) ** 2
    if foreground_weight:
        err = err * (1.0 + foreground_weight * (target > 0.1).to(err.dtype))
    per_map = err.flatten(2).sum(-1)
    return per_map.mean() if weight is None else weighted_mean(per_map, weight)


def _neighbourhood(maps: torch.Tensor, radius: int, fill: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each map's argmax cell ``(px, py)`` and the ``(2r+1)^2`` values around it ``(B, K, (2r+1)^2)``, row-major,
    with ``fill`` outside the map."""
    w = maps.shape[-1]
    idx = maps.flatten(2).argmax(-1)
    px, py = idx % w, torch.div(idx, w, rounding_mode="floor")
    padded = F.pad(maps, (radius, radius, radius, radius), value=fill).flatten(2)
    pw = w + 2 * radius
    offsets = torch.tensor([dy * pw + dx for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)],
                           device=maps.device)
    centre = (py + radius) * pw + (px + radius)
    values = padded.gather(2, centre.unsqueeze(-1) + offsets)
    return px.to(maps.dtype), py.to(maps.dtype), values


def _to_normalised(x: torch.Tensor, y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return torch.stack([(x + 0.5) / width, (y + 0.5) / height], dim=-1)


def decode_argmax(maps: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """The peak cell's centre (quantised to the map's stride; the ablation's floor)."""
    px, py, _ = _neighbourhood(maps, 0, 0.0)
    return _to_normalised(px, py, *maps.shape[-2:])


def decode_local(maps: torch.Tensor, sigma: float = 1.5, radius: int = 2) -> torch.Tensor:
    """Local soft-argmax: the mean of the cell centres in a window around the peak, weighted by the (positive)
    map values there. Differentiable in the window's values."""
    px, py, values = _neighbourhood(maps, radius, 0.0)
    weight = values.clamp_min(0.0)
    r = torch.arange(-radius, radius + 1, device=maps.device, dtype=maps.dtype)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    total = weight.sum(-1).clamp_min(1e-6)
    ox = (weight * dx.reshape(-1)).sum(-1) / total
    oy = (weight * dy.reshape(-1)).sum(-1) / total
    return _to_normalised(px + ox, py + oy, *maps.shape[-2:])


def _blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    r = torch.arange(-radius, radius + 1, device=maps.device, dtype=maps.dtype)
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    b, k, h, w = maps.shape
    x = maps.reshape(b * k, 1, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), g.view(1, 1, -1, 1))
    return x.reshape(b, k, h, w)


def decode_dark(maps: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """DARK (Zhang et al. 2020): smooth the map with the target's Gaussian, take its log, and move from the
    peak cell by the Newton step ``-H^-1 g`` of a second-order Taylor expansion there (clamped to one cell;
    no step where the log-map is not concave)."""
    smooth = _blur(maps, sigma)
    # Rescale so the peak keeps its height, then log: the log of a Gaussian is a quadratic, fitted exactly.
    peak = maps.flatten(2).amax(-1).clamp_min(1e-10)[..., None, None]
    smooth = smooth * (peak / smooth.flatten(2).amax(-1).clamp_min(1e-10)[..., None, None])
    px, py, v = _neighbourhood(smooth.clamp_min(1e-10).log(), 1, math.log(1e-10))
    dx = 0.5 * (v[..., 5] - v[..., 3])
    dy = 0.5 * (v[..., 7] - v[..., 1])
    dxx = v[..., 5] - 2 * v[..., 4] + v[..., 3]
    dyy = v[..., 7] - 2 * v[..., 4] + v[..., 1]
    dxy = 0.25 * (v[..., 8] - v[..., 6] - v[..., 2] + v[..., 0])
    det = dxx * dyy - dxy**2
    ok = (det > 1e-6) & (dxx < 0) & (dyy < 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    ox = torch.where(ok, -(dyy * dx - dxy * dy) / safe, torch.zeros_like(det)).clamp(-1.0, 1.0)
    oy = torch.where(ok, -(dxx * dy - dxy * dx) / safe, torch.zeros_like(det)).clamp(-1.0, 1.0)
    return _to_normalised(px + ox, py + oy, *maps.shape[-2:])


DECODERS: Registry = Registry("heatmap decoder", "model.head.decode")
DECODERS.register("dark")(decode_dark)
DECODERS.register("local")(decode_local)
DECODERS.register("argmax")(decode_argmax)
