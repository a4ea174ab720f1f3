"""Rasterise a procedural head: depth-sorted, back-face-culled, Lambert-shaded triangles (OpenCV).

Facial features (eyes, brows, lips, nostrils) are painted from the projected landmarks, so a feature
is exactly where its label says. The head is star-shaped around its centre, so back-face culling plus
a far-to-near painter's order gives the same picture a z-buffer would, at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from landmark_lab.data.procedural.head import DEG, Camera, HeadParams, surface

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_SCALE = float(1 << _SHIFT)

N_U, N_V = 44, 30
_U = np.linspace(-np.pi, np.pi, N_U + 1)
_V = np.linspace(-88 * DEG, 88 * DEG, N_V + 1)


def _grid_triangles(nu: int, nv: int, wrap_u: bool) -> np.ndarray:
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    a, b = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
    c, d = idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    return np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


_TRIS = _grid_triangles(N_U, N_V, wrap_u=True)


@dataclass
class Look:
    """Colours and lighting of one render."""

    skin: np.ndarray  # RGB 0..1
    hair: np.ndarray
    lips: np.ndarray
    iris: np.ndarray
    hairline_deg: float
    light: np.ndarray  # unit vector towards the light, camera frame
    ambient: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Look:
        """Draw skin tone, hair, lip and iris colours and a light."""
        tone = rng.uniform(0.0, 1.0) ** 1.5
        skin = (1 - tone) * np.array([0.95, 0.78, 0.66]) + tone * np.array([0.38, 0.24, 0.16])
        skin = np.clip(skin * rng.uniform(0.92, 1.08, 3), 0, 1)
        hair = np.array([0.08, 0.06, 0.05]) + rng.uniform(0, 1) ** 2 * np.array([0.6, 0.45, 0.25])
        lips = np.clip(skin * np.array([0.85, 0.55, 0.55]) + rng.normal(0, 0.03, 3), 0, 1)
        iris = rng.choice([np.array([0.25, 0.15, 0.08]), np.array([0.2, 0.35, 0.55]), np.array([0.3, 0.4, 0.2])])
        light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.3), -1.0])
        return cls(skin, hair, lips, iris, rng.uniform(22, 42), light / np.linalg.norm(light), rng.uniform(0.25, 0.45))


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A cluttered, smooth random background (uint8 RGB)."""
    low = rng.uniform(0, 255, (3, 4, 3)).astype(np.float32)
    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(2, 7)):
        colour = rng.uniform(0, 255, 3).tolist()
        if rng.random() < 0.5:
            p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            p1 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.rectangle(img, p0, p1, colour, -1)
        else:
            centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            axes = (int(rng.uniform(3, w / 3)), int(rng.uniform(3, h / 3)))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    img = cv2.GaussianBlur(img, (0, 0), 1.0 + w / 100)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _fix(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _SCALE).astype(np.int32)


def _shade(normals: np.ndarray, look: Look) -> np.ndarray:
    diffuse = np.clip(normals @ look.light, 0.0, 1.0)
    return look.ambient + (1 - look.ambient) * diffuse


def _draw_mesh(img: np.ndarray, params: HeadParams, cam: Camera, look: Look) -> None:
    uu, vv = np.meshgrid(_U, _V, indexing="ij")
    verts = surface(params, uu, vv).reshape(-1, 3)
    pc = cam.to_camera(verts)
    xy, _ = cam.project(verts)
    # A neck: a short cylinder under the head, drawn as part of the same depth-sorted mesh.
    nu, nv = 16, 3
    nth = np.linspace(-np.pi, np.pi, nu + 1)
    ny = np.linspace(-0.55, -2.2, nv + 1)
    tt, yy = np.meshgrid(nth, ny, indexing="ij")
    r = 0.42 * params.radii[0] / 0.78
    neck = np.stack([r * np.sin(tt), yy, r * np.cos(tt) - 0.2], -1).reshape(-1, 3)
    # The neck does not pitch/roll with the head as much; using the head pose is close enough here.
    neck_pc = cam.to_camera(neck)
    neck_xy, _ = cam.project(neck)
    tris = np.concatenate([_TRIS, _grid_triangles(nu, nv, True)[:, ::-1] + len(verts)])
    # The cylinder's param order winds the other way round; reversing keeps normals outward.
    all_pc = np.concatenate([pc, neck_pc])
    all_xy = np.concatenate([xy, neck_xy])
    p0, p1, p2 = all_xy[tris[:, 0]], all_xy[tris[:, 1]], all_xy[tris[:, 2]]
    area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    keep = area < -1e-9  # camera-facing (see head.facing)
    tris = tris[keep]
    q0, q1, q2 = all_pc[tris[:, 0]], all_pc[tris[:, 1]], all_pc[tris[:, 2]]
    n = np.cross(q1 - q0, q2 - q0)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    n *= -np.sign(n[:, 2:3] + 1e-12)  # point towards the camera
    shade = _shade(n, look)
    # Colour per triangle: hair above the hairline and on the back of the head.
    centre_idx = tris[:, 0]
    is_head = centre_idx < len(verts)
    ui = np.where(is_head, centre_idx // (N_V + 1), 0)
    vi = np.where(is_head, centre_idx % (N_V + 1), 0)
    u_deg, v_deg = _U[ui] / DEG, _V[vi] / DEG
    hair = is_head & ((v_deg > look.hairline_deg - 8 * np.cos(u_deg * DEG)) | ((np.abs(u_deg) > 95) & (v_deg > -15)))
    base = np.where(hair[:, None], look.hair, look.skin)
    base = np.where(is_head[:, None], base, look.skin * 0.85)
    colours = np.clip(base * shade[:, None] * 255.0, 0, 255)
    order = np.argsort(-(q0[:, 2] + q1[:, 2] + q2[:, 2]))
    pix = _fix(all_xy[tris[order]])
    cols = colours[order]
    for poly, col in zip(pix, cols, strict=True):
        cv2.fillConvexPoly(img, poly, col.tolist(), cv2.LINE_AA, _SHIFT)


def _poly(img: np.ndarray, pts: np.ndarray, colour: np.ndarray) -> None:
    cv2.fillPoly(img, [_fix(pts)], (colour * 255).tolist(), cv2.LINE_AA, _SHIFT)


def _draw_features(img: np.ndarray, lm: np.ndarray, vis: np.ndarray, look: Look, shade: float) -> None:
    iod = float(np.linalg.norm(lm[45] - lm[36])) + 1e-6
    dark = look.hair * 0.8
    for eye in (slice(36, 42), slice(42, 48)):
        if vis[eye].mean() < 0.5:
            continue
        pts = lm[eye]
        x0, y0 = np.floor(pts.min(0)).astype(int) - 2
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 3
        h, w = img.shape[:2]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = img[y0:y1, x0:x1]
        eye_img = roi.copy()
        local = pts - np.array([x0, y0])
        _poly(eye_img, local, np.array([0.92, 0.9, 0.86]) * shade)
        centre = local.mean(0)
        radius = 0.5 * max(np.ptp(local[:, 1]), 0.3 * np.ptp(local[:, 0]))
        cv2.circle(eye_img, tuple(_fix(centre)), int(radius * _SCALE), (look.iris * 255 * shade).tolist(), -1,
                   cv2.LINE_AA, _SHIFT)
        cv2.circle(eye_img, tuple(_fix(centre)), int(0.45 * radius * _SCALE), (10, 10, 10), -1, cv2.LINE_AA,
                   _SHIFT)
        mask = np.zeros(roi.shape[:2], np.uint8)
        cv2.fillPoly(mask, [_fix(local)], 255, cv2.LINE_AA, _SHIFT)
        a = mask[..., None].astype(np.float32) / 255.0
        roi[:] = (a * eye_img + (1 - a) * roi).astype(np.uint8)
        cv2.polylines(img, [_fix(pts[:4])], False, (dark * 255).tolist(), max(1, int(iod * 0.025)),
                      cv2.LINE_AA, _SHIFT)
    for brow in (slice(17, 22), slice(22, 27)):
        if vis[brow].mean() >= 0.5:
            cv2.polylines(img, [_fix(lm[brow])], False, (look.hair * 255 * shade).tolist(),
                          max(1, int(round(iod * 0.07))), cv2.LINE_AA, _SHIFT)
    if vis[31:36].mean() >= 0.5:
        for a, b in ((31, 32), (34, 35)):
            c = 0.5 * (lm[a] + lm[b]) + np.array([0.0, -0.02 * iod])
            ax = (max(1, int(0.05 * iod * _SCALE)), max(1, int(0.03 * iod * _SCALE)))
            cv2.ellipse(img, tuple(_fix(c)), ax, 0, 0, 360, (look.skin * 90 * shade).tolist(), -1, cv2.LINE_AA,
                        _SHIFT)
    if vis[48:60].mean() >= 0.5:
        _poly(img, lm[48:60], look.lips * shade)
        inner = lm[60:68]
        if np.ptp(inner[:, 1]) > 0.04 * iod:
            _poly(img, inner, np.array([0.18, 0.06, 0.06]))
        else:
            cv2.polylines(img, [_fix(np.r_[lm[48:49], inner[1:4], lm[54:55]])], False,
                          (look.lips * 120 * shade).tolist(), 1, cv2.LINE_AA, _SHIFT)


def render(
    params: HeadParams,
    cam: Camera,
    look: Look,
    landmarks: np.ndarray,
    visible: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Render a head over a random background as an RGB uint8 image of ``size`` (height, width)."""
    h, w = size
    img = background(rng, h, w)
    _draw_mesh(img, params, cam, look)
    face_light = float(np.clip(look.ambient + (1 - look.ambient) * max(0.0, -look.light[2]), 0.3, 1.0))
    _draw_features(img, landmarks, visible, look, face_light)
    return img


def silhouette(params: HeadParams, cam: Camera, size: tuple[int, int]) -> np.ndarray:
    """Binary mask (uint8, 255 = head) of the head alone, for checking outline labels."""
    uu, vv = np.meshgrid(_U, _V, indexing="ij")
    xy, _ = cam.project(surface(params, uu, vv).reshape(-1, 3))
    mask = np.zeros(size, np.uint8)
    for tri in _fix(xy[_TRIS]):
        cv2.fillConvexPoly(mask, tri, 255, cv2.LINE_8, _SHIFT)
    return mask
