"""Tests of cinemri.metrics against independent references (scikit-image, brute force, hand values)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from cinemri.metrics import (
    MetricTable,
    cmrxrecon_scores,
    dice,
    hausdorff,
    hd95,
    nmse,
    nmse_batch,
    psnr,
    psnr_batch,
    segmentation_scores,
    ssim,
    ssim_batch,
    worst_frame_psnr_batch,
)

ACDC = Path(__file__).resolve().parents[3] / "shared" / "data" / "acdc" / "training"


def _structured(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth image with an ellipse, an edge and a little noise (H, W) float64."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w].astype(np.float64)
    img = 0.3 + 0.2 * x / w + 0.8 * (((y - h / 2) / (0.3 * h)) ** 2 + ((x - w / 2) / (0.25 * w)) ** 2 < 1)
    img[:, : w // 5] = 0.0
    return img + 0.02 * rng.standard_normal((h, w))


# ---------------------------------------------------------------- image metrics

@pytest.mark.parametrize("shape", [(7, 7), (15, 12), (33, 27), (64, 41)])
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_ssim_matches_skimage(shape, kind):
    rng = np.random.default_rng(sum(shape))
    if kind == "random":
        target = rng.random(shape)
        pred = target + 0.2 * rng.standard_normal(shape)
    else:
        target = _structured(*shape, seed=1)
        pred = ndimage.gaussian_filter(target, 1.0) + 0.05 * rng.standard_normal(shape)
    r = float(target.max())
    expected = sk_ssim(target, pred, data_range=r, win_size=7)
    assert ssim(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(expected, abs=1e-10)
    # an explicit data range is used as given
    expected2 = sk_ssim(target, pred, data_range=3.0 * r, win_size=7)
    assert ssim(torch.from_numpy(pred), torch.from_numpy(target), data_range=3.0 * r) == pytest.approx(expected2,
                                                                                                       abs=1e-10)


def test_ssim_cine_uses_one_data_range_for_all_frames():
    rng = np.random.default_rng(3)
    target = np.stack([_structured(23, 19, seed=s) * scale for s, scale in ((1, 1.0), (2, 0.3), (3, 0.6))])
    pred = target + 0.05 * rng.standard_normal(target.shape)
    r = float(target.max())
    expected = np.mean([sk_ssim(target[t], pred[t], data_range=r, win_size=7) for t in range(3)])
    per_frame_ranges = np.mean([sk_ssim(target[t], pred[t], data_range=target[t].max(), win_size=7)
                                for t in range(3)])
    got = ssim(torch.from_numpy(pred), torch.from_numpy(target))
    assert got == pytest.approx(expected, abs=1e-10)
    assert abs(got - per_frame_ranges) > 1e-3  # the convention matters on this case


def test_complex_inputs_use_magnitude_and_float32_agrees():
    rng = np.random.default_rng(4)
    target = np.abs(_structured(21, 17, seed=5))
    pred = target + 0.05 * rng.standard_normal(target.shape)
    phase = np.exp(1j * rng.uniform(-np.pi, np.pi, target.shape))
    tc = torch.from_numpy(target * phase).to(torch.complex64)
    pc = torch.from_numpy(np.abs(pred) * phase.conj()).to(torch.complex64)
    r = float(target.max())
    assert ssim(pc, tc) == pytest.approx(sk_ssim(target, np.abs(pred), data_range=r, win_size=7), abs=1e-5)
    assert psnr(pc, tc) == pytest.approx(sk_psnr(target, np.abs(pred), data_range=r), abs=1e-4)
    # a pure phase change is invisible to magnitude metrics
    assert psnr(tc * 1j, tc) == math.inf
    assert nmse(tc.conj(), tc) == 0.0
    assert ssim(tc * 1j, tc) == pytest.approx(1.0, abs=1e-12)


def test_psnr_and_nmse_hand_computed():
    target = torch.zeros(2, 4, 5, dtype=torch.float64)
    target[0, 1, 2] = 2.0
    target[1, 3, 4] = 1.0
    pred = target + 0.1
    # MSE = 0.01, range = 2 -> 10 log10(4 / 0.01)
    assert psnr(pred, target) == pytest.approx(10 * math.log10(400.0), abs=1e-12)
    assert psnr(pred, target, data_range=1.0) == pytest.approx(20.0, abs=1e-12)
    # ||pred - target||^2 = 40 * 0.01 = 0.4 ; ||target||^2 = 5
    assert nmse(pred, target) == pytest.approx(0.4 / 5.0, abs=1e-12)
    assert psnr(target, target) == math.inf
    rng = np.random.default_rng(6)
    t, p = rng.random((3, 13, 11)), rng.random((3, 13, 11))
    assert psnr(torch.from_numpy(p), torch.from_numpy(t)) == pytest.approx(
        sk_psnr(t, p, data_range=t.max()), abs=1e-10)


def test_worst_frame_psnr_is_the_lowest_frame_against_scikit_image():
    rng = np.random.default_rng(8)
    target = rng.random((2, 5, 12, 10))
    pred = target + rng.normal(0, 0.02, target.shape)
    pred[1, 3] += 0.2  # one bad frame in the second cine
    worst = worst_frame_psnr_batch(torch.from_numpy(pred), torch.from_numpy(target))
    for b in range(2):
        per_frame = [sk_psnr(target[b, t], pred[b, t], data_range=target[b].max()) for t in range(5)]
        assert float(worst[b]) == pytest.approx(min(per_frame), abs=1e-10)
    assert float(worst[1]) < float(psnr_batch(torch.from_numpy(pred), torch.from_numpy(target))[1]) - 5
    with pytest.raises(ValueError, match="cines"):
        worst_frame_psnr_batch(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))


def test_batched_variants_equal_per_case_loop():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 4, 16, 13, generator=g) * torch.tensor([1.0, 2.0, 0.5]).view(3, 1, 1, 1)
    pred = target + 0.1 * torch.randn(3, 4, 16, 13, generator=g)
    s, p, n = ssim_batch(pred, target), psnr_batch(pred, target), nmse_batch(pred, target)
    assert s.shape == p.shape == n.shape == (3,)
    for b in range(3):
        assert float(s[b]) == pytest.approx(ssim(pred[b], target[b]), abs=1e-12)
        assert float(p[b]) == pytest.approx(psnr(pred[b], target[b]), abs=1e-12)
        assert float(n[b]) == pytest.approx(nmse(pred[b], target[b]), abs=1e-12)
    assert torch.isinf(psnr_batch(target, target)).all()
    assert float(ssim_batch(pred[:, 0], target[:, 0], data_range=2.0)[1]) == pytest.approx(
        ssim(pred[1, 0], target[1, 0], data_range=2.0), abs=1e-12)


@pytest.mark.parametrize("crop", [True, False])
def test_cmrxrecon_scores_match_skimage_per_frame(crop):
    """The CMRxRecon convention, rebuilt with scikit-image: every frame divided by its own max,
    the central H/3 x W/2 region, data range 1, means over frames."""
    rng = np.random.default_rng(3)
    target = rng.random((2, 3, 66, 44)) + 0.2                        # (B, T, H, W)
    pred = (target * 1.7 + 0.05 * rng.standard_normal(target.shape)) * np.exp(1j * rng.random(target.shape))
    psnrs, ssims, nmses = [], [], []
    for t, p in zip(target.reshape(-1, 66, 44), np.abs(pred).reshape(-1, 66, 44)):
        t, p = t / t.max(), p / p.max()
        if crop:
            t, p = t[22:44, 11:33], p[22:44, 11:33]
        psnrs.append(sk_psnr(t, p, data_range=1))
        ssims.append(sk_ssim(t, p, data_range=1))
        nmses.append(((t - p) ** 2).sum() / (t ** 2).sum())
    got = cmrxrecon_scores(torch.from_numpy(pred), torch.from_numpy(target), crop=crop)
    assert got["psnr"] == pytest.approx(np.mean(psnrs), rel=1e-9)
    assert got["ssim"] == pytest.approx(np.mean(ssims), rel=1e-9)
    assert got["nmse"] == pytest.approx(np.mean(nmses), rel=1e-9)
    # a global scale does not change the per-image normalised scores; our case-range PSNR does change
    assert cmrxrecon_scores(torch.from_numpy(pred * 3), torch.from_numpy(target), crop=crop)["psnr"] == \
        pytest.approx(got["psnr"], rel=1e-9)
    with pytest.raises(ValueError, match="all zero"):
        cmrxrecon_scores(torch.ones(2, 30, 30), torch.zeros(2, 30, 30))


def test_image_metric_validation():
    a = torch.rand(5, 9, 9)
    with pytest.raises(ValueError, match=r"\(5, 9, 9\).*\(5, 9, 8\)"):
        psnr(a, torch.rand(5, 9, 8))
    with pytest.raises(ValueError, match="pred"):
        ssim(torch.full((9, 9), float("nan")), torch.rand(9, 9))
    with pytest.raises(ValueError, match="target"):
        nmse(torch.rand(9, 9), torch.full((9, 9), float("inf")))
    with pytest.raises(ValueError, match="shape"):
        psnr(torch.rand(9), torch.rand(9))
    with pytest.raises(ValueError, match="7x7"):
        ssim(torch.rand(6, 9), torch.rand(6, 9))
    with pytest.raises(ValueError, match="data_range"):
        psnr(torch.rand(9, 9), torch.zeros(9, 9))
    with pytest.raises(ValueError, match="data_range"):
        ssim(a, a, data_range=-1.0)
    with pytest.raises(ValueError, match="target"):
        nmse(a, torch.zeros_like(a))
    with pytest.raises(ValueError, match="data_range"):
        ssim_batch(a[:2], torch.stack([a[0], torch.zeros_like(a[0])]))


# ---------------------------------------------------------------- segmentation metrics

def test_dice_hand_computed_and_empty_rules():
    pred = np.array([[0, 1, 1], [3, 3, 0]])
    true = np.array([[0, 1, 0], [3, 3, 3]])
    assert dice(pred, true, 1) == pytest.approx(2 * 1 / (2 + 1))
    assert dice(pred, true, 3) == pytest.approx(2 * 2 / (2 + 3))
    assert dice(pred, true, 2) == 1.0           # absent from both: correctly absent
    assert dice(pred, np.zeros_like(true), 1) == 0.0
    assert dice(true, true, 3) == 1.0
    with pytest.raises(ValueError, match="shapes"):
        dice(pred, true[:, :2], 1)


def _brute_surface(mask: np.ndarray) -> np.ndarray:
    """Voxel coordinates with a face neighbour outside the mask (outside the array = background)."""
    padded = np.pad(mask, 1)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    boundary = np.zeros_like(mask)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            boundary |= ~np.roll(padded, step, axis=axis)[core]
    return np.argwhere(mask & boundary)


def _brute_distances(pred, true, spacing):
    a = _brute_surface(pred) * np.asarray(spacing)
    b = _brute_surface(true) * np.asarray(spacing)
    d = cdist(a, b)
    return d.min(axis=1), d.min(axis=0)


def _brute_hd95_hd(pred, true, spacing):
    d_ab, d_ba = _brute_distances(pred, true, spacing)
    return (max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)), max(d_ab.max(), d_ba.max()))


def _random_blobs(shape, seed, sigma=1.5, level=0.55):
    noise = np.random.default_rng(seed).random(shape)
    return ndimage.gaussian_filter(noise, sigma) > np.quantile(ndimage.gaussian_filter(noise, sigma), level)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape,spacing", [((31, 24), (0.7, 1.9)), ((5, 19, 23), (8.0, 1.25, 0.9))])
def test_hd95_and_hausdorff_match_brute_force(seed, shape, spacing):
    pred = _random_blobs(shape, seed)
    true = _random_blobs(shape, seed + 100)
    exp95, exp_max = _brute_hd95_hd(pred, true, spacing)
    assert hd95(pred, true, spacing) == pytest.approx(exp95, abs=1e-9)
    assert hausdorff(pred, true, spacing) == pytest.approx(exp_max, abs=1e-9)
    assert hd95(true, pred, spacing) == pytest.approx(exp95, abs=1e-9)  # symmetric by definition


def test_hd_of_small_masks_away_from_border_match_brute_force():
    # a crop of the transform must not change distances: tiny masks far apart in a big array
    pred = np.zeros((3, 60, 70), bool)
    true = np.zeros((3, 60, 70), bool)
    pred[1, 5:9, 6:8] = True
    true[0:2, 40:47, 50:61] = True
    spacing = (10.0, 0.8, 1.3)
    exp95, exp_max = _brute_hd95_hd(pred, true, spacing)
    assert hd95(pred, true, spacing) == pytest.approx(exp95, abs=1e-9)
    assert hausdorff(pred, true, spacing) == pytest.approx(exp_max, abs=1e-9)


def test_shifted_box_hausdorff_is_the_shift():
    a = np.zeros((40, 50), bool)
    a[10:25, 10:30] = True
    b = np.roll(a, 3, axis=1)
    assert hausdorff(a, b, (0.6, 1.7)) == pytest.approx(3 * 1.7)
    assert hausdorff(a, np.roll(a, 2, axis=0), (0.6, 1.7)) == pytest.approx(2 * 0.6)
    assert hd95(a, a, (0.6, 1.7)) == 0.0


@pytest.mark.parametrize("spacing", [(0.5, 0.5), (0.5, 0.8)])
def test_concentric_discs_hd_is_radius_difference(spacing):
    dy, dx = spacing
    y, x = np.mgrid[:161, :101].astype(np.float64)
    r2 = ((y - 80) * dy) ** 2 + ((x - 50) * dx) ** 2
    inner, outer = r2 <= 12.0 ** 2, r2 <= 20.0 ** 2
    tol = math.hypot(dy, dx)  # surface voxel centres lie within a voxel diagonal of the circle
    assert hausdorff(inner, outer, spacing) == pytest.approx(8.0, abs=tol)
    assert hd95(inner, outer, spacing) == pytest.approx(8.0, abs=tol)


def test_concentric_spheres_hd_is_radius_difference():
    spacing = (2.0, 0.9, 1.1)
    z, y, x = np.mgrid[:25, :61, :51].astype(np.float64)
    r2 = ((z - 12) * 2.0) ** 2 + ((y - 30) * 0.9) ** 2 + ((x - 25) * 1.1) ** 2
    inner, outer = r2 <= 10.0 ** 2, r2 <= 20.0 ** 2
    tol = math.hypot(*spacing)
    assert hausdorff(inner, outer, spacing) == pytest.approx(10.0, abs=tol)
    assert hd95(inner, outer, spacing) == pytest.approx(10.0, abs=tol)


def test_distance_empty_rules_and_validation():
    empty = np.zeros((9, 9), bool)
    full = np.zeros((9, 9), bool)
    full[2:5, 3:6] = True
    for fn in (hd95, hausdorff):
        assert fn(empty, empty, (1.0, 1.0)) == 0.0
        assert fn(full, empty, (1.0, 1.0)) == math.inf
        assert fn(empty, full, (1.0, 1.0)) == math.inf
    with pytest.raises(ValueError, match="bool"):
        hd95(full.astype(np.uint8), full, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(full, full, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hausdorff(full, full, (0.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(empty, empty, (1.0, float("nan")))  # validated even when the empty rule applies
    with pytest.raises(ValueError, match="shapes"):
        hd95(full, full[:, :8], (1.0, 1.0))
    with pytest.raises(ValueError, match="2D"):
        hd95(full[0], full[0], (1.0,))


def test_segmentation_scores_keys_and_values():
    true = np.zeros((4, 30, 30), np.uint8)
    true[:, 5:12, 5:25] = 1
    true[:, 14:26, 8:22] = 2
    true[:, 17:23, 11:19] = 3
    pred = np.roll(true, 1, axis=2)
    pred[pred == 1] = 0  # RV missed
    spacing = (8.0, 1.4, 1.4)
    scores = segmentation_scores(pred, true, spacing)
    assert set(scores) == {f"{m}_{s}" for s in ("rv", "myo", "lv") for m in ("dice", "n_pred", "n_true")} | {
        f"{m}_{s}_mm" for s in ("rv", "myo", "lv") for m in ("hd95", "hd")}
    assert scores["dice_rv"] == 0.0 and scores["hd95_rv_mm"] == math.inf and scores["n_pred_rv"] == 0
    assert scores["dice_lv"] == pytest.approx(dice(pred, true, 3))
    assert scores["hd_lv_mm"] == pytest.approx(1.4)
    assert scores["hd95_myo_mm"] == pytest.approx(hd95(pred == 2, true == 2, spacing))
    assert scores["n_true_lv"] == 4 * 6 * 8


def _acdc_lv_masks():
    """(ED LV mask, ES LV mask, spacing (dz, dy, dx)) of ACDC patient001 if present, else a synthetic pair."""
    folder = ACDC / "patient001"
    if folder.is_dir():
        import nibabel as nib
        info = dict(line.split(":", 1) for line in (folder / "Info.cfg").read_text().splitlines() if ":" in line)
        masks = []
        for key in ("ED", "ES"):
            img = nib.load(folder / f"patient001_frame{int(info[key]):02d}_gt.nii.gz")
            masks.append(np.transpose(np.asarray(img.dataobj), (2, 1, 0)).round() == 3)  # (S, H, W)
        dx, dy, dz = (float(v) for v in img.header.get_zooms()[:3])
        return masks[0], masks[1], (dz, dy, dx)
    z, y, x = np.mgrid[:8, :64, :64]
    ed = ((y - 32) / 14.0) ** 2 + ((x - 30) / 12.0) ** 2 + ((z - 4) / 5.0) ** 2 < 1
    es = ((y - 33) / 10.0) ** 2 + ((x - 31) / 9.0) ** 2 + ((z - 4) / 4.0) ** 2 < 1
    return ed, es, (10.0, 1.5, 1.5)


def test_hd_on_acdc_ed_es_lv_matches_brute_force():
    ed, es, spacing = _acdc_lv_masks()
    exp95, exp_max = _brute_hd95_hd(ed, es, spacing)
    assert hd95(ed, es, spacing) == pytest.approx(exp95, abs=1e-9)
    assert hausdorff(ed, es, spacing) == pytest.approx(exp_max, abs=1e-9)
    assert 0 < exp95 <= exp_max


# ---------------------------------------------------------------- accumulator

def _table() -> MetricTable:
    t = MetricTable()
    t.add("a", {"dice_lv": 0.9, "hd95_lv_mm": 2.0})
    t.add("b", {"dice_lv": 0.8, "hd95_lv_mm": math.inf})
    t.add("c, with comma", {"dice_lv": 0.7, "hd95_lv_mm": 4.0, "psnr": float("nan")})
    t.add("d", {"dice_lv": np.float32(0.6), "hd95_lv_mm": 1.0 / 3.0})
    return t


def test_metric_table_summary_counts_inf_and_nan():
    t = _table()
    assert len(t) == 4 and t.metric_names == ("dice_lv", "hd95_lv_mm", "psnr")
    s = t.summary()
    vals = np.array([0.9, 0.8, 0.7, np.float32(0.6)], dtype=np.float64)
    assert s["dice_lv"].mean == pytest.approx(vals.mean())
    assert s["dice_lv"].std == pytest.approx(np.std(vals, ddof=1))
    assert (s["dice_lv"].n, s["dice_lv"].n_finite, s["dice_lv"].n_inf) == (4, 4, 0)
    h = s["hd95_lv_mm"]
    assert (h.n, h.n_finite, h.n_inf, h.n_nan) == (4, 3, 1, 0)
    assert h.mean == pytest.approx((2.0 + 4.0 + 1 / 3) / 3) and h.median == pytest.approx(2.0)
    p = s["psnr"]
    assert (p.n, p.n_finite, p.n_nan) == (1, 0, 1) and math.isnan(p.mean) and math.isnan(p.std)
    assert t.rows[2] == {"case": "c, with comma", "dice_lv": 0.7, "hd95_lv_mm": 4.0, "psnr": t.rows[2]["psnr"]}
    assert "psnr" not in t.rows[0]


def test_metric_table_validation():
    t = _table()
    with pytest.raises(ValueError, match="'a'"):
        t.add("a", {"dice_lv": 1.0})
    with pytest.raises(ValueError, match="dice_lv"):
        t.add("e", {"dice_lv": "0.5"})
    with pytest.raises(ValueError, match="case"):
        t.add("e", {"case": 1.0})
    with pytest.raises(ValueError, match="ssim"):
        t.values("ssim")


def test_metric_table_csv_round_trip_is_atomic_and_exact(tmp_path):
    t = _table()
    path = tmp_path / "metrics.csv"
    path.write_text("old content that must be replaced\n")
    t.to_csv(path)
    assert sorted(os.listdir(tmp_path)) == ["metrics.csv"]  # no temporary file left behind
    back = MetricTable.read_csv(path)
    assert back.metric_names == t.metric_names
    for r0, r1 in zip(t.rows, back.rows):
        assert r0.keys() == r1.keys()
        for k in r0:
            assert r0[k] == r1[k] or (isinstance(r0[k], float) and math.isnan(r0[k]) and math.isnan(r1[k]))
    assert path.read_text().splitlines()[0] == "case,dice_lv,hd95_lv_mm,psnr"
    bad = tmp_path / "bad.csv"
    bad.write_text("case,dice\nx,oops\n")
    with pytest.raises(ValueError, match="oops"):
        MetricTable.read_csv(bad)


def test_metric_table_markdown():
    md = _table().to_markdown(digits=3)
    lines = md.splitlines()
    assert lines[0] == "| case | dice_lv | hd95_lv_mm | psnr |"
    assert "| a | 0.900 | 2.000 |  |" in lines
    assert "| b | 0.800 | inf |  |" in lines
    assert any(line.startswith("| hd95_lv_mm | 2.111 ± ") and line.endswith("| 4 | 1 | 0 |") for line in lines)
