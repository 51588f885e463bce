"""Data consistency layers of cinemri.recon.dc."""

import ast
import inspect
import math

import pytest
import torch

from cinemri.physics import fft2c, sense_adjoint, sense_forward, to_hybrid
from cinemri.recon import dc as dc_module
from cinemri.recon import DataConsistency, hard_dc, soft_dc

B, T, H, W = 2, 3, 7, 10


def _mask(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, 1, T, 1, W, generator=g) < 0.4)  # (B, 1, T, 1, W) bool


def _complex(*shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))


def _single_coil():
    maps = torch.ones(B, 1, H, W, dtype=torch.complex64)
    truth, estimate = _complex(B, T, H, W, seed=1), _complex(B, T, H, W, seed=2)
    mask = _mask()
    return estimate, sense_forward(truth, maps, mask), mask, maps


def _constant_orthonormal_maps(coils: int = 4) -> torch.Tensor:
    """Maps constant in space with sum_c |S_c|^2 = 1 at every pixel: (B, C, H, W) complex64."""
    weights = _complex(B, coils, 1, 1, seed=3)
    weights = weights / weights.abs().square().sum(dim=1, keepdim=True).sqrt()
    return weights.expand(B, coils, H, W).contiguous()


def test_hard_dc_single_coil_matches_measurement_exactly():
    estimate, kspace, mask, maps = _single_coil()
    out = hard_dc(estimate, kspace, mask, maps)
    assert out.dtype == torch.complex64 and out.shape == (B, T, H, W)
    k_out = fft2c(out)  # (B, T, H, W)
    sampled = mask[:, 0].expand(B, T, H, W)
    torch.testing.assert_close(k_out[sampled], kspace[:, 0][sampled], rtol=0, atol=1e-5)
    torch.testing.assert_close(k_out[~sampled], fft2c(estimate)[~sampled], rtol=0, atol=1e-5)


def test_hard_dc_multi_coil_orthonormal_maps_matches_measurement():
    maps = _constant_orthonormal_maps()
    truth, estimate, mask = _complex(B, T, H, W, seed=1), _complex(B, T, H, W, seed=2), _mask()
    kspace = sense_forward(truth, maps, mask)
    out = hard_dc(estimate, kspace, mask, maps)
    torch.testing.assert_close(sense_forward(out, maps, mask), kspace, rtol=0, atol=1e-5)
    # and it is a projection: applying it twice changes nothing
    torch.testing.assert_close(hard_dc(out, kspace, mask, maps), out, rtol=0, atol=1e-5)


def test_soft_dc_limits_and_midpoint():
    estimate, kspace, mask, maps = _single_coil()
    torch.testing.assert_close(soft_dc(estimate, kspace, mask, maps, 0.0), estimate, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        soft_dc(estimate, kspace, mask, maps, 1e7), hard_dc(estimate, kspace, mask, maps), rtol=0, atol=1e-5
    )
    # lam = 1: sampled entries are the average of estimate and measurement
    k_out = fft2c(soft_dc(estimate, kspace, mask, maps, 1.0))
    sampled = mask[:, 0].expand(B, T, H, W)
    expected = 0.5 * (fft2c(estimate) + kspace[:, 0])
    torch.testing.assert_close(k_out[sampled], expected[sampled], rtol=0, atol=1e-5)


def test_dc_module_lambda_init_gradient_and_hard_mode():
    estimate, kspace, mask, maps = _single_coil()
    soft = DataConsistency(mode="soft", init_lambda=0.5)
    assert math.isclose(soft.lam.item(), 0.5, rel_tol=1e-5)
    soft(estimate, kspace, mask, maps).abs().sum().backward()
    assert soft.raw_lambda.grad is not None and soft.raw_lambda.grad != 0
    hard = DataConsistency(mode="hard")
    assert hard.lam is None and len(list(hard.parameters())) == 0
    torch.testing.assert_close(hard(estimate, kspace, mask, maps), hard_dc(estimate, kspace, mask, maps))


def test_dc_runs_in_complex64_under_autocast():
    estimate, kspace, mask, maps = _single_coil()
    dc = DataConsistency(mode="soft")
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = dc(estimate, kspace, mask, maps)
    assert out.dtype == torch.complex64
    torch.testing.assert_close(out, dc(estimate, kspace, mask, maps))


def test_dc_rejects_bad_arguments():
    estimate, kspace, mask, maps = _single_coil()
    with pytest.raises(ValueError, match="mode"):
        DataConsistency(mode="gradient")
    with pytest.raises(ValueError, match="init_lambda"):
        DataConsistency(init_lambda=0.0)
    with pytest.raises(ValueError, match="lam"):
        soft_dc(estimate, kspace, mask, maps, -1.0)
    with pytest.raises(ValueError, match="kspace"):
        hard_dc(estimate, kspace[:, 0], mask, maps)


def test_dc_is_the_sense_operator_of_physics():
    """x_dc = A^H (M (w y + (1 - w) A x) + (1 - M) A x) with A = physics.sense_forward and
    A^H = physics.sense_adjoint (their own mask argument for M), on general (non-orthonormal)
    maps and odd sizes; w = 1 hard, lam / (1 + lam) soft, h + (1 - h) lam / (1 + lam) with hardness."""
    b, c, t, h, w = 2, 3, 3, 9, 11
    maps = _complex(b, c, h, w, seed=4)
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(b, 1, t, 1, w, generator=g) < 0.4  # (B, 1, T, 1, W) bool
    estimate = _complex(b, t, h, w, seed=6)
    kspace = sense_forward(_complex(b, t, h, w, seed=7), maps, mask)  # (B, C, T, H, W)

    def expected(weight: float) -> torch.Tensor:
        k = sense_forward(estimate, maps)  # (B, C, T, H, W)
        return sense_adjoint(weight * kspace + (1 - weight) * k, maps, mask) + sense_adjoint(k, maps, ~mask)

    torch.testing.assert_close(hard_dc(estimate, kspace, mask, maps), expected(1.0), rtol=0, atol=1e-5)
    torch.testing.assert_close(soft_dc(estimate, kspace, mask, maps, 0.6), expected(0.6 / 1.6), rtol=0, atol=1e-5)
    soft = DataConsistency(mode="soft", init_lambda=0.6)
    with torch.no_grad():
        out = soft(estimate, kspace, mask, maps, hardness=0.5)
    torch.testing.assert_close(out, expected(0.5 + 0.5 * 0.6 / 1.6), rtol=0, atol=1e-5)


def test_dc_module_calls_no_fft_of_its_own():
    tree = ast.parse(inspect.getsource(dc_module))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert {"sense_forward", "sense_adjoint"} <= names and not [n for n in names if "fft" in n.lower()]


def test_hybrid_space_dc_equals_kspace_dc():
    """DC with the measurement in hybrid (x, ky) space (1D FFTs along W) gives the k-space result:
    hard, soft and with hardness, general maps, even and odd sizes; a mask that varies along the
    readout is refused there."""
    for b, c, t, h, w in ((2, 3, 3, 9, 11), (1, 2, 4, 8, 12)):
        maps = _complex(b, c, h, w, seed=8)
        mask = torch.rand(b, 1, t, 1, w, generator=torch.Generator().manual_seed(9)) < 0.4
        estimate = _complex(b, t, h, w, seed=10)
        kspace = sense_forward(_complex(b, t, h, w, seed=11), maps, mask)
        measured = to_hybrid(kspace)
        torch.testing.assert_close(hard_dc(estimate, measured, mask, maps, hybrid=True),
                                   hard_dc(estimate, kspace, mask, maps), rtol=0, atol=1e-5)
        torch.testing.assert_close(soft_dc(estimate, measured, mask, maps, 0.6, hybrid=True),
                                   soft_dc(estimate, kspace, mask, maps, 0.6), rtol=0, atol=1e-5)
        soft = DataConsistency(mode="soft", init_lambda=0.6)
        with torch.no_grad():
            torch.testing.assert_close(soft(estimate, measured, mask, maps, hardness=0.5, hybrid=True),
                                       soft(estimate, kspace, mask, maps, hardness=0.5), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="readout"):
        hard_dc(estimate, measured, mask.expand(b, 1, t, h, w), maps, hybrid=True)
