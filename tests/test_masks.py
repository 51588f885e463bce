"""cinemri.masks: exact acceleration, fully sampled centre, determinism, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cinemri.masks import (
    PATTERNS,
    achieved_acceleration,
    cartesian_mask,
    center_slice,
    lines_per_frame,
)

WIDTHS = (96, 128, 150, 246, 512)
ACCELERATIONS = (2, 4, 5, 8, 10)
CMRX_MASK = Path("/work/shared/data/samples/cmrxrecon2024_demo/cine_sax_mask_Uniform8.mat")


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("acceleration", ACCELERATIONS)
def test_every_frame_has_the_asked_acceleration_and_the_centre(pattern, width, acceleration):
    frames = 12
    mask = cartesian_mask(frames, width, acceleration, center_lines=8, pattern=pattern, seed=3)
    assert mask.shape == (frames, width) and mask.dtype == torch.bool
    per_frame = mask.sum(dim=1)
    target = width / acceleration
    assert (per_frame - target).abs().max() <= 1  # within one line, every frame
    assert abs(achieved_acceleration(mask) - width / per_frame.double().mean()) < 1e-12
    centre = slice(width // 2 - 4, width // 2 + 4)  # 8 lines: 4 below DC, DC, 3 above
    assert mask[:, centre].all()


def test_lines_per_frame_rounds_half_up():
    assert lines_per_frame(246, 8) == 31  # 30.75
    assert lines_per_frame(150, 4) == 38  # 37.5
    assert lines_per_frame(10, 4) == 3  # 2.5
    assert lines_per_frame(128, 1) == 128


def test_centre_block_is_around_dc():
    assert center_slice(128, 8) == slice(60, 68)
    assert center_slice(15, 3) == slice(6, 9)  # DC at 7
    assert center_slice(15, 4) == slice(5, 9)
    assert center_slice(9, 0) == slice(4, 4)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_acceleration_one_is_fully_sampled(pattern):
    mask = cartesian_mask(5, 37, 1, center_lines=5, pattern=pattern)
    assert mask.all()
    assert achieved_acceleration(mask) == 1.0


def test_vd_random_differs_between_frames_and_is_denser_near_the_centre():
    frames, width = 64, 128
    mask = cartesian_mask(frames, width, 4, center_lines=8, pattern="vd_random", seed=0)
    distinct = {tuple(row.tolist()) for row in mask}
    assert len(distinct) == frames
    density = mask.double().mean(dim=0)  # (W,) fraction of frames sampling each line
    dc = width // 2
    near = torch.cat([density[dc - 16 : dc - 4], density[dc + 4 : dc + 16]]).mean()
    far = torch.cat([density[:24], density[-24:]]).mean()
    assert near > 2 * far > 0  # variable density, but the periphery is still visited


def test_equispaced_is_a_lattice_shifted_by_one_line_per_frame():
    width, frames = 128, 6
    mask = cartesian_mask(frames, width, 4, center_lines=0, pattern="equispaced", seed=0)
    offsets = [int(row.nonzero()[0]) for row in mask]
    for t in range(frames):
        expected = torch.zeros(width, dtype=torch.bool)
        expected[(offsets[0] + t) % 4 :: 4] = True  # every 4th line, shifted by t
        assert torch.equal(mask[t], expected)


def test_equispaced_with_centre_keeps_uniform_spacing_outside_it():
    width = 120
    mask = cartesian_mask(3, width, 5, center_lines=8, pattern="equispaced", seed=1)
    centre = center_slice(width, 8)
    outer = torch.ones(width, dtype=torch.bool)
    outer[centre] = False
    for row in mask:
        positions = row[outer].nonzero().squeeze(1)  # indices among non-centre lines
        gaps = positions[1:] - positions[:-1]
        assert gaps.min() >= 6 and gaps.max() <= 7  # 112 lines / 16 picks = 7 apart
    assert not torch.equal(mask[0], mask[1])


@pytest.mark.parametrize("pattern", PATTERNS)
def test_same_seed_same_mask_different_seed_different_mask(pattern):
    a = cartesian_mask(8, 128, 5, center_lines=8, pattern=pattern, seed=11)
    b = cartesian_mask(8, 128, 5, center_lines=8, pattern=pattern, seed=11)
    assert torch.equal(a, b)
    others = [cartesian_mask(8, 128, 5, center_lines=8, pattern=pattern, seed=s) for s in range(12)]
    assert any(not torch.equal(a, other) for other in others)


def test_mask_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    cartesian_mask(4, 64, 4, center_lines=4, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_numpy_integers_are_accepted():
    mask = cartesian_mask(np.int64(3), np.int64(64), np.float64(4.0), np.int64(4), seed=np.int64(2))
    assert mask.shape == (3, 64)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_frames=0), "num_frames"),
        (dict(num_frames=2.0), "num_frames"),
        (dict(num_lines=-4), "num_lines"),
        (dict(acceleration=0.5), "acceleration"),
        (dict(acceleration=float("inf")), "acceleration"),
        (dict(acceleration="4"), "acceleration"),
        (dict(center_lines=-1), "center_lines"),
        (dict(center_lines=129), "center_lines"),
        (dict(center_lines=14), "center_lines"),  # 128 / 10 -> 13 lines < 14 centre lines
        (dict(pattern="radial"), "pattern"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    args = dict(num_frames=4, num_lines=128, acceleration=10, center_lines=8,
                pattern="vd_random", seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        cartesian_mask(**args)


def test_achieved_acceleration_on_hand_made_and_kspace_layout_masks():
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :5] = True
    mask[1, :2] = True
    assert achieved_acceleration(mask) == pytest.approx(10 / 3.5)
    assert achieved_acceleration(mask[None, None, :, None, :]) == pytest.approx(10 / 3.5)
    with pytest.raises(ValueError, match="mask"):
        achieved_acceleration(mask.float())
    with pytest.raises(ValueError, match="no line"):
        achieved_acceleration(torch.zeros(3, 8, dtype=torch.bool))


def test_achieved_acceleration_of_real_cmrxrecon_mask():
    """CMRxRecon's 'AccFactor08' mask adds 16 centre lines to every 8th of 246: 45 lines.

    Without the data folder, the same construction is rebuilt by hand.
    """
    if CMRX_MASK.exists():
        import h5py

        with h5py.File(CMRX_MASK, "r") as f:
            lines = np.asarray(f["mask"])[:, 0] > 0  # HDF5 (W, H) = (246, 512)
    else:
        lines = np.zeros(246, dtype=bool)
        lines[::8] = True
        lines[115:131] = True
    mask = torch.from_numpy(lines)[None, :]  # (1, W)
    assert mask.shape == (1, 246) and int(mask.sum()) == 45
    assert achieved_acceleration(mask) == pytest.approx(246 / 45)
    ours = cartesian_mask(1, 246, 8, center_lines=16, pattern="equispaced")
    assert int(ours.sum()) == 31  # what "8x" means here: round(246 / 8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(acceleration=0.5), "acceleration"), (dict(acceleration=float("inf")), "acceleration"),
    (dict(acceleration=True), "acceleration"), (dict(pattern="spiral"), "pattern"),
    (dict(center_lines=-1), "center_lines"), (dict(center_lines=8.0), "center_lines")])
def test_mask_options_refuse_bad_settings_by_name(kwargs, match):
    from cinemri.masks import MaskOptions

    with pytest.raises(ValueError, match=match):
        MaskOptions(**kwargs)
