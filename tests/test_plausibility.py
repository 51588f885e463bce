"""Plausibility checks on synthetic label maps and indices with known answers."""

from __future__ import annotations

import math

import numpy as np

from cinemri.plausibility import (check_confidence, check_enclosure, check_indices, check_myocardium,
                                  open_border_fraction)

RV, MYO, LV = 1, 2, 3


def ring(slices: int = 4, size: int = 31, open_right: bool = False) -> np.ndarray:
    """(S, H, W): LV disc (r < 5) ringed by myocardium (5 <= r < 8); open_right removes the
    ring's right half so the cavity border there meets background."""
    y, x = np.mgrid[:size, :size]
    r = np.hypot(y - 15, x - 15)
    plane = np.zeros((size, size), np.uint8)
    plane[(r >= 5) & (r < 8)] = MYO
    if open_right:
        plane[(plane == MYO) & (x > 15)] = 0
    plane[r < 5] = LV
    return np.repeat(plane[None], slices, axis=0)


def test_open_border_fraction_by_construction():
    closed = open_border_fraction(ring())
    assert np.allclose(closed, 0.0)
    half = open_border_fraction(ring(open_right=True))
    assert np.all((half > 0.35) & (half < 0.65))  # about half the border faces background
    empty = open_border_fraction(np.zeros((2, 9, 9), np.uint8))
    assert np.isnan(empty).all()


def test_enclosure_allows_one_open_basal_slice():
    labels = np.stack([ring(), ring()], axis=1)  # (S, T, H, W)
    assert check_enclosure(labels, {"ED": 0, "ES": 1}) == []
    labels[0, 1] = ring(1, open_right=True)[0]  # one open slice at ES: the base, allowed
    assert check_enclosure(labels, {"ED": 0, "ES": 1}) == []
    labels[2, 1] = ring(1, open_right=True)[0]
    warnings = check_enclosure(labels, {"ED": 0, "ES": 1})
    assert len(warnings) == 1 and "at ES" in warnings[0] and "slices 0, 2" in warnings[0]


def test_myocardial_swing():
    assert check_myocardium(np.array([100.0, 112.0, 93.0, 101.0]), [0, 1, 2, 3]) == []  # within 15 %
    warnings = check_myocardium(np.array([100.0, 130.0, 98.0]), [0, 1, 2])
    assert len(warnings) == 1 and "30%" in warnings[0]
    assert check_myocardium(np.array([100.0, 130.0, 98.0]), [0, 2]) == []  # frame 1 not segmented
    assert check_myocardium(np.array([0.0, 0.0]), [0, 1]) == []


def test_indices_checks():
    good = dict(lv_edv_ml=150.0, lv_esv_ml=60.0, lv_ef_pct=60.0, rv_edv_ml=160.0, rv_esv_ml=80.0,
                rv_ef_pct=50.0, lv_mass_g=120.0)
    assert check_indices(good) == []
    bad = dict(good, lv_esv_ml=170.0, lv_ef_pct=-13.3, lv_mass_g=766.0, rv_edv_ml=math.nan)
    warnings = check_indices(bad)
    assert any("impossible" in w and "LV ejection" in w for w in warnings)
    assert any("LV end-systolic volume (170 ml) exceeds" in w for w in warnings)
    assert any("LV mass 766 g" in w for w in warnings)
    assert len(warnings) == 3  # NaN RV EDV is not judged
    assert any("LV end-diastolic volume 8 ml" in w for w in check_indices(dict(good, lv_edv_ml=8.0, lv_esv_ml=3.0)))


def test_confidence():
    assert check_confidence(0.95) == [] and check_confidence(math.nan) == []
    assert "unsure" in check_confidence(0.6)[0]
