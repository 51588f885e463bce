"""Heart geometry in polar coordinates about the LV centre, per slice and frame.

Every border is a radius as a function of angle, sampled on ``N_THETA`` angles:

- LV endocardium (the label border, compact myocardium), trabeculations inside it;
- LV epicardium from per-angle wall-area conservation: r_epi^2 = r_endo^2 + w(theta), so
  the myocardial area of every slice is the same in every frame (the wall thickens in systole);
- RV cavity as a crescent r_epi < r < r_epi + d * bump(theta) around the septum, its depth d
  solved each frame so the RV area follows its own volume curve; RV free wall from the same
  area conservation; epicardial fat outside.

Volumes are set by construction: every slice's LV (RV) area scales with the LV (RV) volume
curve, so EDV, ESV and EF land on the drawn targets up to pixel discretisation. The ground
truth is nevertheless always recomputed from the rendered labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion import draw_timing, ejected_fraction, volume_fraction

N_THETA = 720
THETA = np.linspace(-np.pi, np.pi, N_THETA, endpoint=False)  # (N,) angle grid, rad
D_THETA = 2 * np.pi / N_THETA

# Per group: LV EDV ml, LV EF, wall mm, RV EDV ml (None: x LV EDV), RV EF.  Drawn uniformly.
GROUP_RANGES = {
    "NOR": dict(lv_edv=(115, 175), lv_ef=(0.57, 0.68), wall=(7.5, 9.5), rv_edv=None, rv_ef=(0.48, 0.62)),
    "DCM": dict(lv_edv=(215, 310), lv_ef=(0.14, 0.36), wall=(7.0, 8.5), rv_edv=(130, 220), rv_ef=(0.30, 0.50)),
    "HCM": dict(lv_edv=(95, 150), lv_ef=(0.68, 0.82), wall=(12.5, 17.0), rv_edv=(95, 150), rv_ef=(0.50, 0.65)),
    "MINF": dict(lv_edv=(160, 250), lv_ef=(0.28, 0.46), wall=(8.5, 10.5), rv_edv=(115, 185), rv_ef=(0.40, 0.56)),
    "RV": dict(lv_edv=(100, 155), lv_ef=(0.55, 0.67), wall=(7.0, 9.0), rv_edv=(210, 320), rv_ef=(0.18, 0.38)),
}

# rows of HeartFrames.radii
R_ENDO, R_TRAB, R_EPI, R_RV, R_RVWALL, R_OUTFLOW, R_ENVELOPE = range(7)


@dataclass(frozen=True)
class HeartFrames:
    """Heart geometry of one case, every slice and frame (mm, radians).

    radii: (S, T, 7, N) float64 border radii about the LV centre (rows R_ENDO ... R_ENVELOPE)
    centre: (T, 2) float64 LV centre (x, y) in the anatomy frame, mm
    rotation: (S, T) float64 in-plane rotation (torsion) of the heart relative to ED (rad);
        radii are functions of the angle in the anatomy frame rotated back by it
    pm_angle: (2,) float64 papillary muscle angles (rad)
    pm_radius: (S, 2) float64 papillary muscle radii (0 where absent), mm
    es_frame: int; group: str; targets: drawn LV/RV volumes and EFs (for reference only)
    """

    radii: np.ndarray
    centre: np.ndarray
    rotation: np.ndarray
    pm_angle: np.ndarray
    pm_radius: np.ndarray
    es_frame: int
    group: str
    targets: dict


def _harmonics(rng: np.random.Generator, kmin: int, kmax: int, rms: float) -> np.ndarray:
    """Smooth random periodic function of THETA with the given rms. returns (N,) float64."""
    k = np.arange(kmin, kmax + 1)
    amp = rng.standard_normal(k.size) / k ** 0.5
    phase = rng.uniform(0, 2 * np.pi, k.size)
    f = (amp[:, None] * np.cos(k[:, None] * THETA[None] + phase[:, None])).sum(0)
    return f * (rms / max(f.std(), 1e-12))


def _angle_diff(a, b):
    return np.angle(np.exp(1j * (np.asarray(a) - b)))


def _bump(center: float, half_width: float, power: float) -> np.ndarray:
    """cos^power bump of THETA, 1 at ``center``, 0 beyond ``half_width``. returns (N,)."""
    u = np.clip(np.abs(_angle_diff(THETA, center)) / half_width, 0.0, 1.0)
    return np.cos(0.5 * np.pi * u) ** power


def _lv_profile(z: np.ndarray, length: float, equator: float) -> np.ndarray:
    """Half-ellipsoid LV radius profile along the long axis (base z = 0), 1 at the equator."""
    below = np.sqrt(np.clip(1.0 - ((z - equator) / (length - equator)) ** 2, 0.0, None))
    above = 1.0 - 0.08 * (equator - z) / max(equator, 1e-6)
    return np.where(z > equator, below, above)


def draw_heart(rng: np.random.Generator, group: str, slices: int, frames: int, dz: float,
               centre: tuple[float, float], rv_direction: float) -> HeartFrames:
    """Draw one heart of ``group`` and compute its borders for every slice and frame.

    centre: LV centre (x, y) mm at ED; rv_direction: angle (rad) from the LV centre to the RV.
    """
    g = GROUP_RANGES[group]
    lv_edv = rng.uniform(*g["lv_edv"])
    lv_ef = rng.uniform(*g["lv_ef"])
    rv_edv = lv_edv * rng.uniform(1.0, 1.2) if g["rv_edv"] is None else rng.uniform(*g["rv_edv"])
    rv_ef = rng.uniform(*g["rv_ef"])
    wall_mm = rng.uniform(*g["wall"])
    timing = draw_timing(rng, frames, group)
    ejected = ejected_fraction(timing, frames)  # (T,)
    v_lv, v_rv = volume_fraction(ejected, lv_ef), volume_fraction(ejected, rv_ef)  # (T,)

    z = (np.arange(slices) + 0.5) * dz  # (S,) slice centres from the base plane, mm
    length = slices * dz * rng.uniform(0.98, 1.06)
    p_lv = _lv_profile(z, length, length * rng.uniform(0.18, 0.32))  # (S,)
    rv_length = z[-1] - rng.uniform(0.05, 0.6) * dz  # RV absent in the most apical slice
    if slices >= 10 and rng.uniform() < 0.5:
        rv_length = z[-2] - 0.05 * dz  # and sometimes in the last two
    p_rv = np.clip(1.0 - z / rv_length, 0.0, None) ** 0.6
    p_rv[0] *= rng.uniform(1.05, 1.25)  # RV outflow tract at the base

    # LV endocardium at ED: irregular, varying slowly from slice to slice.
    shape = _harmonics(rng, 2, 4, rng.uniform(0.03, 0.06))
    irregular = np.stack([shape + _harmonics(rng, 2, 5, 0.015) for _ in range(slices)])  # (S, N)
    base = p_lv[:, None] * (1.0 + irregular)  # (S, N) at unit radius
    unit_volume = dz * (0.5 * (base ** 2).sum(1) * D_THETA).sum()  # mm^3 per mm^2 of R^2
    r_ed = base * np.sqrt(lv_edv * 1000.0 / unit_volume)  # (S, N)

    # Wall thickness, regional motion weight (MINF: hypokinetic, thinned sector; HCM: septal).
    thickness = wall_mm * (1.0 + _harmonics(rng, 1, 3, 0.07))[None] * (0.85 + 0.15 * p_lv[:, None])  # (S, N)
    motion = 1.0 + _harmonics(rng, 1, 2, 0.05 if group == "HCM" else 0.10)  # (N,)
    septum = _bump(rv_direction, np.deg2rad(70), 1.0)
    if group == "HCM":
        thickness = thickness * (1.0 + rng.uniform(0.2, 0.5) * septum)[None]
    if group == "MINF":
        infarct = _bump(rv_direction + np.pi + rng.uniform(-1.8, 1.8), np.deg2rad(rng.uniform(45, 75)), 1.0)
        motion = motion * (1.0 - 0.95 * infarct)
        thickness = thickness * (1.0 - rng.uniform(0.35, 0.55) * infarct)[None]
    wall_area = (r_ed + thickness) ** 2 - r_ed ** 2  # (S, N) r_epi^2 - r_endo^2, conserved per angle
    outflow = np.zeros((slices, N_THETA))
    gap = _bump(rv_direction + rng.uniform(1.0, 1.3), np.deg2rad(rng.uniform(25, 40)), 0.5)
    wall_area[0] *= 1.0 - gap  # LV outflow tract: no myocardium in that sector of the basal slice
    outflow[0] = gap * rng.uniform(8.0, 15.0)

    # Per frame LV: each slice's area follows v_lv; the weighted motion keeps that exact.
    weight = (r_ed ** 2 * motion[None]).sum(1) / (r_ed ** 2).sum(1)  # (S,)
    shrink = (1.0 - v_lv)[None, :, None] / weight[:, None, None]  # (S, T, 1)
    r_endo = r_ed[:, None] * np.sqrt(np.clip(1.0 - shrink * motion[None, None], 0.03, None))  # (S, T, N)
    r_epi = np.sqrt(r_endo ** 2 + wall_area[:, None])  # (S, T, N)
    trab_depth = rng.uniform(1.0, 2.5) * (1.4 if group == "DCM" else 1.0)  # mm, deepest trabecula
    trab = np.clip(_harmonics(rng, 10, 40, 1.0), 0.0, None) * rng.uniform(0.3, 1.0, N_THETA) ** 0.5
    trab = trab_depth * trab / max(trab.max(), 1e-12)  # (N,)
    trab = trab[None, None] * (0.35 + 0.65 * v_lv)[None, :, None]  # (1, T, N) compressed in systole
    r_trab = np.maximum(r_endo - trab, 0.55 * r_endo)

    # RV crescent: depth solved per slice and frame from the area target.
    span = np.deg2rad(rng.uniform(70, 85) + (15 if group == "RV" else 0))
    rv_bump = np.stack([_bump(rv_direction, span * (1.15 if s == 0 else 1.0), rng.uniform(0.45, 0.75))
                        * (1.0 + _harmonics(rng, 2, 4, 0.04)) for s in range(slices)])  # (S, N)
    rv_area_ed = p_rv * rv_edv * 1000.0 / (dz * p_rv.sum())  # (S,) mm^2
    rv_area = rv_area_ed[:, None] * v_rv[None]  # (S, T)
    a = 0.5 * (rv_bump ** 2).sum(1)[:, None] * D_THETA  # (S, 1)
    b = (r_epi * rv_bump[:, None]).sum(2) * D_THETA  # (S, T)
    depth = (-b + np.sqrt(b ** 2 + 4 * a * rv_area)) / (2 * a)  # (S, T) mm
    r_rv = r_epi + depth[..., None] * rv_bump[:, None]  # (S, T, N)
    rv_wall_mm = rng.uniform(2.5, 3.5) * (1.5 if group == "RV" else 1.0)
    wall_cover = _bump(rv_direction, span + np.deg2rad(12), 0.3) * (p_rv[:, None] > 0)  # (S, N)
    rv_wall_area = (r_rv[:, 0] + rv_wall_mm * wall_cover) ** 2 - r_rv[:, 0] ** 2  # (S, N) at ED
    r_rvwall = np.sqrt(r_rv ** 2 + rv_wall_area[:, None])

    # Epicardial fat: atrioventricular / interventricular grooves near the RV insertions.
    fat = rng.uniform(0.0, 2.0) * np.clip(_harmonics(rng, 1, 5, 1.0), 0.0, None)
    for side in (-1, 1):
        fat = fat + rng.uniform(2.0, 6.0) * _bump(rv_direction + side * span, np.deg2rad(20), 1.0)
    r_out = r_epi + outflow[:, None]
    r_env = np.maximum(np.maximum(r_rvwall, r_out), r_epi) + fat[None, None]
    radii = np.stack([r_endo, r_trab, r_epi, r_rv, r_rvwall, r_out, r_env], axis=2)  # (S, T, 7, N)

    # Papillary muscles: anterolateral and posteromedial, mid-ventricular slices only.
    pm_angle = rv_direction + np.pi + np.array([-rng.uniform(0.5, 0.9), rng.uniform(0.9, 1.4)])  # AL, PM
    pm_size = rng.uniform(3.5, 5.5, 2) * (1.35 if group == "HCM" else 1.0)
    zrel = z / length
    present = (zrel > 0.15) & (zrel < 0.78) & (np.arange(slices) > 0)
    pm_radius = np.where(present[:, None], pm_size[None] * np.clip(p_lv, 0.5, 1.0)[:, None], 0.0)

    # In-plane motion: shift towards a random direction in systole, torsion base vs apex.
    shift = rng.uniform(1.5, 3.5) * np.array([np.cos(d := rng.uniform(0, 2 * np.pi)), np.sin(d)])
    centre_t = np.asarray(centre)[None] + ejected[:, None] * shift[None]  # (T, 2)
    twist = np.deg2rad(rng.uniform(3.0, 7.0)) * (0.5 - zrel)  # (S,) base one way, apex the other
    rotation = twist[:, None] * ejected[None]  # (S, T)
    targets = dict(lv_edv_ml=lv_edv, lv_ef=lv_ef, rv_edv_ml=rv_edv, rv_ef=rv_ef, wall_mm=wall_mm)
    return HeartFrames(radii, centre_t, rotation, pm_angle, pm_radius,
                       timing.es_frame, group, targets)
