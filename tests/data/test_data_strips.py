"""Readout strips (cinemri.data.strips): adjointness, and DC / zero filling / view sharing on a
strip equal to the full image's, restricted to the strip's rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinemri.case import Case

from cinemri.data import ReconDataset, ReconOptions
from cinemri.data.strips import image_strip, readout_strip, readout_strip_adjoint
from cinemri.physics import sense_adjoint, sense_forward
from cinemri.recon import view_sharing
from cinemri.recon.dc import DataConsistency, hard_dc, soft_dc

B, C, T, H, W = 2, 3, 4, 15, 12  # odd H: the strip's centred FFT differs from the full one's
START, ROWS = 4, 7


def _complex(*shape, seed=0, dtype=torch.complex128):
    g = torch.Generator().manual_seed(seed)
    real = torch.complex(torch.randn(*shape, generator=g, dtype=torch.float64),
                         torch.randn(*shape, generator=g, dtype=torch.float64))
    return real.to(dtype)


def _problem(dtype=torch.complex128):
    maps = _complex(B, C, H, W, seed=1, dtype=dtype)
    maps = maps / maps.abs().square().sum(dim=1, keepdim=True).sqrt()  # sum_c |S_c|^2 = 1
    truth = _complex(B, T, H, W, seed=2, dtype=dtype)
    estimate = _complex(B, T, H, W, seed=3, dtype=dtype)
    mask = torch.rand(B, 1, T, 1, W, generator=torch.Generator().manual_seed(4)) < 0.4
    return sense_forward(truth, maps, mask), mask, maps, estimate


def _inner(a, b):
    return (a.conj() * b).sum()


def test_strip_operator_adjointness_and_partial_isometry():
    kspace, mask, _, _ = _problem()
    y = _complex(*kspace.shape, seed=5)
    z = _complex(B, C, T, ROWS, W, seed=6)
    lhs = _inner(readout_strip(y, mask, START, ROWS), z)
    rhs = _inner(y, readout_strip_adjoint(z, mask, H, START))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    # E E^H = M: the strip of the put-back strip is the (masked) strip
    back = readout_strip(readout_strip_adjoint(z, mask, H, START), mask, START, ROWS)
    torch.testing.assert_close(back, torch.where(mask, z, 0), rtol=0, atol=1e-12)


def test_strip_kspace_is_zero_where_not_sampled_and_rows_must_fit():
    kspace, mask, _, _ = _problem(torch.complex64)
    strip = readout_strip(kspace, mask, START, ROWS)
    assert strip.shape == (B, C, T, ROWS, W) and strip.dtype == torch.complex64
    assert torch.all(strip[~mask.expand_as(strip)] == 0)
    for start, rows in ((-1, 3), (10, 6), (0, 0)):
        with pytest.raises(ValueError, match="rows"):
            readout_strip(kspace, mask, start, rows)


@pytest.mark.parametrize("dtype, atol", [(torch.complex128, 1e-12), (torch.complex64, 2e-6)])
def test_dc_on_a_strip_equals_full_dc_restricted_to_the_rows(dtype, atol):
    kspace, mask, maps, estimate = _problem(dtype)
    strip_k = readout_strip(kspace, mask, START, ROWS)
    strip_maps, strip_x = image_strip(maps, START, ROWS), image_strip(estimate, START, ROWS)
    rows = slice(START, START + ROWS)
    full_hard = hard_dc(estimate, kspace, mask, maps)
    torch.testing.assert_close(hard_dc(strip_x, strip_k, mask, strip_maps), full_hard[..., rows, :], rtol=0, atol=atol)
    for lam in (0.3, 4.0):
        full_soft = soft_dc(estimate, kspace, mask, maps, lam)
        torch.testing.assert_close(soft_dc(strip_x, strip_k, mask, strip_maps, lam), full_soft[..., rows, :],
                                   rtol=0, atol=atol)
    dc = DataConsistency(mode="soft", init_lambda=0.7).double()
    with torch.no_grad():
        torch.testing.assert_close(dc(strip_x, strip_k, mask, strip_maps, hardness=0.5),
                                   dc(estimate, kspace, mask, maps, hardness=0.5)[..., rows, :], rtol=0, atol=atol)
    # the starting images too
    torch.testing.assert_close(sense_adjoint(strip_k, strip_maps), sense_adjoint(kspace, maps)[..., rows, :],
                               rtol=0, atol=atol)
    torch.testing.assert_close(view_sharing(strip_k, mask, strip_maps), view_sharing(kspace, mask, maps)[..., rows, :],
                               rtol=0, atol=atol)


def _case() -> Case:
    """One slice, 4 frames, 33 x 32, 3 coils: image + maps like a phantom case."""
    image = _complex(1, 4, 33, 32, seed=7, dtype=torch.complex64)
    maps = _complex(1, 3, 33, 32, seed=8, dtype=torch.complex64)
    maps = maps / maps.abs().square().sum(dim=1, keepdim=True).sqrt()
    return Case(name="hand", spacing=(8.0, 1.5, 1.5), image=image.numpy(), coil_maps=maps.numpy().astype(np.complex64),
                noise_std=0.05)


def test_dataset_strip_is_the_full_sample_restricted_to_its_rows():
    case = _case()
    full = ReconDataset([case], ReconOptions(mask_mode="per_epoch", center_lines=4))[0]
    dataset = ReconDataset([case], ReconOptions(mask_mode="per_epoch", center_lines=4, strip_rows=9))
    strip = dataset[0]
    assert strip.kspace.shape == (3, 4, 9, 32) and strip.target.shape == (4, 9, 32)
    assert strip.scale == full.scale and torch.equal(strip.mask, full.mask)  # the whole image's scale
    start = next(r for r in range(33 - 9 + 1) if torch.allclose(full.target[:, r:r + 9], strip.target))
    torch.testing.assert_close(strip.kspace, readout_strip(full.kspace, full.mask, start, 9))
    torch.testing.assert_close(strip.maps, full.maps[:, start:start + 9])
    again = dataset[0]
    assert torch.equal(again.kspace, strip.kspace)  # deterministic for (seed, case, slice, epoch)
    starts = set()
    for epoch in range(6):  # the strip moves with the epoch (the target of a phantom does not)
        dataset.set_epoch(epoch)
        sample = dataset[0]
        target, reference = sample.target / sample.scale, full.target / full.scale  # scale moves with the mask
        starts.add(next(r for r in range(33 - 9 + 1) if torch.allclose(reference[:, r:r + 9], target)))
    assert len(starts) > 1
    whole = ReconDataset([case], ReconOptions(center_lines=4, strip_rows=33))[0]  # strip as high as the image
    assert whole.kspace.shape[-2] == 33
