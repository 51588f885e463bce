"""bSSFP-like tissue signal, smooth bias field, smooth background phase, texture.

Signals are relative to LV blood (about 1). Balanced SSFP contrast follows roughly
sqrt(T2/T1): blood and fat bright, myocardium, skeletal muscle and liver dark to mid grey,
lung nearly black. Each case draws its own values within these ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

# tissue: (low, high) relative signal
SIGNAL_RANGES = {
    "blood": (0.90, 1.10), "rv_blood": (0.85, 1.00), "myocardium": (0.20, 0.32), "fat": (0.65, 1.00),
    "muscle": (0.20, 0.32), "liver": (0.28, 0.42), "lung": (0.02, 0.06), "vessel": (0.30, 0.60),
    "mediastinum": (0.15, 0.28), "pericardium": (0.05, 0.12), "marrow": (0.40, 0.60), "csf": (0.80, 1.00),
    "cord": (0.30, 0.40), "aorta": (0.65, 0.95), "stomach": (0.45, 0.75), "skin": (0.30, 0.45),
}


@dataclass(frozen=True)
class Contrast:
    """Drawn signal of every tissue (dict name -> float), see :data:`SIGNAL_RANGES`."""

    signal: dict

    def __getitem__(self, tissue: str) -> float:
        return self.signal[tissue]


def draw_contrast(rng: np.random.Generator) -> Contrast:
    """One case's tissue signals; RV blood never brighter than LV blood."""
    signal = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in SIGNAL_RANGES.items()}
    signal["rv_blood"] = min(signal["rv_blood"], signal["blood"])
    return Contrast(signal)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (Gaussian-filtered white noise).

    shape: (H, W); sigma: correlation length in pixels. returns (H, W) float64.
    """
    f = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / max(f.std(), 1e-12)


def _poly2(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, scale: float) -> np.ndarray:
    """Random quadratic polynomial of normalised coordinates (x, y in about [-1, 1])."""
    c = rng.standard_normal(5) * np.array([1.0, 1.0, 0.5, 0.5, 0.5])
    return scale * (c[0] * x + c[1] * y + c[2] * x * x + c[3] * y * y + c[4] * x * y)


def bias_and_phase(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                   half_fov: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth multiplicative bias (about +-25 %) and background phase (about +-pi) per slice.

    x, y: (H, W) mm coordinates; z: (S,) slice positions mm; half_fov: mm (normalises x, y).
    returns bias (S, H, W) float64 > 0 and phase (S, H, W) float64 rad, both varying slowly in z.
    """
    xn, yn = x / half_fov, y / half_fov
    zn = (z - z.mean()) / max(np.ptp(z), 1.0)
    bias0, bias1 = _poly2(rng, xn, yn, 0.12), _poly2(rng, xn, yn, 0.06)
    phase0, phase1 = _poly2(rng, xn, yn, 0.9), _poly2(rng, xn, yn, 0.4)
    offset = rng.uniform(-np.pi, np.pi)
    bias = np.exp(bias0[None] + zn[:, None, None] * bias1[None])
    phase = offset + phase0[None] + zn[:, None, None] * phase1[None]
    return bias, phase
