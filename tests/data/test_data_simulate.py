"""Simulated multi-coil acquisition of magnitude cine and augmentation (cinemri.data.simulate),
as the reconstruction dataset uses them."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from cinemri.case import Case
from cinemri.data import ReconDataset, ReconOptions, collate_recon
from cinemri.data.simulate import (COIL_FAMILIES, AugmentDraw, AugmentOptions, SimulationOptions, apply_spatial,
                                   apply_temporal, coil_maps, draw_augmentation, simulate_acquisition, smooth_phase)
from cinemri.recon import zero_filled


pytestmark = pytest.mark.usefixtures("one_thread")


def _magnitude_case(name: str = "mag", frames: int = 4, h: int = 24, w: int = 20) -> Case:
    """A magnitude cine like a DICOM series (complex64, zero imaginary part), 2 slices."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    body = (((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2 < 1).astype(np.float32)
    image = body * (100 + 20 * rng.random((2, frames, h, w)))  # (S, T, H, W)
    return Case(name=name, spacing=(8.0, 1.4, 1.4), image=image.astype(np.complex64))


@pytest.mark.parametrize("family", COIL_FAMILIES)
def test_coil_maps_are_normalised_smooth_and_varied(family):
    maps = coil_maps(np.random.default_rng(1), 6, 17, 22, family)
    assert maps.shape == (6, 17, 22) and maps.dtype == np.complex64
    np.testing.assert_allclose((np.abs(maps) ** 2).sum(axis=0), 1.0, atol=1e-5)
    assert np.abs(np.diff(maps, axis=-1)).max() < 0.5  # smooth: no jumps between neighbours
    other = coil_maps(np.random.default_rng(2), 6, 17, 22, family)
    assert np.abs(maps - other).mean() > 0.05
    with pytest.raises(ValueError, match="family"):
        coil_maps(np.random.default_rng(1), 6, 17, 22, "helmet")


def test_smooth_phase_peak_and_options_validation():
    phase = smooth_phase(np.random.default_rng(3), 16, 16, 1.0)
    centred = phase - phase[8, 8]
    assert np.abs(centred).max() <= 2.0 + 1e-9  # peak |phase - offset| <= 1 rad, either side
    for bad in ({"coils": (0, 3)}, {"coils": (5, 4)}, {"families": ("x",)}, {"snr": (0, 5)}, {"phase_max": -1}):
        with pytest.raises(ValueError):
            SimulationOptions(**bad)
    with pytest.raises(ValueError, match="frames"):
        AugmentOptions(frames=0)


def test_acquisition_noise_level_matches_the_snr():
    image = torch.zeros(2, 32, 32, dtype=torch.complex64)
    image[:, 8:24, 8:24] = 10.0
    acquisition = simulate_acquisition(np.random.default_rng(4), image, SimulationOptions(snr=(25.0, 25.0)))
    assert acquisition.noise_std == pytest.approx(10.0 / 25.0)
    assert torch.allclose(acquisition.image.abs(), image.abs(), atol=1e-5)  # phase only
    assert acquisition.image[0, 16, 16].imag != 0
    assert 4 <= acquisition.maps.shape[0] <= 12


def test_magnitude_case_becomes_a_deterministic_multicoil_sample():
    case = _magnitude_case()
    options = ReconOptions(mask_mode="per_epoch", center_lines=4, simulation=SimulationOptions(coils=(3, 6)))
    dataset = ReconDataset([case], options)
    first = dataset[1]
    assert 3 <= first.kspace.shape[0] <= 6 and first.kspace.shape[1:] == (4, 24, 20)
    again = ReconDataset([case], options)[1]
    for a, b in ((first.kspace, again.kspace), (first.maps, again.maps), (first.target, again.target)):
        assert torch.equal(a, b)  # same (seed, case, slice, epoch): same sample, in a new dataset too
    dataset.set_epoch(1)
    other = dataset[1]
    assert not torch.equal(other.target, first.target)  # new phase, coils and noise per epoch
    fixed = ReconDataset([case], ReconOptions(center_lines=4))
    fixed.set_epoch(3)
    assert torch.equal(fixed[0].target, ReconDataset([case], ReconOptions(center_lines=4))[0].target)
    # the target is the magnitude with a smooth phase plus noise of the drawn SNR
    magnitude = torch.from_numpy(case.image[1].real)
    error = (first.target / first.scale).abs() - magnitude
    inside = magnitude > 0
    assert first.target.imag.abs().max() > 0
    assert error[inside].std() < 0.05 * magnitude[inside].mean()  # SNR >= 20


def test_collate_pads_coils_with_zero_coils_that_change_nothing():
    case = _magnitude_case()
    dataset = ReconDataset([case], ReconOptions(center_lines=4, simulation=SimulationOptions(coils=(2, 9))))
    samples = [dataset[0], dataset[1]]
    seed = 0
    while samples[0].kspace.shape[0] == samples[1].kspace.shape[0]:  # find two slices with different counts
        seed += 1
        dataset = ReconDataset([case], ReconOptions(center_lines=4, seed=seed,
                                                    simulation=SimulationOptions(coils=(2, 9))))
        samples = [dataset[0], dataset[1]]
    batch = collate_recon(samples)
    assert batch.kspace.shape[1] == max(s.kspace.shape[0] for s in samples)
    for i, sample in enumerate(samples):
        alone = collate_recon([sample])
        torch.testing.assert_close(zero_filled(batch.kspace[i:i + 1], batch.mask[i:i + 1], batch.maps[i:i + 1]),
                                   zero_filled(alone.kspace, alone.mask, alone.maps))


def test_spatial_and_temporal_augmentation_against_numpy():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # (C, T, H, W)
    draw = AugmentDraw(flip_h=True, flip_w=False, quarter_turns=1, reverse=True, shift=1, frames=2,
                       origin=(1, -1), size=(3, 6))
    expected = np.rot90(x.numpy()[..., ::-1, :], 1, axes=(-2, -1))  # (C, T, 5, 4)
    padded = np.zeros((2, 3, 3, 6), np.float32)
    padded[..., :, 1:5] = expected[..., 1:4, :]
    np.testing.assert_array_equal(apply_spatial(x, draw).numpy(), padded)
    expected_t = np.roll(x.numpy()[:, ::-1], 1, axis=1)[:, :2]
    np.testing.assert_array_equal(apply_temporal(x, draw, dim=1).numpy(), expected_t)
    rng = np.random.default_rng(0)
    sizes = {draw_augmentation(rng, AugmentOptions(rot90=True), 4, 6, 8).size for _ in range(20)}
    assert sizes == {(6, 8)}  # non-square without crop: half turns only, the shape stays
    square = {draw_augmentation(rng, AugmentOptions(rot90=True), 4, 6, 6).quarter_turns for _ in range(40)}
    assert square == {0, 1, 2, 3}


def test_augmented_phantom_like_case_keeps_image_and_maps_together():
    """With maps normalised everywhere and no noise, the target is the augmented image exactly."""
    g = torch.Generator().manual_seed(0)
    image = torch.complex(torch.randn(1, 6, 16, 12, generator=g), torch.randn(1, 6, 16, 12, generator=g))
    maps = torch.complex(torch.randn(1, 3, 16, 12, generator=g), torch.randn(1, 3, 16, 12, generator=g))
    maps = maps / maps.abs().square().sum(dim=1, keepdim=True).sqrt()
    case = Case(name="ph", spacing=(8.0, 1.5, 1.5), image=image.numpy(), coil_maps=maps.numpy())
    augment = AugmentOptions(flip=True, rot90=True, time_reverse=True, time_shift=True, crop=(10, 14), frames=4)
    options = ReconOptions(mask_mode="per_epoch", center_lines=2, augment=augment, normalize=False)
    dataset = ReconDataset([case], options)
    seen = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        sample = dataset[0]
        assert sample.target.shape == (4, 10, 14) and sample.kspace.shape == (3, 4, 10, 14)
        from cinemri.data.cases import stable_seed

        rng = np.random.default_rng(stable_seed(0, "ph", 0, epoch, "augment"))
        draw = draw_augmentation(rng, augment, 6, 16, 12)
        expected = apply_temporal(apply_spatial(image[0], draw), draw, dim=0)  # (4, 10, 14)
        inside = apply_spatial(torch.ones(16, 12), draw) > 0  # zero padding has no maps
        torch.testing.assert_close(sample.target[:, inside], expected[:, inside], rtol=0, atol=1e-5)
        seen.add(draw)
    assert len(seen) > 1
