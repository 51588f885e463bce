"""Tests of cinemri.clinical: volumes of analytic shapes, EF, ED/ES, LV mass, validation, ACDC groups."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cinemri.clinical import (
    INDEX_KEYS,
    compute_indices,
    detect_ed_es,
    ejection_fraction_pct,
    volume_curves_ml,
)

ACDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "acdc" / "training"


def _ellipsoid_labels(semi_axes_mm, spacing, shape, label=3):
    """(S, 1, H, W) uint8: voxels whose centre lies inside an ellipsoid centred in the grid."""
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * d for n, d in zip(shape, spacing)], indexing="ij")
    inside = sum((g / a) ** 2 for g, a in zip(grids, semi_axes_mm)) <= 1.0
    return (inside * label).astype(np.uint8)[:, None]


def test_box_volume_is_exact():
    labels = np.zeros((5, 1, 20, 30), np.uint8)
    labels[1:4, 0, 2:12, 5:25] = 2  # 3 x 10 x 20 voxels
    spacing = (8.0, 1.5, 0.75)
    assert volume_curves_ml(labels, spacing)[2][0] == pytest.approx(600 * 8.0 * 1.5 * 0.75 / 1000.0, rel=1e-12)


@pytest.mark.parametrize("spacing", [(2.5, 0.9, 1.1), (1.0, 0.7, 0.7)])
def test_ellipsoid_volume_within_discretisation_error(spacing):
    a, b, c = 30.0, 25.0, 20.0
    shape = tuple(int(2 * r / d) + 4 for r, d in zip((a, b, c), spacing))
    labels = _ellipsoid_labels((a, b, c), spacing, shape)
    exact_ml = 4.0 / 3.0 * math.pi * a * b * c / 1000.0
    got = volume_curves_ml(labels, spacing)[3][0]
    # Only voxels within half a voxel diagonal of the surface can be misclassified, so the error
    # is below area x half-diagonal (Knud Thomsen's area formula); in practice errors cancel.
    p = 1.6075
    area = 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    bound_ml = area * 0.5 * math.sqrt(sum(d * d for d in spacing)) / 1000.0
    assert abs(got - exact_ml) < bound_ml
    assert got == pytest.approx(exact_ml, rel=0.01)


def test_cylinder_volume_with_anisotropic_spacing():
    # a cylinder along the slice axis spanning exactly 6 slices of 10 mm: only the disc is discretised
    dy, dx = 0.8, 1.3
    y, x = np.mgrid[:80, :50]
    disc = ((y - 39.5) * dy) ** 2 + ((x - 24.5) * dx) ** 2 <= 25.0 ** 2
    labels = np.zeros((8, 1, 80, 50), np.uint8)
    labels[1:7, 0][:, disc] = 1
    got = volume_curves_ml(labels, (10.0, dy, dx))[1][0]
    exact = math.pi * 25.0 ** 2 * 60.0 / 1000.0
    bound = 2 * math.pi * 25.0 * 0.5 * math.hypot(dy, dx) * 60.0 / 1000.0  # perimeter band x height
    assert abs(got - exact) < bound
    assert got == pytest.approx(exact, rel=0.01)


def _labels_with_counts(counts, shape=(4, 96, 96), seed=0):
    """(S, T, H, W) uint8 whose frame t holds counts[t][k] voxels of label k, scattered at random."""
    rng = np.random.default_rng(seed)
    frames = []
    for frame_counts in counts:
        flat = np.zeros(int(np.prod(shape)), np.uint8)
        start = 0
        for label, n in frame_counts.items():
            flat[start:start + n] = label
            start += n
        frames.append(rng.permutation(flat).reshape(shape))
    return np.stack(frames, axis=1)


SPACING = (10.0, 1.25, 1.25)  # one voxel = 15.625 mm^3 = 0.015625 ml -> 64 voxels per ml


def _ml(v):
    return int(round(v * 64))


def test_indices_from_known_volumes():
    lv = [100, 80, 50, 60, 90]   # ml; ED frame 0, ES frame 2
    rv = [150, 120, 75, 90, 140]
    myo = [125, 125, 130, 128, 126]
    labels = _labels_with_counts([{3: _ml(a), 1: _ml(b), 2: _ml(c)} for a, b, c in zip(lv, rv, myo)])
    curves = volume_curves_ml(labels, SPACING)
    np.testing.assert_allclose(curves[3], lv)
    np.testing.assert_allclose(curves[1], rv)
    np.testing.assert_allclose(curves[2], myo)
    idx = compute_indices(labels, SPACING)
    assert (idx.ed_frame, idx.es_frame) == (0, 2)
    assert idx.lv_edv_ml == pytest.approx(100.0) and idx.lv_esv_ml == pytest.approx(50.0)
    assert idx.lv_ef_pct == pytest.approx(50.0) and idx.lv_sv_ml == pytest.approx(50.0)
    assert idx.rv_edv_ml == pytest.approx(150.0) and idx.rv_esv_ml == pytest.approx(75.0)
    assert idx.rv_ef_pct == pytest.approx(50.0) and idx.rv_sv_ml == pytest.approx(75.0)
    # LV mass = 1.05 g/ml x myocardial volume at ED (125 ml), not at ES (130 ml)
    assert idx.lv_mass_g == pytest.approx(1.05 * 125.0)
    # explicit frames override detection, and RV volumes follow the LV's ED/ES frames
    idx2 = compute_indices(labels, SPACING, ed_frame=4, es_frame=3)
    assert idx2.lv_ef_pct == pytest.approx(100 * (90 - 60) / 90)
    assert idx2.rv_ef_pct == pytest.approx(100 * (140 - 90) / 140)
    assert idx2.lv_mass_g == pytest.approx(1.05 * 126.0)


def test_index_keys_are_exactly_the_seven():
    assert INDEX_KEYS == ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "rv_edv_ml", "rv_esv_ml", "rv_ef_pct", "lv_mass_g")
    labels = _labels_with_counts([{3: 640, 2: 700}, {3: 320, 2: 700}], shape=(2, 40, 40))
    d = compute_indices(labels, SPACING).as_dict()
    assert tuple(d) == INDEX_KEYS
    assert all(type(v) is float for v in d.values())
    assert math.isnan(d["rv_ef_pct"]) and d["rv_edv_ml"] == 0.0  # no RV: EF undefined, not 0 or an error


def test_ejection_fraction_hand_values():
    assert ejection_fraction_pct(120.0, 48.0) == pytest.approx(60.0)
    assert ejection_fraction_pct(100.0, 100.0) == 0.0
    assert math.isnan(ejection_fraction_pct(0.0, 0.0))


def test_ed_es_detection_on_a_synthetic_curve():
    t = np.arange(25) / 25.0
    # rapid ejection to a minimum at 35 % of the cycle, slow filling, atrial kick before the next beat
    curve = 70 + 50 * np.cos(np.pi * np.minimum(t / 0.35, 1.0)) * (t < 0.35) \
        - 50 * (t >= 0.35) + 80 * np.clip((t - 0.35) / 0.5, 0, 1) + 20 * np.clip((t - 0.85) / 0.15, 0, 1)
    assert detect_ed_es(curve) == (0, int(np.argmin(curve)))
    assert int(np.argmin(curve)) in (8, 9)  # 35 % of 25 frames
    assert detect_ed_es(np.roll(curve, 3)) == (3, int(np.argmin(curve)) + 3)
    assert detect_ed_es([100.0, 100.0, 50.0, 50.0]) == (0, 2)          # ties: earliest frame
    assert detect_ed_es([0.0, 120.0, 0.0, 0.0, 60.0, 0.0]) == (1, 4)  # empty = unlabelled frames


def test_acdc_style_two_labelled_frames_are_detected():
    # only ED (frame 1) and ES (frame 7) carry labels, the other frames are all zero
    counts = [{} for _ in range(10)]
    counts[1] = {3: _ml(150), 2: _ml(100)}
    counts[7] = {3: _ml(60), 2: _ml(100)}
    idx = compute_indices(_labels_with_counts(counts), SPACING)
    assert (idx.ed_frame, idx.es_frame) == (1, 7)
    assert idx.lv_ef_pct == pytest.approx(60.0)


@pytest.mark.parametrize("spacing", [(0.0, 1.0, 1.0), (1.0, 1.0), (-1.0, 1.0, 1.0), (float("nan"), 1.0, 1.0),
                                     (1.0, float("inf"), 1.0), 5.0, "abc", (1.0, 1.0, 1.0, 1.0)])
def test_bad_spacing_raises(spacing):
    labels = np.zeros((2, 2, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="spacing"):
        volume_curves_ml(labels, spacing)
    with pytest.raises(ValueError, match="spacing"):
        compute_indices(labels, spacing, ed_frame=0, es_frame=1)


def test_bad_shapes_and_frames_raise():
    good = _labels_with_counts([{3: 100}, {3: 50}], shape=(2, 10, 10))
    with pytest.raises(ValueError, match=r"\(S, T, H, W\)"):
        volume_curves_ml(good[:, 0], SPACING)
    with pytest.raises(ValueError, match=r"\(S, T, H, W\)"):
        compute_indices(good[None], SPACING)
    with pytest.raises(ValueError, match="ed_frame"):
        compute_indices(good, SPACING, ed_frame=2, es_frame=1)
    with pytest.raises(ValueError, match="es_frame"):
        compute_indices(good, SPACING, ed_frame=0, es_frame=-1)
    with pytest.raises(ValueError, match="es_frame"):
        compute_indices(good, SPACING, ed_frame=0, es_frame=1.0)
    with pytest.raises(ValueError, match="empty"):
        compute_indices(np.zeros_like(good), SPACING)
    for curve in ([100.0], [[1.0, 2.0]], [1.0, float("nan")], [1.0, -2.0]):
        with pytest.raises(ValueError, match="ED/ES"):
            detect_ed_es(curve)


def _acdc_case(pid: str):
    """(labels (S, 2, H, W), spacing (dz, dy, dx), group) of an ACDC patient, ED then ES."""
    import nibabel as nib
    folder = ACDC / f"patient{pid}"
    info = dict(line.split(":", 1) for line in (folder / "Info.cfg").read_text().splitlines() if ":" in line)
    frames = []
    for key in ("ED", "ES"):
        img = nib.load(folder / f"patient{pid}_frame{int(info[key]):02d}_gt.nii.gz")
        frames.append(np.transpose(np.asarray(img.dataobj).round().astype(np.uint8), (2, 1, 0)))
    dx, dy, dz = (float(v) for v in img.header.get_zooms()[:3])
    return np.stack(frames, axis=1), (dz, dy, dx), info["Group"].strip()


def _synthetic_groups():
    """Stand-ins with ACDC-like volumes when the real data is absent: (labels, spacing, group)."""
    spec = {"DCM": (250, 200, 70, 60), "HCM": (120, 35, 140, 60), "NOR": (140, 55, 160, 65),
            "MINF": (150, 100, 130, 70), "RV": (140, 60, 220, 170)}
    for group, (lv_ed, lv_es, rv_ed, rv_es) in spec.items():
        myo = 210 if group == "HCM" else 110
        counts = [{3: _ml(lv_ed), 1: _ml(rv_ed), 2: _ml(myo)}, {3: _ml(lv_es), 1: _ml(rv_es), 2: _ml(myo)}]
        yield _labels_with_counts(counts, shape=(6, 160, 160)), SPACING, group


def test_acdc_group_criteria():
    """ACDC's diagnostic groups are defined by these indices (Bernard et al. 2018): check them."""
    pids = ("001", "021", "041", "061", "081")
    cases = [_acdc_case(p) for p in pids] if all((ACDC / f"patient{p}").is_dir() for p in pids) \
        else list(_synthetic_groups())
    assert len(cases) == 5
    for labels, spacing, group in cases:
        idx = compute_indices(labels, spacing)
        assert (idx.ed_frame, idx.es_frame) == (0, 1)  # ED is the larger LV, as labelled
        voxel_ml = float(np.prod(spacing)) / 1000.0
        assert idx.lv_edv_ml == pytest.approx((labels[:, 0] == 3).sum() * voxel_ml)
        if group == "DCM":
            assert idx.lv_ef_pct < 40 and idx.lv_edv_ml > 200
        elif group == "HCM":
            assert idx.lv_ef_pct > 55 and idx.lv_mass_g > 150
        elif group == "MINF":
            assert idx.lv_ef_pct < 40
        elif group == "NOR":
            assert idx.lv_ef_pct > 50 and idx.rv_ef_pct > 40
        elif group == "RV":
            assert idx.rv_ef_pct < 40 and idx.rv_edv_ml > idx.lv_edv_ml
