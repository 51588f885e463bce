"""Static anatomy around the heart: body, subcutaneous fat, chest wall, lungs, liver,
stomach, spine, descending aorta, the pericardial space.

Coordinates are mm in the anatomy frame (x to the patient's left = image right, y
posterior/inferior = image down, the short-axis display convention: RV on the image left,
liver at the bottom left, spine and descending aorta at the bottom).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contrast import Contrast


@dataclass(frozen=True)
class Thorax:
    """One case's body layout (mm)."""

    body_y: float
    half_x: float  # body ellipse semi-axes
    half_y: float
    fat_mm: float
    muscle_mm: float
    lung_x: float  # lung centre offset from the midline
    lung_scale: float
    liver: tuple[float, float, float, float]  # centre x, y, semi-axes x, y (at the apex)
    spine: tuple[float, float]  # vertebral body centre
    aorta: tuple[float, float, float]  # centre x, y, radius
    stomach: tuple[float, float, float]  # centre x, y, radius
    outline: np.ndarray  # (N,) relative body radius vs angle (irregular body)
    fat_var: np.ndarray  # (N,) relative fat thickness vs angle
    muscle_var: np.ndarray  # (N,) relative chest-wall muscle thickness vs angle
    ribs: np.ndarray  # (R,) angles of rib cross-sections on the body ellipse


def draw_thorax(rng: np.random.Generator, half_fov_x: float, half_fov_y: float) -> Thorax:
    """Body filling most of the field of view; organs placed with random jitter."""
    half_x = rng.uniform(0.84, 0.94) * half_fov_x
    half_y = rng.uniform(0.64, 0.76) * half_fov_y
    body_y = rng.uniform(-0.04, 0.10) * half_fov_y
    spine = (rng.uniform(-15, 15), body_y + half_y - rng.uniform(48, 62))
    aorta = (spine[0] + rng.uniform(18, 30), spine[1] - rng.uniform(22, 32), rng.uniform(10, 13.5))
    liver = (-0.38 * half_x + rng.uniform(-10, 10), body_y + 0.55 * half_y + rng.uniform(-10, 10),
             0.55 * half_x, 0.50 * half_y)
    stomach = (0.32 * half_x + rng.uniform(-10, 10), body_y + 0.55 * half_y, rng.uniform(25, 40))
    outline = 1.0 + _periodic(rng, 2, 6, 0.025)
    fat_var = np.clip(1.0 + _periodic(rng, 1, 5, 0.35), 0.3, None)
    muscle_var = np.clip(1.0 + _periodic(rng, 1, 4, 0.35), 0.4, None)
    ribs = np.sort(rng.uniform(-np.pi, 0.35 * np.pi, int(rng.integers(6, 11))))  # anterior and lateral
    return Thorax(body_y, half_x, half_y, rng.uniform(5, 18), rng.uniform(7, 14), rng.uniform(0.46, 0.52) * half_x,
                  rng.uniform(0.92, 1.05), liver, spine, aorta, stomach, outline, fat_var, muscle_var, ribs)


_ANGLES = np.linspace(-np.pi, np.pi, 360, endpoint=False)


def _periodic(rng: np.random.Generator, kmin: int, kmax: int, rms: float) -> np.ndarray:
    """Smooth random periodic function on 360 angles with the given rms. returns (360,)."""
    k = np.arange(kmin, kmax + 1)
    f = (rng.standard_normal(k.size)[:, None] / k[:, None]
         * np.cos(k[:, None] * _ANGLES[None] + rng.uniform(0, 2 * np.pi, k.size)[:, None])).sum(0)
    return f * rms / max(f.std(), 1e-12)


def _at(values: np.ndarray, angle: np.ndarray) -> np.ndarray:
    return np.interp(angle, _ANGLES, values, period=2 * np.pi)


def _ellipse(x, y, cx, cy, ax, ay) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < 1.0


def render_thorax(th: Thorax, contrast: Contrast, x: np.ndarray, y: np.ndarray, zfrac: float,
                  heart_zone: np.ndarray, texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Signal of the static anatomy on one slice.

    x, y: (h, w) mm grid; zfrac: slice position from base (0) to apex (1); heart_zone: (h, w)
    bool region the heart sweeps over the cycle (drawn as pericardial space);
    texture: (h, w) zero-mean unit-std smooth field. returns (h, w) float64 signal.
    """
    c = contrast
    yb = y - th.body_y
    phi = np.arctan2(yb / th.half_y, x / th.half_x)
    rho = np.sqrt((x / th.half_x) ** 2 + (yb / th.half_y) ** 2) / _at(th.outline, phi)
    depth = np.hypot(x, yb) * (1.0 / np.maximum(rho, 1e-6) - 1.0)  # distance inside the skin, mm
    post = np.clip(yb / th.half_y, 0.0, 1.0)  # thicker fat and muscle posteriorly
    fat_depth = th.fat_mm * (1.0 + 0.4 * post) * _at(th.fat_var, phi)
    wall_depth = fat_depth + th.muscle_mm * (1.0 + 0.8 * post) * _at(th.muscle_var, phi)
    sig = np.zeros_like(x)
    body = rho < 1.0
    sig[body] = c["fat"]
    sig[body & (depth < 1.5)] = c["skin"]
    sig[body & (depth > fat_depth)] = c["muscle"]
    cavity = body & (depth > wall_depth)
    sig[cavity] = c["mediastinum"]
    for angle in th.ribs:  # rib cross-sections inside the chest wall
        g = _at(th.outline, np.array([angle]))[0]
        surface = np.array([th.half_x * g * np.cos(angle), th.half_y * g * np.sin(angle)])
        inward = -surface / np.linalg.norm(surface)
        d = th.fat_mm * _at(th.fat_var, np.array([angle]))[0] + 0.6 * th.muscle_mm * _at(th.muscle_var, np.array([angle]))[0]
        rx, ry = surface + d * inward
        rib = np.hypot(x - rx, yb - ry)
        sig[body & (rib < 5.0)] = 0.08
        sig[body & (rib < 3.5)] = 0.7 * c["marrow"]

    lungs = np.zeros_like(body)
    for side in (-1, 1):
        lungs |= _ellipse(x, y, side * th.lung_x, th.body_y - 0.06 * th.half_y,
                          0.50 * th.half_x * th.lung_scale, 0.84 * th.half_y * th.lung_scale)
    lungs &= cavity
    sig[lungs] = c["lung"] * np.clip(1.0 + 0.6 * texture[lungs], 0.3, None)
    step = np.hypot(x[0, 1] - x[0, 0], y[0, 1] - y[0, 0])  # grid spacing, mm
    k = int(np.ceil(3.0 / step))
    h, w = x.shape
    for _ in range(90):  # pulmonary vessels in cross-section, drawn in small windows
        i, j, radius = int(rng.integers(k, h - k)), int(rng.integers(k, w - k)), rng.uniform(0.8, 2.8)
        if not lungs[i, j]:
            continue
        win = (slice(i - k, i + k + 1), slice(j - k, j + k + 1))
        vessel = lungs[win] & (np.hypot(x[win] - x[i, j], y[win] - y[i, j]) < radius)
        sig[win][vessel] = c["vessel"]

    lcx, lcy, lax, lay = th.liver
    grow = 0.45 + 0.7 * zfrac  # the liver dome rises into the apical slices
    liver = cavity & _ellipse(x, y, lcx, lcy + (1 - grow) * lay, lax * grow, lay * grow)
    sig[liver] = c["liver"]
    scx, scy, sr = th.stomach
    stomach = cavity & ~liver & (np.hypot(x - scx, y - scy) < sr * max(zfrac - 0.3, 0.0) * 1.4)
    sig[stomach] = np.where(y[stomach] < scy - 0.4 * sr, 0.03, c["stomach"])  # air-fluid level

    sig[heart_zone & cavity] = c["pericardium"]
    sx, sy = th.spine
    sig[body & _ellipse(x, y, sx, sy + 22, 55, 38)] = c["muscle"]  # paraspinal muscles
    r_vert = np.hypot(x - sx, y - sy)
    sig[r_vert < 18] = 0.06  # cortical bone
    sig[r_vert < 16] = c["marrow"]
    r_canal = np.hypot(x - sx, y - sy - 27)
    sig[r_canal < 8] = c["csf"]
    sig[r_canal < 4.5] = c["cord"]
    ax, ay, ar = th.aorta
    sig[np.hypot(x - ax, y - ay) < ar + 1.5] = c["muscle"]  # aortic wall
    sig[np.hypot(x - ax, y - ay) < ar] = c["aorta"]

    tex = np.where(lungs, 1.0, 1.0 + 0.05 * texture)
    return sig * tex
