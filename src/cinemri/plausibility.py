"""Plausibility checks: when the numbers from a segmentation should not be trusted.

Each check looks at the label maps, the volume curves, the indices or the network's
confidence and returns plain-language warnings (empty list: nothing found). They are
deliberately conservative: a warning means "look at the contours before using the number",
not "the number is wrong". Thresholds live in :class:`PlausibilityLimits`.

- LV cavity not enclosed by myocardium: in a short-axis slice the LV blood pool is ringed by
  myocardium; a cavity whose border mostly meets background or RV is a segmentation error
  (one basal slice may open into the outflow tract, so one open slice is allowed).
- Myocardial volume swinging over the cycle: myocardium is nearly incompressible, so its
  volume should stay near its median in every segmented frame. Manual contours are not
  perfect either: on the 100 ACDC ground-truth label sets the ED/ES myocardium leaves ±10 % of
  its median in 19 patients, ±15 % in 6 and ±20 % in none, so the threshold is 15 %.
- EF outside 0-100 %, ESV above EDV.
- Volumes and mass far outside physiological ranges (adult and child hearts lie well inside).
- Low network confidence: the mean winning-class probability over the labelled pixels falls
  below what the bundled model reaches on real and phantom images it was validated on; the
  input looks unlike its training data (other contrast, orientation, field of view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cinemri.labels import LV, MYO

_FOUR_NEIGHBOURS = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class PlausibilityLimits:
    """Thresholds of the checks; every default lives here."""

    open_border_fraction: float = 0.3  # share of a slice's LV border that does not touch MYO
    open_slices_allowed: int = 1  # slices per phase allowed open (base into the outflow tract)
    min_cavity_pixels: int = 20  # smaller cavities (apex) are not judged
    myo_swing: float = 0.15  # largest |V_myo(t) - median| / median (ACDC truth: 6 % of patients > 0.15)
    min_confidence: float = 0.85  # mean winning-class probability over the labelled pixels
    lv_edv_ml: tuple[float, float] = (20.0, 500.0)
    rv_edv_ml: tuple[float, float] = (20.0, 500.0)
    lv_mass_g: tuple[float, float] = (20.0, 400.0)


def open_border_fraction(frame: np.ndarray) -> np.ndarray:
    """Per slice, the share of the LV cavity's border pixels with no myocardium within one pixel.

    frame: (S, H, W) labels -> (S,) float64, NaN for slices without LV.
    """
    out = np.full(frame.shape[0], np.nan)
    for s, plane in enumerate(frame):
        lv = plane == LV
        if not lv.any():
            continue
        border = lv & ~ndimage.binary_erosion(lv, structure=_FOUR_NEIGHBOURS, border_value=0)  # (H, W)
        near_myo = ndimage.binary_dilation(plane == MYO, structure=np.ones((3, 3), bool))  # (H, W)
        out[s] = float((border & ~near_myo).sum()) / max(1, int(border.sum()))
    return out


def check_enclosure(labels: np.ndarray, frames: dict[str, int],
                    limits: PlausibilityLimits = PlausibilityLimits()) -> list[str]:
    """labels: (S, T, H, W); frames: {"ED": t, "ES": t}. Warnings for open LV cavities."""
    warnings = []
    for phase, t in frames.items():
        frame = labels[:, t]
        fractions = open_border_fraction(frame)  # (S,)
        big = (frame == LV).sum(axis=(1, 2)) >= limits.min_cavity_pixels  # (S,)
        open_slices = [s for s in np.flatnonzero(big) if fractions[s] > limits.open_border_fraction]
        if len(open_slices) > limits.open_slices_allowed:
            warnings.append(
                f"the LV cavity is not enclosed by myocardium in {len(open_slices)} slices at {phase} "
                f"(slices {', '.join(str(int(s)) for s in open_slices)}: more than "
                f"{limits.open_border_fraction:.0%} of its border meets no myocardium); check the contours")
    return warnings


def check_myocardium(myo_ml: np.ndarray, frames: list[int],
                     limits: PlausibilityLimits = PlausibilityLimits()) -> list[str]:
    """myo_ml: (T,) myocardial volume per frame; frames: the segmented frames. Warning when it
    leaves ±``myo_swing`` of its median (myocardium is nearly incompressible)."""
    volumes = np.asarray(myo_ml, dtype=np.float64)[list(frames)]
    if volumes.size < 2:
        return []
    median = float(np.median(volumes))
    if median <= 0:
        return []
    swing = float(np.max(np.abs(volumes - median))) / median
    if swing <= limits.myo_swing:
        return []
    return [f"myocardial volume varies by {swing:.0%} of its median over the cycle ({volumes.min():.0f}-"
            f"{volumes.max():.0f} ml; myocardium keeps its volume): "
            "the myocardium is segmented inconsistently, so LV mass and volumes are unreliable"]


def check_indices(indices: dict[str, float], limits: PlausibilityLimits = PlausibilityLimits()) -> list[str]:
    """indices: lv/rv EDV, ESV, EF, LV mass (NaN allowed). Warnings for impossible or extreme values."""
    warnings = []
    for key, name in (("lv_ef_pct", "LV ejection fraction"), ("rv_ef_pct", "RV ejection fraction")):
        value = indices.get(key, math.nan)
        if math.isfinite(value) and not 0.0 <= value <= 100.0:
            warnings.append(f"{name} {value:.1f} % is impossible (outside 0-100 %): the segmentation is wrong")
    for side in ("lv", "rv"):
        edv, esv = indices.get(f"{side}_edv_ml", math.nan), indices.get(f"{side}_esv_ml", math.nan)
        if math.isfinite(edv) and math.isfinite(esv) and esv > edv:
            warnings.append(f"{side.upper()} end-systolic volume ({esv:.0f} ml) exceeds the end-diastolic "
                            f"volume ({edv:.0f} ml): ED/ES or the segmentation are wrong")
    for key, name, unit, (low, high) in (("lv_edv_ml", "LV end-diastolic volume", "ml", limits.lv_edv_ml),
                                         ("rv_edv_ml", "RV end-diastolic volume", "ml", limits.rv_edv_ml),
                                         ("lv_mass_g", "LV mass", "g", limits.lv_mass_g)):
        value = indices.get(key, math.nan)
        if math.isfinite(value) and not low <= value <= high:
            warnings.append(f"{name} {value:.0f} {unit} lies far outside the physiological range "
                            f"({low:.0f}-{high:.0f} {unit}): wrong spacing or segmentation?")
    return warnings


def check_confidence(confidence: float, limits: PlausibilityLimits = PlausibilityLimits()) -> list[str]:
    """confidence: mean winning-class probability over the labelled pixels (NaN: not known)."""
    if not math.isfinite(confidence) or confidence >= limits.min_confidence:
        return []
    return [f"the segmentation network is unsure of this input (mean confidence {confidence:.2f} < "
            f"{limits.min_confidence:.2f}): it looks unlike the images the model was trained on "
            "(other contrast, orientation or field of view); check the contours"]
