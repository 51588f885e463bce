"""Classical baselines: zero filling and temporal-TV compressed sensing."""

import math

import pytest
import torch

from cinemri.physics import ifft2c, sense_forward
from cinemri.recon import cs_tv, tv_objective, zero_filled
from cinemri.recon.baselines import _add_dt_adjoint_, _add_grad_adjoint_, _dt, _grad, _project_

T, N, ACCELERATION, CENTER = 12, 64, 5.0, 4


def _local_mask(seed: int = 0) -> torch.Tensor:
    """(T, W) bool: CENTER central lines plus Gaussian-density random lines, W / ACCELERATION per frame."""
    g = torch.Generator().manual_seed(seed)
    lines = round(N / ACCELERATION)
    start = N // 2 - CENTER // 2
    density = torch.exp(-0.5 * ((torch.arange(N) - N / 2) / (N / 5)) ** 2)
    density[start : start + CENTER] = 0
    mask = torch.zeros(T, N, dtype=torch.bool)
    for t in range(T):
        mask[t, start : start + CENTER] = True
        mask[t, torch.multinomial(density, lines - CENTER, generator=g)] = True
    return mask


def _mask() -> torch.Tensor:
    try:
        from cinemri.masks import cartesian_mask
    except ImportError:
        return _local_mask()
    mask = cartesian_mask(
        num_frames=T, num_lines=N, acceleration=ACCELERATION, center_lines=CENTER, pattern="vd_random", seed=0
    )
    return torch.as_tensor(mask, dtype=torch.bool)


def _phantom() -> torch.Tensor:
    """(1, T, N, N) complex64: a body ellipse, a beating 'ventricle', a moving dark ellipse, smooth phase."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, N), torch.linspace(-1, 1, N), indexing="ij")
    frames = []
    for t in range(T):
        phase = 2 * math.pi * t / T
        a = 0.3 + 0.08 * math.cos(phase)
        img = 0.6 * ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1).float()
        img += 0.4 * (((xx - 0.1) / a) ** 2 + ((yy + 0.05) / (1.2 * a)) ** 2 < 1).float()
        img -= 0.3 * (((xx + 0.4) / 0.15) ** 2 + ((yy - 0.3 - 0.1 * math.sin(phase)) / 0.2) ** 2 < 1).float()
        frames.append(img)
    return (torch.stack(frames) * torch.exp(0.5j * xx)).to(torch.complex64)[None]


def _psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Magnitude PSNR, data range = max of the reference."""
    mse = (image.abs() - reference.abs()).square().mean()
    return float(10 * torch.log10(reference.abs().max() ** 2 / mse))


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def problem():
    truth = _phantom()
    mask = _mask().view(1, 1, T, 1, N)
    maps = torch.ones(1, 1, N, N, dtype=torch.complex64)
    return truth, sense_forward(truth, maps, mask), mask, maps


def test_zero_filled_is_masked_inverse_fft_for_one_coil(problem):
    _, kspace, mask, maps = problem
    expected = ifft2c(kspace[:, 0] * mask[:, 0])
    torch.testing.assert_close(zero_filled(kspace, mask, maps), expected)


def test_difference_operators_are_adjoint():
    g = torch.Generator().manual_seed(0)
    x = torch.complex(torch.randn(2, 5, 7, 6, generator=g), torch.randn(2, 5, 7, 6, generator=g))
    q = torch.complex(torch.randn(2, 4, 7, 6, generator=g), torch.randn(2, 4, 7, 6, generator=g))
    r = torch.complex(torch.randn(2, 2, 5, 7, 6, generator=g), torch.randn(2, 2, 5, 7, 6, generator=g))
    dt_adjoint = _add_dt_adjoint_(torch.zeros_like(x), q)
    grad_adjoint = _add_grad_adjoint_(torch.zeros_like(x), r)
    torch.testing.assert_close(torch.vdot(_dt(x).flatten(), q.flatten()), torch.vdot(x.flatten(), dt_adjoint.flatten()))
    torch.testing.assert_close(torch.vdot(_grad(x).flatten(), r.flatten()), torch.vdot(x.flatten(), grad_adjoint.flatten()))
    # the in-place forms add to what they are given
    torch.testing.assert_close(_add_dt_adjoint_(x.clone(), q), x + dt_adjoint)
    torch.testing.assert_close(_add_grad_adjoint_(x.clone(), r), x + grad_adjoint)


def test_projection_onto_magnitude_balls():
    g = torch.Generator().manual_seed(1)
    q = torch.complex(torch.randn(2, 2, 4, 5, generator=g), torch.randn(2, 2, 4, 5, generator=g))
    pointwise = _project_(q.clone(), 0.5)
    inside = q.abs() <= 0.5
    assert inside.any() and (~inside).any()
    torch.testing.assert_close(pointwise[inside], q[inside])  # inside the ball: unchanged
    torch.testing.assert_close(pointwise[~inside].abs(), torch.full_like(q[~inside].abs(), 0.5))
    torch.testing.assert_close(pointwise[~inside] / pointwise[~inside].abs(), q[~inside] / q[~inside].abs())
    joint = _project_(q.clone(), 0.5, dim=1)  # the two components of dim 1 share one ball
    norm = q.abs().square().sum(dim=1, keepdim=True).sqrt()  # (2, 1, 4, 5)
    torch.testing.assert_close(joint, q / torch.clamp(norm / 0.5, min=1.0))
    assert float(joint.abs().square().sum(dim=1).sqrt().max()) <= 0.5 + 1e-6
    assert not _project_(q.clone(), 0.0).any()


def test_two_frame_tv_closed_form():
    """min 0.5|x1-y1|^2 + 0.5|x2-y2|^2 + lam|x2-x1| moves both values lam towards each other."""
    kspace = torch.tensor([1.0, 0.2 + 0.1j], dtype=torch.complex64).view(1, 1, 2, 1, 1)
    mask = torch.ones(1, 1, 2, 1, 1, dtype=torch.bool)
    maps = torch.ones(1, 1, 1, 1, dtype=torch.complex64)
    out = cs_tv(kspace, mask, maps, lambda_t=0.1, num_iters=100).flatten()
    step = 0.1 * (kspace[0, 0, 1] - kspace[0, 0, 0]).flatten() / (kspace[0, 0, 1] - kspace[0, 0, 0]).abs().flatten()
    expected = torch.stack([kspace.flatten()[0] + step[0], kspace.flatten()[1] - step[0]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


def test_cs_beats_zero_filling_on_dynamic_phantom(problem):
    truth, kspace, mask, maps = problem
    zf = zero_filled(kspace, mask, maps)
    cs = cs_tv(kspace, mask, maps)
    cs_spatial = cs_tv(kspace, mask, maps, lambda_t=0.01, lambda_s=0.003)
    assert cs.shape == truth.shape and cs.dtype == torch.complex64
    assert _psnr(cs, truth) > _psnr(zf, truth) + 5.0
    assert _psnr(cs_spatial, truth) > _psnr(zf, truth) + 5.0


def test_single_coil_shortcut_matches_the_general_sense_path(problem):
    """Maps of ones take a shortcut without coil products; a constant-phase map e^{i theta} takes
    the general path and, TV being blind to a global phase, must give the same image."""
    _, kspace, mask, maps = problem
    phase = torch.exp(torch.tensor(0.7j, dtype=torch.complex64))
    for lambda_s in (0.0, 0.003):
        ones = cs_tv(kspace, mask, maps, lambda_s=lambda_s, num_iters=20)
        rotated = cs_tv(kspace * phase, mask, maps * phase, lambda_s=lambda_s, num_iters=20)
        torch.testing.assert_close(rotated, ones, rtol=1e-4, atol=1e-5 * float(ones.abs().max()))


def test_cs_lowers_the_objective(problem):
    _, kspace, mask, maps = problem
    objective = lambda x: float(tv_objective(x, kspace, mask, maps, lambda_t=0.003))  # noqa: E731
    few = cs_tv(kspace, mask, maps, num_iters=10)
    many = cs_tv(kspace, mask, maps, num_iters=100)
    assert objective(many) < objective(few) < objective(zero_filled(kspace, mask, maps))


def test_cs_without_regularisation_keeps_zero_filling(problem):
    """With one coil the zero-filled image already fits the data exactly, so lambda = 0 stays there."""
    _, kspace, mask, maps = problem
    torch.testing.assert_close(cs_tv(kspace, mask, maps, lambda_t=0.0, num_iters=5), zero_filled(kspace, mask, maps))


def test_cs_is_scale_free_and_batched(problem):
    _, kspace, mask, maps = problem
    kspace, mask, maps = kspace[..., :16, :], mask, maps[..., :16, :]  # (1, 1, T, 16, N): smaller
    single = cs_tv(kspace, mask, maps, num_iters=10)
    batch = cs_tv(torch.cat([kspace, 1e3 * kspace]), torch.cat([mask, mask]), torch.cat([maps, maps]), num_iters=10)
    torch.testing.assert_close(batch[0], single[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batch[1], 1e3 * single[0], rtol=1e-4, atol=1e-2)


def test_cs_rejects_bad_arguments(problem):
    _, kspace, mask, maps = problem
    with pytest.raises(ValueError, match="lambda_t"):
        cs_tv(kspace, mask, maps, lambda_t=-1.0)
    with pytest.raises(ValueError, match="num_iters"):
        cs_tv(kspace, mask, maps, num_iters=0)
    with pytest.raises(ValueError, match="kspace"):
        cs_tv(kspace[:, 0], mask, maps)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lambda_t=-1.0), "lambda"), (dict(lambda_s=float("nan")), "lambda"), (dict(num_iters=0), "num_iters")])
def test_cs_options_refuse_bad_settings_by_name(kwargs, match):
    from cinemri.recon import CSOptions

    with pytest.raises(ValueError, match=match):
        CSOptions(**kwargs)
