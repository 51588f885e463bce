"""Cardiac timing: physiological ventricular volume curves over one R-R interval.

A volume curve is ``v(t) = 1 - ef * e(t)`` with ``e`` the fraction of the stroke volume
ejected so far: 0 at end-diastole (frame 0), 1 at end-systole, then rapid filling, diastasis
and the atrial kick bring it back to 0 at the next R wave. ``e`` is a monotone cubic (PCHIP)
through these knots, so the extremes are exactly at ED and ES.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator


@dataclass(frozen=True)
class Timing:
    """Phases of one cycle as fractions of the R-R interval (ES phase snapped to a frame).

    es_phase: end of ejection; filling_end: end of rapid filling; atrial_start: start of the
    atrial kick. left_after_filling: fraction of the stroke volume still missing after rapid
    filling (about 0.25 normal, larger with impaired relaxation).
    """

    es_frame: int
    es_phase: float
    filling_end: float
    atrial_start: float
    left_after_filling: float


def draw_timing(rng: np.random.Generator, frames: int, group: str) -> Timing:
    """ES at 30-40 % of the cycle; slower filling for the diseased hearts."""
    es_frame = int(np.clip(round(rng.uniform(0.30, 0.40) * frames), 1, frames - 2))
    es_phase = es_frame / frames
    left = {"NOR": (0.18, 0.30), "DCM": (0.30, 0.45), "HCM": (0.40, 0.55),
            "MINF": (0.30, 0.45), "RV": (0.20, 0.32)}[group]
    filling_end = min(es_phase + rng.uniform(0.13, 0.20), 0.66)
    atrial_start = rng.uniform(max(0.76, filling_end + 0.08), 0.86)
    return Timing(es_frame, es_phase, filling_end, atrial_start, rng.uniform(*left))


def ejected_fraction(timing: Timing, frames: int) -> np.ndarray:
    """Fraction e(t) of the stroke volume ejected at each frame.

    returns (T,) float64 in [0, 1]; e = 0 at frame 0 (ED), 1 at ``timing.es_frame`` (ES).
    """
    left = timing.left_after_filling
    knots_p = [0.0, timing.es_phase, timing.filling_end, timing.atrial_start, 1.0]
    knots_e = [0.0, 1.0, left, 0.55 * left, 0.0]
    curve = PchipInterpolator(knots_p, knots_e)
    phases = np.arange(frames) / frames
    e = np.clip(curve(phases), 0.0, 1.0)
    e[0], e[timing.es_frame] = 0.0, 1.0
    return e


def volume_fraction(ejected: np.ndarray, ef: float) -> np.ndarray:
    """Volume relative to ED: v = 1 - ef * e.  ejected: (T,) -> (T,) float64."""
    return 1.0 - ef * ejected
