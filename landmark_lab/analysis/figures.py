"""The domain-gap figures: framing distributions, augmentations on a face, label ambiguity, conventions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from landmark_lab.landmarks import REGIONS
from landmark_lab.utils.drawing import draw_points, pyplot

REGION_COLOURS = {"jaw": (230, 60, 60), "brows": (240, 170, 0), "nose": (40, 170, 40), "eyes": (40, 120, 240),
                  "mouth": (200, 60, 200)}


def draw_regions(image: np.ndarray, pts: np.ndarray, scale: int = 1, radius: int = 2) -> np.ndarray:
    """Landmarks drawn on an RGB copy, one colour per region (so a swapped index shows)."""
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) if scale != 1 else image.copy()
    for name, idx in REGIONS.items():
        draw_points(big, np.asarray(pts)[list(idx)], REGION_COLOURS[name], radius, scale)
    return big


def framing_figure(real: Mapping[str, np.ndarray], before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                   distances: Mapping[str, tuple[float, float]], path: Path,
                   names: tuple[str, str] = ("real", "synthetic")) -> None:
    """Width/height scatter before and after imitation (the study's Figure 4) and one histogram per framing column."""
    plt = pyplot()
    cols = list(real)
    fig, axes = plt.subplots(2, 4, figsize=(17, 8), dpi=110)
    w, h = "image width (px)", "image height (px)"
    for ax, syn, title in ((axes[0, 0], before, "before imitation"), (axes[0, 1], after, "after imitation")):
        ax.scatter(real[w], real[h], s=6, alpha=0.5, label=names[0])
        ax.scatter(syn[w], syn[h], s=10, alpha=0.6, label=names[1], zorder=3)
        ax.set_xlabel(w)
        ax.set_ylabel(h)
        ax.set_title(f"image size, {title}")
        ax.legend()
    for ax, col in zip(list(axes[0, 2:]) + list(axes[1]), [c for c in cols if c not in (w, h)] + [w], strict=False):
        lo = min(np.min(real[col]), np.min(before[col]), np.min(after[col]))
        hi = max(np.max(real[col]), np.max(before[col]), np.max(after[col]))
        bins = np.linspace(lo, hi + 1e-9, 30)
        ax.hist(real[col], bins, alpha=0.45, density=True, label=names[0])
        ax.hist(before[col], bins, histtype="step", lw=1.8, density=True, label=f"{names[1]} before")
        ax.hist(after[col], bins, histtype="step", lw=1.8, ls="--", density=True, label=f"{names[1]} after")
        d0, d1 = distances[col]
        ax.set_title(f"{col}\nKS distance {d0:.2f} -> {d1:.2f}")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(cols) + 1:]:
        ax.axis("off")
    fig.suptitle("Framing of real vs synthetic faces, before and after crop imitation")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def augment_grid(tiles: list[tuple[str, np.ndarray, np.ndarray]], path: Path, cols: int = 6, scale: int = 2) -> None:
    """One face per augmentation, landmarks drawn by region, the transform's name above each."""
    plt = pyplot()
    rows = (len(tiles) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 2.8), dpi=110)
    for ax in np.atleast_1d(axes).flat:
        ax.axis("off")
    for ax, (name, image, pts) in zip(np.atleast_1d(axes).flat, tiles, strict=False):
        ax.imshow(draw_regions(image, pts, scale))
        ax.set_title(name, fontsize=8)
    fig.suptitle("Augmentations on one face (colours = landmark regions: jaw red, brows orange, nose green, "
                 "eyes blue, mouth purple)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def ambiguity_figure(measures: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], path: Path) -> None:
    """One row per measure: the mean shape of each dataset with per-point std as circles, and the stds
    side by side by landmark index."""
    plt = pyplot()
    rows = len(measures)
    n = len(next(iter(measures.values())))
    fig, axes = plt.subplots(rows, n + 1, figsize=(5 * n + 7, 5 * rows), dpi=110, squeeze=False,
                             gridspec_kw={"width_ratios": [1] * n + [1.6]})
    for row, (measure, results) in zip(axes, measures.items(), strict=True):
        vmax = max(float(std.max()) for std, _ in results.values())
        # Circles in shape units (the mean shape has unit inter-ocular distance), magnified so the largest
        # is 0.15 of the inter-ocular distance; the magnification is in the title.
        mag = 0.15 / max(vmax, 1e-9)
        cmap = plt.get_cmap("magma_r")
        for ax, (name, (std, mean)) in zip(row[:n], results.items(), strict=True):
            for (x, y), v in zip(mean, std, strict=True):
                ax.add_patch(plt.Circle((x, y), v * mag, color=cmap(v / vmax), alpha=0.7, lw=0.3, ec="k"))
            ax.plot(mean[:, 0], mean[:, 1], "k.", ms=2)
            pad = 0.2
            ax.set_xlim(mean[:, 0].min() - pad, mean[:, 0].max() + pad)
            ax.set_ylim(mean[:, 1].max() + pad, mean[:, 1].min() - pad)
            ax.set_aspect("equal")
            ax.set_title(f"{name}\n{measure} (circles x{mag:.1f})", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        sc = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, vmax * 100))
        fig.colorbar(sc, ax=row[:n].tolist(), shrink=0.8, label="% inter-ocular")
        ax = row[n]
        for name, (std, _) in results.items():
            ax.plot(np.arange(68), std * 100, marker=".", label=name)
        for region, idx in REGIONS.items():
            ax.axvspan(idx[0] - 0.5, idx[-1] + 0.5, color=np.array(REGION_COLOURS[region]) / 255, alpha=0.08)
            ax.text(np.mean(idx), 0.02, region, ha="center", va="bottom", fontsize=8, transform=ax.get_xaxis_transform())
        ax.set_xlabel("landmark index (0-based)")
        ax.set_ylabel(f"{measure} (% inter-ocular)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("Label ambiguity per landmark (the study's Figure 6). Top: std after Procrustes alignment "
                 "(shape variation + labelling noise);\nbottom: what a low-dimensional shape model cannot "
                 "explain (mostly labelling noise).", fontsize=10)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def conventions_figure(panels: list[tuple[str, np.ndarray, dict[str, np.ndarray]]], path: Path) -> None:
    """Faces with several label sets overlaid (e.g. projected 3D vs 2D outline; model base vs adapted),
    zoomed on the face, each point of the first set joined to the same point of the second."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 6.2), dpi=110, squeeze=False)
    styles = [dict(marker="o", facecolors="none", edgecolors="tab:red", s=40, linewidths=1.5),
              dict(marker="x", color="tab:cyan", s=22, linewidths=1.5),
              dict(marker="+", color="tab:green", s=40, linewidths=1.5)]
    for ax, (title, image, labels) in zip(axes[0], panels, strict=True):
        ax.imshow(image)
        sets = list(labels.items())
        if len(sets) >= 2:  # the translation each point undergoes
            a, b = sets[0][1], sets[1][1]
            for p, q in zip(a, b, strict=True):
                ax.plot([p[0], q[0]], [p[1], q[1]], "-", color="yellow", lw=1)
        for (name, pts), style in zip(sets, styles, strict=False):
            ax.scatter(pts[:, 0], pts[:, 1], label=name, **style)
        allpts = np.concatenate([p for _, p in sets])
        lo, hi = allpts.min(0), allpts.max(0)
        pad = 0.15 * (hi - lo).max()
        ax.set_xlim(max(lo[0] - pad, -0.5), min(hi[0] + pad, image.shape[1] - 0.5))
        ax.set_ylim(min(hi[1] + pad, image.shape[0] - 0.5), max(lo[1] - pad, -0.5))
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
        ax.axis("off")
    fig.suptitle("Label conventions: projected 3D points ('x-ray' jaw)\nvs the visible 2D outline an annotator clicks",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
