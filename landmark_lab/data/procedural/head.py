"""A small parametric 3D head with 68 landmarks defined on its surface.

The head is a deformed ellipsoid ``S(u, v)`` (``u``: azimuth, 0 = facing the camera, + = subject's
left; ``v``: elevation, + = up) in a head frame with x to the subject's left, y up and z out of the
face. Identity (proportions, nose, chin, landmark layout) and expression (mouth open, smile, brows,
eye openness) are random parameters. Every landmark is a surface point ``(u, v)``, so its 3D position
follows the same deformation as the mesh: projecting it gives the "3d" (x-ray) label convention.

This is a toy stand-in for a face renderer, built to make the study's domain gaps reproducible
offline; it is not a model of real anatomy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEG = np.pi / 180.0


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _base_layout() -> np.ndarray:
    """Mean landmark layout as (68, 2) surface coordinates (u, v) in degrees."""
    uv = np.zeros((68, 2))
    t = (np.arange(17) - 8) / 8.0
    uv[:17, 0] = 80.0 * t
    uv[:17, 1] = -58.0 + 52.0 * np.abs(t) ** 1.7
    brow_u = np.array([-42.0, -34.0, -25.0, -16.0, -8.0])
    brow_v = np.array([13.0, 17.5, 19.0, 18.5, 16.5])
    uv[17:22] = np.c_[brow_u, brow_v]
    uv[22:27] = np.c_[-brow_u[::-1], brow_v[::-1]]
    uv[27:31] = np.c_[np.zeros(4), [7.0, -1.0, -9.0, -17.0]]
    uv[31:36] = np.c_[[-11.0, -5.5, 0.0, 5.5, 11.0], [-20.0, -21.5, -22.0, -21.5, -20.0]]
    uv[36:42] = [[-37, 5], [-31, 8], [-22, 8], [-15, 5], [-22, 2.5], [-31, 2.5]]
    uv[42:48] = [[15, 5], [22, 8], [31, 8], [37, 5], [31, 2.5], [22, 2.5]]
    uv[48:60] = [[-22, -33], [-14, -30], [-5, -29], [0, -29.7], [5, -29], [14, -30],
                 [22, -33], [14, -37.5], [6, -39.5], [0, -40], [-6, -39.5], [-14, -37.5]]
    uv[60:68] = [[-19, -33], [-7, -32.3], [0, -32.4], [7, -32.3], [19, -33],
                 [7, -34.2], [0, -34.3], [-7, -34.2]]  # fmt: skip
    return uv


BASE_LAYOUT_DEG = _base_layout()
MOUTH_LINE_DEG = -33.0
# Landmarks below the mouth line: lower lips and chin follow the jaw when the mouth opens.
LOWER_FACE = np.array([5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59, 65, 66, 67])


@dataclass
class HeadParams:
    """Random identity and expression of one head."""

    radii: np.ndarray = field(default_factory=lambda: np.array([0.78, 1.0, 0.9]))
    jaw_taper: float = 0.25
    nose: float = 0.18
    chin: float = 0.06
    mouth_open: float = 0.0  # head units the lower face drops
    smile: float = 0.0  # -1 .. 1
    brow_raise: float = 0.0  # -1 .. 1
    eye_open: float = 1.0  # 0 closed .. 1.3 wide
    layout_jitter: np.ndarray = field(default_factory=lambda: np.zeros((68, 2)))

    @classmethod
    def sample(cls, rng: np.random.Generator) -> HeadParams:
        """Draw a random identity and expression."""
        radii = np.array([0.78, 1.0, 0.9]) * rng.uniform(0.9, 1.1, 3)
        # Symmetric identity jitter of the layout (eye spacing, mouth width, ...) plus a little asymmetry.
        sym = rng.normal(0.0, 1.2, (68, 2))
        from landmark_lab.landmarks import FLIP_68

        mirrored = sym[FLIP_68] * np.array([-1.0, 1.0])
        jitter = 0.5 * (sym + mirrored) + rng.normal(0.0, 0.3, (68, 2))
        scale_u = rng.uniform(0.92, 1.08)  # wider / narrower features
        jitter[:, 0] += BASE_LAYOUT_DEG[:, 0] * (scale_u - 1.0)
        open_ = rng.uniform(0.0, 0.14) if rng.random() < 0.4 else 0.0
        return cls(
            radii=radii,
            jaw_taper=rng.uniform(0.15, 0.35),
            nose=rng.uniform(0.12, 0.24),
            chin=rng.uniform(0.02, 0.1),
            mouth_open=open_,
            smile=rng.uniform(-0.5, 1.0),
            brow_raise=rng.uniform(-1.0, 1.0),
            eye_open=rng.uniform(0.5, 1.3),
            layout_jitter=jitter,
        )

    def layout_deg(self) -> np.ndarray:
        """Landmark surface coordinates (68, 2) in degrees, after identity and expression."""
        uv = BASE_LAYOUT_DEG + self.layout_jitter
        corners = [48, 54, 60, 64]
        uv[corners, 1] += 3.5 * self.smile
        uv[corners, 0] += 2.5 * self.smile * np.sign(uv[corners, 0])
        uv[[49, 53, 59, 55], 1] += 1.5 * self.smile
        uv[17:27, 1] += 3.0 * self.brow_raise
        for upper, lower, centre in (([37, 38], [40, 41], 5.0), ([43, 44], [46, 47], 5.0)):
            uv[upper, 1] = centre + (uv[upper, 1] - centre) * self.eye_open
            uv[lower, 1] = centre + (uv[lower, 1] - centre) * self.eye_open
        # Keep the inner lips on their side of the mouth line so they follow the right jaw.
        uv[[61, 62, 63], 1] = np.maximum(uv[[61, 62, 63], 1], MOUTH_LINE_DEG + 0.4)
        uv[[65, 66, 67], 1] = np.minimum(uv[[65, 66, 67], 1], MOUTH_LINE_DEG - 1.2)
        uv[LOWER_FACE[LOWER_FACE >= 55], 1] = np.minimum(
            uv[LOWER_FACE[LOWER_FACE >= 55], 1], MOUTH_LINE_DEG - 1.2
        )
        return uv


# Radial bumps (u0, v0, su, sv, height) in degrees; the nose height comes from the identity.
_BUMPS = np.array(
    [
        [0.0, -8.0, 7.0, 14.0, 1.0],  # nose ridge (scaled by params.nose)
        [0.0, -16.0, 7.0, 5.0, 0.6],  # nose tip (scaled by params.nose)
        [-22.0, 14.0, 22.0, 5.0, 0.03],  # brow ridges
        [22.0, 14.0, 22.0, 5.0, 0.03],
        [-26.0, 5.0, 10.0, 5.0, -0.035],  # eye sockets
        [26.0, 5.0, 10.0, 5.0, -0.035],
        [0.0, -33.0, 18.0, 6.0, 0.05],  # lips
        [-40.0, -8.0, 14.0, 10.0, 0.02],  # cheekbones
        [40.0, -8.0, 14.0, 10.0, 0.02],
    ]
)


def surface(params: HeadParams, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Head-frame 3D points ``(..., 3)`` of the surface at azimuth ``u``, elevation ``v`` (radians)."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    a, b, c = params.radii
    ud, vd = u / DEG, v / DEG
    radial = np.ones_like(u)
    for k, (u0, v0, su, sv, h) in enumerate(_BUMPS):
        if k < 2:
            h = h * params.nose
        radial = radial + h * np.exp(-(((ud - u0) / su) ** 2) - ((vd - v0) / sv) ** 2)
    # Chin: a bump at the bottom of the face.
    radial = radial + params.chin * np.exp(-((ud / 16.0) ** 2) - ((vd + 56.0) / 9.0) ** 2)
    taper = 1.0 - params.jaw_taper * _smoothstep(-5.0, -70.0, vd)
    x = a * np.sin(u) * np.cos(v) * taper * radial
    y = b * np.sin(v) * radial
    z = c * np.cos(u) * np.cos(v) * radial
    # Opening the mouth drops the front of the lower face.
    front = np.exp(-((ud / 75.0) ** 4))
    y = y - params.mouth_open * front * _smoothstep(MOUTH_LINE_DEG - 0.5, MOUTH_LINE_DEG - 1.2, vd)
    return np.stack([x, y, z], axis=-1)


def landmarks_3d(params: HeadParams) -> tuple[np.ndarray, np.ndarray]:
    """Head-frame 3D landmarks (68, 3) and their surface coordinates (68, 2) in radians."""
    uv = params.layout_deg() * DEG
    return surface(params, uv[:, 0], uv[:, 1]), uv


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head-to-camera-aligned rotation from angles in degrees (yaw about y, pitch about x, roll about z)."""
    cy, sy = np.cos(yaw * DEG), np.sin(yaw * DEG)
    cp, sp = np.cos(pitch * DEG), np.sin(pitch * DEG)
    cr, sr = np.cos(roll * DEG), np.sin(roll * DEG)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass
class Camera:
    """Pinhole camera looking at the head from distance ``distance`` along the head's +z."""

    focal: float
    cx: float
    cy: float
    distance: float
    rot: np.ndarray

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        """Head-frame points to OpenCV camera frame (x right, y down, z forward)."""
        p = pts @ self.rot.T
        return np.stack([p[..., 0], -p[..., 1], self.distance - p[..., 2]], axis=-1)

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre image coordinates ``(..., 2)`` and depths of head-frame points."""
        pc = self.to_camera(pts)
        z = pc[..., 2]
        xy = np.stack([self.focal * pc[..., 0] / z + self.cx, self.focal * pc[..., 1] / z + self.cy], -1)
        return xy, z


def facing(params: HeadParams, cam: Camera, u: np.ndarray, v: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Signed orientation of the projected surface at (u, v): > 0 where it faces the camera."""
    p0, _ = cam.project(surface(params, u, v))
    pu, _ = cam.project(surface(params, u + eps, v))
    pv, _ = cam.project(surface(params, u, v + eps))
    du, dv = pu - p0, pv - p0
    # Image y points down, so an outward, camera-facing patch has negative du x dv.
    return -(du[..., 0] * dv[..., 1] - du[..., 1] * dv[..., 0])


# Jaw points moved to the visible outline in the 2D (annotator) convention: the chin stays.
MARCHING_JAW = np.array([0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16])


def outline_jaw(params: HeadParams, cam: Camera, uv: np.ndarray) -> np.ndarray:
    """2D jaw points on the visible outline ("landmark marching").

    A visible jaw landmark is already on the visible jaw line and stays. A hidden one (the far side of
    a turned head) moves along its elevation row towards the midline, to the outermost place where the
    surface turns away from the camera (the occluding contour): that is where an annotator clicks the
    outline. Marching along rows is the usual approximation (as in 3DDFA): past about 45 degrees of yaw
    another row can bulge further out, leaving the point a few pixels inside the true outline.
    Returns (len(MARCHING_JAW), 2) image coordinates.
    """
    out = np.zeros((len(MARCHING_JAW), 2))
    for k, j in enumerate(MARCHING_JAW):
        u = np.linspace(0.0, uv[j, 0], 201)
        v = np.full_like(u, uv[j, 1])
        f = facing(params, cam, u, v)
        u_edge = uv[j, 0]
        if f[-1] <= 0:
            # The outermost visible -> hidden transition: inner ones are the nose's own contour.
            turns = np.nonzero((f[:-1] > 0) & (f[1:] <= 0))[0]
            if len(turns):
                i = int(turns[-1])
                t = f[i] / (f[i] - f[i + 1])
                u_edge = u[i] + t * (u[i + 1] - u[i])
        xy, _ = cam.project(surface(params, np.array([u_edge]), np.array([uv[j, 1]])))
        out[k] = xy[0]
    return out
