"""Tests of the digital cardiac cine phantom (cinemri.phantom)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from cinemri.clinical import compute_indices, volume_curves_ml
from cinemri.masks import cartesian_mask
from cinemri.phantom import GROUPS, PhantomOptions, generate_case, simulate_kspace, split_names, write_dataset
from cinemri.phantom.motion import Timing, ejected_fraction
from cinemri.phantom.render import acquire, acquisition_window
from cinemri.physics import sense_adjoint, sense_forward

# Small cases: 64 x 64 over a 180 mm field of view keeps pixels near 2.8 mm (heart-sized detail).
SMALL = dict(height=64, width=64, frames=8, slices=8, coils=4, fov_mm=(180.0, 180.0))


def psnr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR on magnitudes, data range = max of the reference magnitude over the case."""
    ref, est = np.abs(reference), np.abs(estimate)
    return float(20 * np.log10(ref.max() / np.sqrt(np.mean((ref - est) ** 2))))


@pytest.fixture(scope="module")
def default_case():
    return generate_case(7, snr=30.0)


@pytest.fixture(scope="module")
def small_cases():
    return {g: [generate_case(100 + 10 * i + k, group=g, **SMALL) for k in range(2)] for i, g in enumerate(GROUPS)}


def test_default_case_shapes_dtypes_and_geometry(default_case):
    c = default_case
    s, t, h, w = c.image.shape
    assert (t, h, w) == (16, 128, 128) and 8 <= s <= 10
    assert c.image.dtype == np.complex64 and c.labels.dtype == np.uint8
    assert c.labels.shape == c.image.shape
    assert c.coil_maps.shape == (s, 8, h, w) and c.coil_maps.dtype == np.complex64
    assert set(np.unique(c.labels)) == {0, 1, 2, 3}
    assert c.labelled_frames == tuple(range(t)) and c.ed_frame == 0
    assert 0.3 * t - 1 <= c.es_frame <= 0.4 * t + 1
    dz, dy, dx = c.spacing
    assert dy == dx and 2.3 <= dx <= 2.75 and 8.0 <= dz <= 10.0  # 128 px hold a 300-350 mm FOV
    assert c.group in GROUPS and c.name == "phantom_00007" and c.noise_std > 0
    assert np.isfinite(c.image).all()


def test_indices_are_compute_indices_of_the_labels(default_case, small_cases):
    for c in [default_case] + small_cases["MINF"][:1]:
        expected = compute_indices(c.labels, c.spacing, c.ed_frame, c.es_frame).as_dict()
        assert c.indices == expected
        # and they are the hand count: voxels x voxel volume
        voxel_ml = np.prod(c.spacing) / 1000
        assert c.indices["lv_edv_ml"] == pytest.approx((c.labels[:, 0] == 3).sum() * voxel_ml)
        assert c.indices["lv_mass_g"] == pytest.approx((c.labels[:, 0] == 2).sum() * voxel_ml * 1.05)


def test_volume_curves_are_physiological(small_cases):
    for cases in small_cases.values():
        for c in cases:
            curves = volume_curves_ml(c.labels, c.spacing)
            lv, rv, myo = curves[3], curves[1], curves[2]
            assert lv[0] > lv[c.es_frame] and rv[0] > rv[c.es_frame]
            assert np.argmin(lv) == c.es_frame and np.argmax(lv) == 0
            # myocardial volume conserved: the wall thickens as the cavity shrinks
            assert np.abs(myo / myo.mean() - 1).max() < 0.04


def test_ejection_fraction_per_group_in_clinical_range(small_cases):
    lv_ef = {"NOR": (55, 70), "DCM": (10, 40), "HCM": (65, 85), "MINF": (25, 50), "RV": (52, 70)}
    for group, cases in small_cases.items():
        for c in cases:
            ix = c.indices
            lo, hi = lv_ef[group]
            assert lo <= ix["lv_ef_pct"] <= hi, (group, ix)
            assert 60 <= ix["lv_mass_g"] <= 320, (group, ix)
            if group == "NOR":
                assert 100 <= ix["lv_edv_ml"] <= 190 and 45 <= ix["rv_ef_pct"] <= 68
            if group == "DCM":
                assert ix["lv_edv_ml"] >= 195
            if group == "HCM":
                assert ix["lv_mass_g"] >= 150 and ix["lv_edv_ml"] <= 165
            if group == "RV":
                assert ix["rv_edv_ml"] > 1.3 * ix["lv_edv_ml"] and ix["rv_ef_pct"] <= 42


def _sector_cavity_ratio(labels: np.ndarray, es: int, sectors: int = 12) -> np.ndarray:
    """ES/ED LV cavity pixel count per angular sector about the ED LV centroid. labels: (T, H, W)."""
    ys, xs = np.nonzero(labels[0] == 3)
    cy, cx = ys.mean(), xs.mean()
    yy, xx = np.mgrid[: labels.shape[1], : labels.shape[2]]
    sector = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors
    ed = np.bincount(sector[labels[0] == 3], minlength=sectors)
    esc = np.bincount(sector[labels[es] == 3], minlength=sectors)
    return esc / np.maximum(ed, 1)


def test_infarct_has_a_hypokinetic_sector():
    minf = generate_case(5, group="MINF", **{**SMALL, "fov_mm": (150.0, 150.0)})
    nor = generate_case(5, group="NOR", **{**SMALL, "fov_mm": (150.0, 150.0)})
    mid = 3
    r_minf = _sector_cavity_ratio(minf.labels[mid], minf.es_frame)
    r_nor = _sector_cavity_ratio(nor.labels[mid], nor.es_frame)
    # the infarcted sector barely moves; the normal heart contracts everywhere
    assert r_minf.max() > 0.75 and r_minf.max() - np.median(r_minf) > 0.2
    assert r_nor.max() < 0.7


def test_papillary_muscles_are_labelled_lv_and_rv_absent_at_apex(default_case):
    c = default_case
    mag = np.abs(c.image)
    s_mid = c.num_slices // 2
    lv = c.labels[s_mid, 0] == 3
    blood = np.median(mag[s_mid, 0][lv])
    myo = np.median(mag[s_mid, 0][c.labels[s_mid, 0] == 2])
    dark_in_lv = lv & (mag[s_mid, 0] < 0.5 * (blood + myo))  # papillary muscle / trabeculae
    assert dark_in_lv.sum() >= 4
    assert blood / myo > 2.5  # bSSFP: bright blood, dark myocardium
    assert not (c.labels[-1] == 1).any()  # no RV in the most apical slice
    assert (c.labels[: c.num_slices // 2] == 1).any(axis=(1, 2, 3)).all()
    lv_area = (c.labels[:, 0] == 3).sum(axis=(1, 2))
    assert lv_area[-1] < 0.6 * lv_area[s_mid]  # base-to-apex taper


def test_determinism(small_cases):
    a = generate_case(123, **SMALL)
    b = generate_case(123, **SMALL)
    for name in ("image", "labels", "coil_maps"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.indices == b.indices and a.noise_std == b.noise_std and a.group == b.group
    other = generate_case(124, **SMALL)
    assert not np.array_equal(a.image, other.image)


def test_coil_maps_normalised(small_cases):
    maps = small_cases["NOR"][0].coil_maps
    np.testing.assert_allclose((np.abs(maps) ** 2).sum(axis=1), 1.0, atol=1e-5)
    # not trivial: each coil varies smoothly, strongly across the field of view
    mag = np.abs(maps[0, 0])
    assert mag.max() / mag.min() > 2


def test_noise_level_matches_noise_std():
    c = generate_case(11, **SMALL)
    kspace = simulate_kspace(c, seed=3)
    clean = sense_forward(torch.from_numpy(c.image), torch.from_numpy(c.coil_maps)).numpy()
    noise = kspace - clean
    assert np.std(noise) == pytest.approx(c.noise_std, rel=0.02)
    assert np.array_equal(kspace, simulate_kspace(c, seed=3))


def test_zero_filled_5x_looks_undersampled_and_full_is_clean(default_case):
    mid = default_case.num_slices // 2  # three central slices keep the test fast
    c = replace(default_case, image=default_case.image[mid - 1:mid + 2],
                coil_maps=default_case.coil_maps[mid - 1:mid + 2], labels=default_case.labels[mid - 1:mid + 2])
    maps = torch.from_numpy(c.coil_maps)
    mask = cartesian_mask(c.num_frames, c.image.shape[-1], 5.0, seed=0).numpy()
    full = sense_adjoint(torch.from_numpy(simulate_kspace(c, seed=1)), maps).numpy()
    zero_filled = sense_adjoint(torch.from_numpy(simulate_kspace(c, seed=1, mask=mask)), maps).numpy()
    assert psnr(c.image, full) > 30
    assert 20 <= psnr(c.image, zero_filled) <= 30


def test_acquire_is_kspace_truncation_with_taper():
    """The matrix form of the imaging step equals FFT -> crop -> shift -> window -> IFFT."""
    rng = np.random.default_rng(0)
    f, h, w = 3, 16, 14
    obj = rng.random((2, h * f, w * f))
    spec = np.fft.fftshift(np.fft.fft2(obj), axes=(-2, -1))
    spec = spec[:, h * f // 2 - h // 2: h * f // 2 + h // 2, w * f // 2 - w // 2: w * f // 2 + w // 2]
    ky, kx = (np.arange(h) - h // 2) / (h * f), (np.arange(w) - w // 2) / (w * f)
    spec = spec * np.exp(2j * np.pi * (f - 1) / 2 * (ky[:, None] + kx[None])) * acquisition_window(h, w)
    reference = np.fft.ifft2(np.fft.ifftshift(spec, axes=(-2, -1))).real / f ** 2
    np.testing.assert_allclose(acquire(obj, f), reference, atol=1e-5)
    np.testing.assert_allclose(acquire(np.ones((h * f, w * f)), f), 1.0, atol=1e-5)  # flat stays flat
    window = (slice(9, 30), slice(6, 27))
    windowed = np.zeros_like(obj)
    windowed[:, window[0], window[1]] = obj[:, window[0], window[1]]
    np.testing.assert_allclose(acquire(obj[:, window[0], window[1]], f, *window, h, w), acquire(windowed, f), atol=1e-5)


def test_volume_curve_shape():
    frames = 40
    timing = Timing(es_frame=14, es_phase=0.35, filling_end=0.52, atrial_start=0.8, left_after_filling=0.25)
    e = ejected_fraction(timing, frames)
    assert e[0] == 0 and e[14] == 1 and e.argmax() == 14
    assert np.all(np.diff(e[:15]) > 0) and np.all(np.diff(e[14:]) <= 1e-12)
    assert e[int(0.52 * frames)] <= 0.3  # rapid filling: most of the stroke volume back
    assert e[32] - e[39] > 0.08  # atrial kick in the last fifth of the cycle


def test_bad_options_raise_valueerror():
    with pytest.raises(ValueError, match="colour"):
        generate_case(1, colour="red")
    with pytest.raises(ValueError, match="group"):
        generate_case(1, group="XYZ")
    with pytest.raises(ValueError, match="seed"):
        generate_case(-1)
    with pytest.raises(ValueError, match="height"):
        PhantomOptions(height=8)


def test_range_options_take_one_value_and_sizes_are_bounded():
    assert PhantomOptions(fov_mm=320).fov_mm == (320.0, 320.0)
    assert PhantomOptions(slice_distance_mm=[9]).slice_distance_mm == (9.0, 9.0)
    assert PhantomOptions(fov_mm=np.float32(300.0), slice_distance_mm=(6, 7)).fov_mm == (300.0, 300.0)
    for bad in (dict(height=100000), dict(width=4096), dict(frames=1000), dict(coils=500), dict(supersample=50),
                dict(fov_mm=(1.0, 2.0, 3.0)), dict(fov_mm="wide"), dict(slice_distance_mm=float("nan")),
                dict(fov_mm=100.0, height=512),  # 0.2 mm pixels: finer than a reader accepts
                dict(height=512, width=512, frames=100), dict(height=512, supersample=8)):
        with pytest.raises(ValueError, match="PhantomOptions"):
            PhantomOptions(**bad)


def test_split_is_stratified_and_seeded():
    names = [f"c{i:03d}" for i in range(100)]
    groups = [GROUPS[i % 5] for i in range(100)]
    split = split_names(names, groups, seed=4)
    assert split == split_names(names, groups, seed=4)
    assert sorted(sum(split.values(), [])) == names
    for part, n in (("train", 14), ("val", 3), ("test", 3)):
        for g in GROUPS:
            assert sum(groups[names.index(x)] == g for x in split[part]) == n


def test_write_dataset_roundtrip(tmp_path):
    from cinemri.io import read_case

    tiny = dict(height=40, width=40, frames=4, slices=3, coils=2, fov_mm=(150.0, 150.0))
    paths = write_dataset(tmp_path / "a", num_cases=5, seed=9, **tiny)
    assert [p.exists() for p in paths] == [True] * 5
    split = json.loads((tmp_path / "a" / "split.json").read_text())
    assert sorted(sum(split.values(), [])) == sorted(p.stem for p in paths)
    back = read_case(paths[2])
    assert back.group == GROUPS[2]
    np.testing.assert_array_equal(back.labels, generate_case(int(back.name.split("_")[1]), group=GROUPS[2],
                                                             **tiny).labels)
    paths2 = write_dataset(tmp_path / "b", num_cases=5, seed=9, workers=2, **tiny)
    assert [p.name for p in paths2] == [p.name for p in paths]
    np.testing.assert_array_equal(read_case(paths2[4]).image, read_case(paths[4]).image)
    with pytest.raises(ValueError, match="num_cases"):
        write_dataset(tmp_path / "c", num_cases=0, seed=1)
