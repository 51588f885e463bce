"""Reconstruction and segmentation datasets: shapes, dtypes and the truth of each step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from io_builders import make_case, matlab_kspace, write_acdc, write_mat73

from cinemri.case import Case
from cinemri.data import (ReconDataset, ReconOptions, SegDataset, SegOptions, center_crop_or_pad, collate_recon,
                          collate_seg, normalisation_scale, normalize_intensity)
from cinemri.data.seg import context_offsets, context_planes
from cinemri.io import write_case
from cinemri.physics import fft2c, ifft2c, sense_adjoint, sense_forward


def _phantom_paths(tmp_path, n=2):
    return [write_case(make_case(seed=i, s=2, t=3, h=15, w=12), tmp_path / f"c{i}.h5") for i in range(n)]


def test_recon_sample_shapes_and_dtypes(tmp_path):
    ds = ReconDataset(_phantom_paths(tmp_path), ReconOptions(acceleration=3, center_lines=2))
    assert len(ds) == 4
    sample = ds[3]
    assert sample.kspace.shape == (4, 3, 15, 12) and sample.kspace.dtype == torch.complex64
    assert sample.mask.shape == (1, 3, 1, 12) and sample.mask.dtype == torch.bool
    assert sample.maps.shape == (4, 15, 12) and sample.maps.dtype == torch.complex64
    assert sample.target.shape == (3, 15, 12) and sample.target.dtype == torch.complex64
    assert (sample.name, sample.slice_index) == ("tiny1", 1)
    batch = collate_recon([ds[0], ds[1], ds[2]])
    assert batch.kspace.shape == (3, 4, 3, 15, 12) and batch.mask.shape == (3, 1, 3, 1, 12)
    assert batch.scale.shape == (3,) and batch.names == ["tiny0", "tiny0", "tiny1"]


def test_recon_kspace_equals_simulation_at_sampled_positions(tmp_path):
    case = make_case(noise_std=0.0)
    ds = ReconDataset([case], ReconOptions(acceleration=3, center_lines=2, normalize=False))
    sample = ds[1]
    full = sense_forward(torch.from_numpy(case.image[1:2]), torch.from_numpy(case.coil_maps[1:2]))[0]
    mask = sample.mask[0, :, 0, :]  # (T, W)
    np.testing.assert_allclose((sample.kspace * sample.mask).numpy(), (full * sample.mask).numpy(), atol=1e-5)
    assert (sample.kspace[~sample.mask.expand_as(sample.kspace)] == 0).all()
    # exact acceleration per frame: round(12 / 3) = 4 lines
    assert mask.sum(dim=1).tolist() == [4, 4, 4]
    # noise-free target = S^H F^H F S x = x inside the maps' support (sum |S|^2 = 1)
    np.testing.assert_allclose(sample.target.numpy(), case.image[1], atol=1e-5)


def test_recon_noise_level_and_reproducibility(tmp_path):
    case = make_case(s=1, t=4, h=31, w=28, c=6, noise_std=0.5)
    opts = ReconOptions(acceleration=1, center_lines=0, normalize=False)
    a, b = ReconDataset([case], opts)[0], ReconDataset([case], opts)[0]
    assert torch.equal(a.kspace, b.kspace) and torch.equal(a.mask, b.mask)
    clean = sense_forward(torch.from_numpy(case.image), torch.from_numpy(case.coil_maps))[0]
    noise = a.kspace - clean
    assert noise.abs().pow(2).mean().sqrt().item() == pytest.approx(0.5, rel=0.05)
    other = ReconDataset([case], replace(opts, seed=1))[0]
    assert not torch.equal(other.kspace, a.kspace)


def test_mask_fixed_for_validation_and_per_epoch_for_training(tmp_path):
    paths = _phantom_paths(tmp_path)
    opts = ReconOptions(acceleration=4, center_lines=2)
    val = ReconDataset(paths, opts)
    m0 = val[0].mask
    val.set_epoch(5)
    assert torch.equal(val[0].mask, m0)  # fixed: independent of epoch and of the instance
    assert torch.equal(ReconDataset(paths, opts)[0].mask, m0)
    assert not torch.equal(val[1].mask, m0)  # other slice, other mask
    train = ReconDataset(paths, replace(opts, mask_mode="per_epoch"))
    masks = []
    for epoch in range(3):
        train.set_epoch(epoch)
        masks.append(train[0].mask)
    assert not torch.equal(masks[0], masks[1]) or not torch.equal(masks[1], masks[2])
    train.set_epoch(1)
    assert torch.equal(train[0].mask, masks[1])


def test_normalisation_scale_is_one_over_the_99th_percentile_magnitude():
    g = torch.Generator().manual_seed(0)
    image = torch.complex(torch.randn(3, 17, 19, generator=g), torch.randn(3, 17, 19, generator=g))
    expected = 1.0 / torch.quantile(image.abs().flatten(), 0.99).item()  # linear interpolation, as numpy
    assert normalisation_scale(image) == pytest.approx(expected, rel=1e-6)
    assert normalisation_scale(torch.zeros(2, 4, 4, dtype=torch.complex64)) == 1.0


def test_normalisation_and_scale(tmp_path):
    case = make_case(noise_std=0.0)
    plain = ReconDataset([case], ReconOptions(acceleration=2, center_lines=2, normalize=False))[0]
    norm = ReconDataset([case], ReconOptions(acceleration=2, center_lines=2))[0]
    zero_filled = sense_adjoint(norm.kspace[None], norm.maps[None])[0].abs()
    assert torch.quantile(zero_filled.flatten(), 0.99).item() == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(norm.target / norm.scale, plain.target, atol=1e-5, rtol=1e-4)


def test_crop_and_single_coil(tmp_path):
    case = make_case(s=1, h=15, w=12, noise_std=0.0)
    ds = ReconDataset([case], ReconOptions(acceleration=2, center_lines=2, normalize=False, crop=(9, 8)))
    sample = ds[0]
    assert sample.kspace.shape == (4, 3, 9, 8) and sample.maps.shape == (4, 9, 8)
    full = fft2c(torch.from_numpy(center_crop_or_pad(
        ifft2c(sense_forward(torch.from_numpy(case.image), torch.from_numpy(case.coil_maps))).numpy(), (9, 8))))[0]
    torch.testing.assert_close(sample.kspace, full * sample.mask, atol=1e-5, rtol=1e-4)
    single = ReconDataset([case], ReconOptions(acceleration=2, center_lines=2, normalize=False, single_coil=True))[0]
    assert single.kspace.shape == (1, 3, 15, 12) and torch.all(single.maps == 1)
    torch.testing.assert_close((fft2c(single.target) * single.mask[0]), single.kspace[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="crop"):
        ReconDataset([case], ReconOptions(crop=(40, 8)))[0]


def test_kspace_case_from_cmrxrecon_file(tmp_path):
    k = matlab_kspace(c=4, s=1, t=3, kx=16, ky=14)
    path = write_mat73(tmp_path / "cine_sax.mat", {"kspace_full": k})
    sample = ReconDataset([path], ReconOptions(acceleration=2, center_lines=4, calib_lines=6))[0]
    assert sample.kspace.shape == (4, 3, 16, 14) and sample.maps.shape == (4, 16, 14)
    assert torch.isfinite(sample.target.abs()).all()
    under = Case(name="u", spacing=(8.0, 1.5, 1.5), kspace=np.ones((1, 1, 2, 4, 4), np.complex64),
                 mask=np.array([[1, 0, 1, 0], [0, 1, 0, 1]], bool))
    with pytest.raises(ValueError, match="undersampled"):
        ReconDataset([under])[0]


def test_options_validate():
    for bad in (dict(acceleration=0.5), dict(pattern="spiral"), dict(mask_mode="random"), dict(crop=(0, 3))):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ReconOptions(**bad)
    with pytest.raises(ValueError, match="normalization"):
        SegOptions(normalization="minmax")


def test_seg_dataset_from_labelled_frames(tmp_path):
    paths = _phantom_paths(tmp_path)
    ds = SegDataset(paths, SegOptions(size=(16, 10)))
    assert len(ds) == 2 * 2 * 2  # cases x slices x labelled frames (0, 2)
    sample = ds[3]
    assert sample.image.shape == (1, 16, 10) and sample.image.dtype == torch.float32
    assert sample.labels.shape == (16, 10) and sample.labels.dtype == torch.int64
    assert (sample.name, sample.slice_index, sample.frame) == ("tiny0", 1, 2)
    torch.testing.assert_close(sample.spacing, torch.tensor([1.25, 1.5]))
    case = make_case(seed=0)
    expected = center_crop_or_pad(case.labels[1, 2], (16, 10))
    np.testing.assert_array_equal(sample.labels.numpy(), expected)
    batch = collate_seg([ds[i] for i in range(len(ds))])
    assert batch.image.shape == (8, 1, 16, 10) and batch.labels.shape == (8, 16, 10) and batch.spacing.shape == (8, 2)
    assert batch.frames == [0, 2] * 4
    full = SegDataset(paths)[0]
    assert full.image.shape == (1, 15, 12)
    assert full.image.mean().item() == pytest.approx(0, abs=1e-5) and full.image.std(unbiased=False).item() == \
        pytest.approx(1, abs=1e-4)


def test_seg_context_channels_are_the_neighbouring_planes(tmp_path):
    """2.5D samples: channel order (centre, slices -k..k, frames -m..m); the edge slice repeats
    beyond the stack; frames wrap around the cycle; each channel normalised like the centre."""
    case = make_case(seed=0, s=3, t=4, h=15, w=12)
    path = write_case(case, tmp_path / "c.h5")
    assert context_offsets(1, 1) == ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
    assert context_planes(0, 3, (3, 4), context_offsets(1, 1)) == [(0, 3), (0, 3), (1, 3), (0, 2), (0, 0)]
    options = SegOptions(context_slices=1, context_frames=1)
    assert options.channels == 5
    ds = SegDataset([path], options)
    sample = ds[[(s, t) for s in range(3) for t in (0, 2)].index((0, 0))]  # slice 0, frame 0
    expected = [normalize_intensity(np.abs(case.image[s, t]), "zscore") for s, t in [(0, 0), (0, 0), (1, 0), (0, 3),
                                                                                          (0, 1)]]
    np.testing.assert_allclose(sample.image.numpy(), np.stack(expected), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(sample.labels.numpy(), case.labels[0, 0])
    plain = SegDataset([path])[0]
    torch.testing.assert_close(plain.image[0], sample.image[0])  # the centre channel is the 2D sample
    with pytest.raises(ValueError, match="context_slices"):
        SegOptions(context_slices=-1)
    with pytest.raises(ValueError, match="context_frames"):
        SegOptions(context_frames=9)
    with pytest.raises(ValueError, match="at least 5 frames, got 4"):
        SegDataset([path], SegOptions(context_frames=2))[0]


def test_seg_reference_channel_is_the_same_slice_at_end_diastole(tmp_path):
    """reference_frame: one more channel, last, holding the same slice at the case's ED frame
    (frame 0 when the case does not know it); it works on a two-frame (ED + ES) case, where frame
    context is refused, and an ED frame outside the cine is refused."""
    from dataclasses import replace

    assert context_offsets(0, 0, True) == ((0, 0), (0, "ed"))
    assert context_offsets(1, 0, True)[-1] == (0, "ed")
    assert context_planes(2, 1, (3, 2), context_offsets(0, 0, True), ed_frame=0) == [(2, 1), (2, 0)]
    assert context_planes(0, 5, (3, 12), context_offsets(0, 1, True), ed_frame=3) == [(0, 5), (0, 4), (0, 6), (0, 3)]
    assert context_planes(0, 5, (3, 12), context_offsets(0, 0, True)) == [(0, 5), (0, 0)]
    with pytest.raises(ValueError, match="end-diastolic frame 4 is outside the cine's 2 frames"):
        context_planes(0, 1, (3, 2), context_offsets(0, 0, True), ed_frame=4)
    case = make_case(seed=0, s=3, t=2, h=15, w=12)
    labels = case.labels.copy()
    labels[:, 1] = np.roll(labels[:, 0], 1, axis=-1)
    # ED second: the channel follows ed_frame, not frame 0
    case = replace(case, labels=labels, ed_frame=1, es_frame=0, labelled_frames=(0, 1))
    path = write_case(case, tmp_path / "c.h5")
    options = SegOptions(reference_frame=True)
    assert options.channels == 2
    ds = SegDataset([path], options)
    for item, (i, s, t) in enumerate(ds.index):
        sample = ds[item]
        expected = [normalize_intensity(np.abs(case.image[s, f]), "zscore") for f in (t, 1)]
        np.testing.assert_allclose(sample.image.numpy(), np.stack(expected), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(sample.labels.numpy(), case.labels[s, t])


def test_seg_from_acdc_folder_and_skip_empty(tmp_path):
    folder, image, labels = write_acdc(tmp_path)
    ds = SegDataset([folder], SegOptions(normalization="percentile", skip_empty=True))
    assert len(ds) == 2 * 2  # slice 0 is empty at both frames
    sample = ds[0]
    assert sample.image.min().item() == 0 and sample.image.max().item() == 1
    assert (sample.slice_index, sample.frame) == (1, 0)
    np.testing.assert_array_equal(sample.labels.numpy(), labels[:, :, 1, 0])
    assert len(SegDataset([folder])) == 3 * 2


def test_crop_pad_and_normalize_helpers():
    x = np.arange(5 * 6).reshape(5, 6)
    assert center_crop_or_pad(x, (3, 4))[1, 2] == x[2, 3]  # centre stays the centre
    padded = center_crop_or_pad(x, (7, 9))
    assert padded.shape == (7, 9) and padded[3, 4] == x[2, 3] and padded.sum() == x.sum()
    image = np.array([[0.0, 1.0], [2.0, 100.0]], np.float32)
    out = normalize_intensity(image, "percentile", (0.0, 50.0))
    np.testing.assert_allclose(out, [[0, 2 / 3], [1, 1]], atol=1e-6)
    assert normalize_intensity(np.ones((3, 3)), "zscore").sum() == 0
