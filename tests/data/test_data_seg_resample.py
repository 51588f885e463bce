"""In-plane resampling of segmentation slices and its exact inverse (cinemri.data.seg.SliceGrid)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cinemri.data.seg import SegDataset, SegOptions, SliceGrid


def _labels(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w), np.uint8)
    out[np.hypot(y - h / 2, x - w / 2) < min(h, w) / 3] = 2
    out[np.hypot(y - h / 2, x - w / 2) < min(h, w) / 5] = 3
    out[(np.abs(y - h / 2) < 3) & (x < w / 5)] = 1
    return out


def test_plan_keeps_field_of_view_and_effective_spacing():
    grid = SliceGrid.plan((4, 7, 15, 12), (10.0, 1.25, 1.5), SegOptions(spacing_mm=1.5))
    assert grid.original == (15, 12) and grid.resampled == (12, 12)
    assert grid.spacing == pytest.approx((15 * 1.25 / 12, 1.5))  # round(12.5) = 12: 1.5625 mm
    assert grid.size == grid.resampled  # no crop asked
    assert SliceGrid.plan((15, 12), (1.25, 1.5), SegOptions()).resampled == (15, 12)  # None: native grid
    with pytest.raises(ValueError, match="spacing_mm"):
        SegOptions(spacing_mm=0.0)


def test_labels_round_trip_to_coarse_and_back_is_close_and_exact_in_shape():
    labels = _labels(61, 47)
    grid = SliceGrid.plan(labels.shape, (0.7, 0.8), SegOptions(spacing_mm=1.5, size=(40, 40)))
    small = grid.prepare_labels(labels)
    assert small.shape == (40, 40) and small.dtype == np.int64
    assert set(np.unique(small)) <= {0, 1, 2, 3}  # nearest: no mixed values
    back = grid.restore_labels(small)
    assert back.shape == labels.shape and back.dtype == np.int64
    assert (back == labels).mean() > 0.95  # only the borders move, by < 1 coarse pixel


def test_identity_grid_round_trips_exactly():
    labels = _labels(20, 18)
    grid = SliceGrid.plan(labels.shape, (1.5, 1.5), SegOptions(spacing_mm=1.5))
    np.testing.assert_array_equal(grid.restore_labels(grid.prepare_labels(labels)), labels)
    onehot = np.eye(4, dtype=np.float32)[grid.prepare_labels(labels)].transpose(2, 0, 1)  # (K, h, w)
    np.testing.assert_array_equal(grid.restore_probabilities(onehot).argmax(0), labels)


def test_image_resampling_matches_torch_bilinear_and_crop_is_centred():
    rng = np.random.default_rng(0)
    image = rng.random((30, 24)).astype(np.float32)
    options = SegOptions(spacing_mm=2.0, normalization="none", size=(11, 13))
    grid = SliceGrid.plan(image.shape, (1.0, 1.0), options)
    assert grid.resampled == (15, 12)
    expected = F.interpolate(torch.from_numpy(image)[None, None], size=(15, 12), mode="bilinear",
                             align_corners=False)[0, 0].numpy()
    out = grid.prepare_image(image, options)
    assert out.shape == (11, 13)
    # rows: crop 15 -> 11 starts at 15 // 2 - 11 // 2 = 2; columns: pad 12 -> 13 adds one at the end
    np.testing.assert_allclose(out[:, :12], expected[2:13], rtol=1e-6)
    np.testing.assert_allclose(out[:, 12], 0)


def test_restore_probabilities_fills_cropped_area_with_background():
    labels = np.full((40, 40), 3, np.uint8)
    options = SegOptions(spacing_mm=1.0, size=(20, 20))
    grid = SliceGrid.plan(labels.shape, (1.0, 1.0), options)
    probs = np.zeros((4, 20, 20), np.float32)
    probs[3] = 1.0
    restored = grid.restore_probabilities(probs).argmax(0)
    assert restored.shape == (40, 40)
    assert (restored[10:30, 10:30] == 3).all() and (restored[:10] == 0).all() and (restored[:, 30:] == 0).all()
    with pytest.raises(ValueError, match="probs"):
        grid.restore_probabilities(np.zeros((4, 21, 20)))


def test_dataset_resamples_to_the_option_spacing():
    from cinemri.case import Case

    labels = _labels(30, 26)[None, None]  # (1, 1, H, W)
    case = Case(name="c", spacing=(8.0, 0.75, 0.75), image=(labels * 50.0 + 10).astype(np.complex64),
                labels=labels, labelled_frames=(0,))
    sample = SegDataset([case], SegOptions(spacing_mm=1.5))[0]
    assert sample.image.shape == (1, 15, 13) and sample.labels.shape == (15, 13)
    torch.testing.assert_close(sample.spacing, torch.tensor([1.5, 0.75 * 26 / 13]))


def test_window_off_centre_round_trip_and_background_outside():
    labels = _labels(37, 50)
    grid = SliceGrid.plan(labels.shape, (1.5, 1.5), SegOptions(spacing_mm=1.5, size=(20, 24)), centre=(30, 8))
    assert grid.window_centre == (30, 8)
    window = grid.prepare_labels(labels)  # rows 20..39 (37.. padded), columns -4..19 (-4..-1 padded)
    assert window.shape == (20, 24)
    assert np.array_equal(window[:17, 4:], labels[20:37, 0:20]) and not window[17:].any() and not window[:, :4].any()
    back = grid.restore_labels(window)
    inside = np.zeros_like(labels, bool)
    inside[20:37, 0:20] = True
    assert np.array_equal(back[inside], labels[inside]) and not back[~inside].any()
    probs = np.zeros((4, 20, 24), np.float32)
    probs[3] = 1.0
    restored = grid.restore_probabilities(probs)
    assert np.allclose(restored[3][inside], 1.0) and np.allclose(restored[0][~inside], 1.0)
    centred = SliceGrid.plan(labels.shape, (1.5, 1.5), SegOptions(spacing_mm=1.5, size=(20, 24)))
    assert np.array_equal(centred.prepare_labels(labels), labels[8:28, 13:37])  # None: the centre crop
