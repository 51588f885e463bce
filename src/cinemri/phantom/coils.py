"""Simulated receive coils around the thorax: smooth sensitivities, normalised."""

from __future__ import annotations

import numpy as np


def coil_maps(rng: np.random.Generator, coils: int, x: np.ndarray, y: np.ndarray, z: np.ndarray,
              body: tuple[float, float, float]) -> np.ndarray:
    """Coil sensitivities of ``coils`` loops on a ring just outside the body ellipse.

    Coils alternate between two rows along the long axis (z), so neighbouring slices see
    slightly different maps. Magnitude decays with the 3D distance d to the coil as
    1 / (1 + (d / L)^2); phase is a smooth random ramp per coil.

    x, y: (H, W) mm; z: (S,) slice positions mm; body: (centre y, semi-axis x, semi-axis y) mm.
    returns (S, C, H, W) complex64 normalised so that sum_c |S_c|^2 = 1 at every pixel
    (everywhere, not only inside the body).
    """
    body_y, half_x, half_y = body
    angles = 2 * np.pi * (np.arange(coils) + rng.uniform(0, 1)) / coils + rng.uniform(-0.15, 0.15, coils)
    gap = rng.uniform(15, 35, coils)
    cx = (half_x + gap) * np.cos(angles)
    cy = body_y + (half_y + gap) * np.sin(angles)
    cz = z.mean() + np.where(np.arange(coils) % 2 == 0, -1.0, 1.0) * rng.uniform(20, 50)
    reach = rng.uniform(90, 140, coils)
    ramp = rng.normal(0, 0.008, (coils, 2))  # rad/mm
    offset = rng.uniform(-np.pi, np.pi, coils)
    d2 = ((x[None, None] - cx[None, :, None, None]) ** 2 + (y[None, None] - cy[None, :, None, None]) ** 2
          + (z[:, None, None, None] - cz[None, :, None, None]) ** 2)  # (S, C, H, W)
    mag = 1.0 / (1.0 + d2 / reach[None, :, None, None] ** 2)
    phase = (offset[:, None, None] + ramp[:, 0, None, None] * x[None] + ramp[:, 1, None, None] * y[None])
    maps = mag * np.exp(1j * phase)[None]  # (S, C, H, W)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(axis=1, keepdims=True))
    return maps.astype(np.complex64)
