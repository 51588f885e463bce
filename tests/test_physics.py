"""cinemri.physics against NumPy, operator identities and a simulated coil case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import loadmat

from cinemri.masks import cartesian_mask
from cinemri.physics import (
    apply_mask,
    estimate_coil_maps,
    fft1c,
    fft2c,
    hybrid_adjoint,
    hybrid_forward,
    ifft1c,
    ifft2c,
    rss,
    sense_adjoint,
    sense_forward,
    to_hybrid,
)


def _randn_complex(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))


def _inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    """<a, b> = sum conj(a) b, in complex128."""
    return complex((a.to(torch.complex128).conj() * b.to(torch.complex128)).sum())


# ---- FFT --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(15, 12), (12, 15), (16, 16), (3, 2, 7, 9)])
def test_fft2c_matches_numpy_centered_orthonormal_fft(shape):
    x = _randn_complex(*shape, seed=1)
    xn = x.numpy()
    ref = np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(xn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    np.testing.assert_allclose(fft2c(x).numpy(), ref, rtol=1e-5, atol=1e-5)
    ref_inv = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(xn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    np.testing.assert_allclose(ifft2c(x).numpy(), ref_inv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(15, 12), (12, 15), (16, 14), (2, 6, 7, 10)])
@pytest.mark.parametrize("dim", [-1, -2])
def test_fft1c_matches_numpy_and_composes_into_fft2c(shape, dim):
    x = _randn_complex(*shape, seed=3)
    xn = x.numpy()
    for ours, numpy_transform in ((fft1c, np.fft.fft), (ifft1c, np.fft.ifft)):
        ref = np.fft.fftshift(numpy_transform(np.fft.ifftshift(xn, axes=dim), axis=dim, norm="ortho"), axes=dim)
        np.testing.assert_allclose(ours(x, dim).numpy(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fft1c(fft1c(x, -1), -2), fft2c(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(ifft1c(fft1c(x, dim), dim), x, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="dim"):
        fft1c(x, 0)


def test_hybrid_operators_are_the_sense_operators_before_the_readout_fft():
    """F_W S x is to_hybrid(F S x); its adjoint passes the dot-product test; with an
    H-invariant mask, M commutes with the readout transform: A^H M y = S^H F_W^H M to_hybrid(y)."""
    b, c, t, h, w = 2, 3, 4, 10, 9
    image, maps = _randn_complex(b, t, h, w, seed=4), _randn_complex(b, c, h, w, seed=5)
    torch.testing.assert_close(hybrid_forward(image, maps), to_hybrid(sense_forward(image, maps)), rtol=0, atol=1e-5)
    y = _randn_complex(b, c, t, h, w, seed=6)
    lhs, rhs = _inner(hybrid_forward(image, maps), y), _inner(image, hybrid_adjoint(y, maps))
    assert abs(lhs - rhs) < 1e-4 * abs(lhs)
    mask = torch.rand(b, 1, t, 1, w, generator=torch.Generator().manual_seed(7)) < 0.4
    zero = torch.zeros((), dtype=y.dtype)
    torch.testing.assert_close(hybrid_adjoint(torch.where(mask, to_hybrid(y), zero), maps),
                               sense_adjoint(y, maps, mask), rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(15, 12), (2, 4, 13, 11)])
def test_fft2c_is_unitary_and_inverted_by_ifft2c(shape):
    x = _randn_complex(*shape, seed=2)
    k = fft2c(x)
    assert torch.allclose(ifft2c(k), x, atol=1e-5)
    assert torch.allclose(fft2c(ifft2c(x)), x, atol=1e-5)
    energy = (x.abs() ** 2).sum()
    assert torch.allclose((k.abs() ** 2).sum(), energy, rtol=1e-5)


@pytest.mark.parametrize("h,w", [(15, 12), (16, 9)])
def test_fft2c_puts_dc_at_the_centre(h, w):
    x = torch.ones(h, w, dtype=torch.complex64)
    k = fft2c(x)
    assert k[h // 2, w // 2].real == pytest.approx((h * w) ** 0.5, rel=1e-5)
    k[h // 2, w // 2] = 0
    assert k.abs().max() < 1e-4


# ---- SENSE ------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_layout", ["tw", "b1t1w", "none"])
def test_sense_adjoint_identity(mask_layout):
    b, c, t, h, w = 2, 3, 4, 15, 13
    x = _randn_complex(b, t, h, w, seed=3)
    y = _randn_complex(b, c, t, h, w, seed=4)
    maps = _randn_complex(b, c, h, w, seed=5)
    g = torch.Generator().manual_seed(6)
    mask_tw = torch.rand(t, w, generator=g) > 0.5
    mask = {"tw": mask_tw, "b1t1w": mask_tw[None, None, :, None, :].expand(b, 1, t, 1, w),
            "none": None}[mask_layout]
    lhs = _inner(sense_forward(x, maps, mask), y)
    rhs = _inner(x, sense_adjoint(y, maps, mask))
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs)


def test_sense_with_normalised_maps_and_full_sampling_is_an_isometry():
    """A^H A = sum_c |S_c|^2 = 1, so the adjoint inverts the forward."""
    maps = _randn_complex(1, 4, 9, 10, seed=7)
    maps = maps / rss(maps, dim=1).unsqueeze(1)
    x = _randn_complex(1, 3, 9, 10, seed=8)
    assert torch.allclose(sense_adjoint(sense_forward(x, maps), maps), x, atol=1e-5)


def test_sense_forward_matches_hand_computation():
    x = _randn_complex(1, 2, 5, 6, seed=9)
    maps = _randn_complex(1, 3, 5, 6, seed=10)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, [1, 4]] = True
    mask[1, 3] = True
    k = sense_forward(x, maps, mask)
    for coil in range(3):
        for frame in range(2):
            ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(
                (maps[0, coil] * x[0, frame]).numpy()), norm="ortho"))
            ref = ref * mask[frame].numpy()[None, :]
            np.testing.assert_allclose(k[0, coil, frame].numpy(), ref, atol=1e-5)


def test_sense_rejects_mismatched_shapes():
    x = _randn_complex(1, 2, 8, 8)
    with pytest.raises(ValueError, match="maps"):
        sense_forward(x, _randn_complex(3, 8, 8))
    with pytest.raises(ValueError, match="maps"):
        sense_adjoint(_randn_complex(1, 3, 2, 8, 8), _randn_complex(1, 4, 8, 8))


def test_apply_mask_zeroes_unsampled_lines_and_checks_input():
    k = _randn_complex(2, 3, 4, 5, 6)
    k[..., 0] = float("nan")
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, 2:4] = True
    out = apply_mask(k, mask)
    assert out.shape == k.shape and out.dtype == k.dtype
    assert torch.equal(out[..., 2:4], k[..., 2:4])
    assert (out[..., [0, 1, 4, 5]] == 0).all()
    with pytest.raises(ValueError, match="mask"):
        apply_mask(k, mask.float())
    with pytest.raises(ValueError, match="mask"):
        apply_mask(k, torch.ones(5, 6, dtype=torch.bool))


def test_rss_hand_computed():
    coils = torch.tensor([[3 + 0j, 1j], [4j, 0]], dtype=torch.complex64).reshape(1, 2, 2)
    assert torch.allclose(rss(coils), torch.tensor([[5.0, 1.0]]))
    assert torch.allclose(rss(coils.abs(), dim=1), torch.tensor([[5.0, 1.0]]))


# ---- coil maps --------------------------------------------------------------------------


def _simulated_case(h=48, w=40, c=6, t=4, noise=0.0, seed=0):
    """Smooth elliptical object with smooth phase, seen by c smooth normalised coils.

    Returns object (T, H, W) complex64, true maps (C, H, W) complex64 (sum |S|^2 = 1
    everywhere), k-space (C, T, H, W) complex64 and the object's support (H, W) bool.
    """
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij"
    )
    radius = torch.sqrt((yy / 0.75) ** 2 + (xx / 0.65) ** 2)
    support = radius < 1
    edge = torch.sigmoid((1 - radius) * 25)  # soft edge, ~1 inside
    phase = 0.8 * xx - 0.5 * yy + 0.3 * xx * yy
    frames = [edge * (1 + 0.3 * torch.cos(3 * xx + 2 * yy + f)) for f in range(t)]
    obj = torch.stack(frames) * torch.exp(1j * phase)  # (T, H, W)
    angles = torch.arange(c) * 2 * torch.pi / c
    raw = []
    for a in angles:
        cy, cx = 1.4 * torch.sin(a), 1.4 * torch.cos(a)
        mag = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 1.5)
        raw.append(mag * torch.exp(1j * (0.7 * (xx * torch.cos(a) + yy * torch.sin(a)) + a)))
    raw = torch.stack(raw)  # (C, H, W)
    maps = (raw / rss(raw.unsqueeze(0), dim=1)).to(torch.complex64)
    coil_images = maps.unsqueeze(1) * obj.unsqueeze(0)  # (C, T, H, W)
    k = fft2c(coil_images.to(torch.complex64))
    if noise > 0:
        k = k + noise * _randn_complex(*k.shape, seed=seed) / np.sqrt(2)
    return obj.to(torch.complex64), maps, k, support


def _inner_region(support: torch.Tensor, margin: int = 3) -> torch.Tensor:
    """Support eroded by ``margin`` pixels (where the low-res maps are not edge-blurred)."""
    eroded = support.clone()
    for _ in range(margin):
        eroded = eroded & torch.roll(eroded, 1, 0) & torch.roll(eroded, -1, 0)
        eroded = eroded & torch.roll(eroded, 1, 1) & torch.roll(eroded, -1, 1)
    return eroded


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_estimated_maps_are_normalised_and_match_truth_up_to_phase(noise):
    obj, true_maps, k, support = _simulated_case(noise=noise)
    maps = estimate_coil_maps(k, center_lines=12)
    assert maps.shape == true_maps.shape and maps.dtype == torch.complex64
    norm = rss(maps.unsqueeze(0), dim=1)[0]  # (H, W)
    est_support = norm > 0
    assert torch.allclose(norm[est_support], torch.ones(()), atol=1e-4)
    assert (est_support == (norm > 0.5)).all()  # 1 inside, 0 outside, nothing between
    assert est_support[support].all()  # the whole object is covered
    assert not est_support[0, 0]  # corners are background
    inner = _inner_region(support)
    # phase per pixel that best aligns the estimate with the truth
    overlap = (true_maps.conj() * maps).sum(dim=0)  # (H, W)
    assert overlap.abs()[inner].min() > 0.99
    aligned = true_maps * (overlap / overlap.abs()).unsqueeze(0)
    error = rss((maps - aligned).unsqueeze(0), dim=1)[0]
    assert error[inner].max() < 0.1
    # the phase left in the maps is smooth: neighbouring pixels differ by < 0.3 rad
    rotation = overlap / overlap.abs()
    both = inner[:, 1:] & inner[:, :-1]
    step = (rotation[:, 1:] * rotation[:, :-1].conj()).angle().abs()
    assert step[both].max() < 0.3


def test_estimated_maps_reproduce_a_common_phase_reference_exactly():
    """With maps pre-rotated to the estimator's own reference, truth is reproduced."""
    obj, true_maps, k, support = _simulated_case()
    maps = estimate_coil_maps(k, center_lines=12)
    inner = _inner_region(support)
    # relative coil phases are per-pixel-phase invariant: S_c conj(S_0)
    rel_est = maps * maps[:1].conj()
    rel_true = true_maps * true_maps[:1].conj()
    assert (rel_est - rel_true).abs()[:, inner].max() < 0.05


def test_coil_combination_with_estimated_maps_recovers_the_object_magnitude():
    obj, _, k, support = _simulated_case()
    maps = estimate_coil_maps(k.unsqueeze(0), center_lines=12)  # batched input
    assert maps.shape == (1, 6, 48, 40)
    image = sense_adjoint(k.unsqueeze(0), maps)[0]  # (T, H, W)
    inner = _inner_region(support)
    rel = (image.abs() - obj.abs()).abs()[:, inner].max() / obj.abs().max()
    assert rel < 0.02


def test_estimated_maps_from_undersampled_cine_use_the_time_average():
    _, _, k, support = _simulated_case(t=8)
    full = estimate_coil_maps(k, center_lines=10)
    mask = cartesian_mask(8, 40, 4, center_lines=4, pattern="equispaced", seed=0)
    under = apply_mask(k, mask)
    # lines 4..9 of the centre are acquired in some frame only: still calibrated
    sub = estimate_coil_maps(under, center_lines=10)
    overlap = (full.conj() * sub).sum(dim=0).abs()
    assert overlap[_inner_region(support)].min() > 0.98
    with pytest.raises(ValueError, match="center_lines"):
        estimate_coil_maps(under[:, :1], center_lines=10)


def test_single_coil_maps_are_ones():
    k = _randn_complex(1, 3, 11, 9)
    maps = estimate_coil_maps(k, center_lines=4)
    assert maps.shape == (1, 11, 9) and maps.dtype == torch.complex64
    assert torch.equal(maps, torch.ones_like(maps))


def test_estimate_coil_maps_rejects_bad_arguments():
    k = _randn_complex(2, 3, 11, 9)
    with pytest.raises(ValueError, match="kspace"):
        estimate_coil_maps(k.real)
    with pytest.raises(ValueError, match="kspace"):
        estimate_coil_maps(k[0])
    with pytest.raises(ValueError, match="center_lines"):
        estimate_coil_maps(k, center_lines=10)
    with pytest.raises(ValueError, match="window"):
        estimate_coil_maps(k, center_lines=4, window=4)
    with pytest.raises(ValueError, match="threshold"):
        estimate_coil_maps(k, center_lines=4, threshold=1.0)


def test_real_cmrxrecon_kspace_is_centred_as_fft2c_assumes():
    """The k-space peak sits near (H // 2, W // 2) and ifft2c puts the heart mid-image.

    Uses the CMRxRecon demo k-space (512 x 246, one coil) when the data folder is there,
    otherwise k-space made with fft2c from a centred object with a gentle phase ramp.
    """
    path = Path("/work/shared/data/samples/cmrxrecon2024_demo/cine_sax.mat")
    if path.exists():
        k = torch.from_numpy(loadmat(path)["kspace_full"]).to(torch.complex64)  # (H, W)
    else:
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, 512), torch.linspace(-1, 1, 246),
                                indexing="ij")
        obj = ((yy / 0.4) ** 2 + (xx / 0.6) ** 2 < 1).float() * torch.exp(1j * 3 * xx)
        k = fft2c(obj.to(torch.complex64))
    h, w = k.shape
    peak = divmod(int(k.abs().argmax()), w)
    assert abs(peak[0] - h // 2) <= 8 and abs(peak[1] - w // 2) <= 8
    image = ifft2c(k).abs()
    assert torch.allclose((image**2).sum(), (k.abs() ** 2).sum(), rtol=1e-4)
    middle = image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean()
    border = torch.cat([image[: h // 10].flatten(), image[-h // 10 :].flatten()]).mean()
    assert middle > 10 * border


def test_centered_fft_made_under_inference_mode_still_trains():
    """The even-size shift factors are cached per size; a first call inside inference_mode must
    not leave inference tensors that a later training step cannot save for backward."""
    with torch.inference_mode():
        fft2c(torch.randn(2, 10, 6, dtype=torch.complex64))
    x = torch.randn(2, 10, 6, dtype=torch.complex64, requires_grad=True)
    ifft2c(fft2c(x)).real.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x.grad))
