"""The unrolled cascade and the registry of cinemri.recon."""

import pytest
import torch

from cinemri.physics import sense_adjoint, sense_forward
from cinemri.recon import DENOISERS, Cascade, ResNet3D, build_reconstructor

B, C, T, H, W = 1, 2, 3, 9, 10


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tiny() -> ResNet3D:
    return ResNet3D(width=3, num_blocks=1)


def _problem(coils: int = C):
    g = torch.Generator().manual_seed(0)
    maps = torch.complex(torch.randn(B, coils, H, W, generator=g), torch.randn(B, coils, H, W, generator=g))
    maps = maps / maps.abs().square().sum(dim=1, keepdim=True).sqrt()  # sum_c |S_c|^2 = 1
    truth = torch.complex(torch.randn(B, T, H, W, generator=g), torch.randn(B, T, H, W, generator=g))
    mask = torch.rand(B, 1, T, 1, W, generator=g) < 0.4
    return sense_forward(truth, maps, mask), mask, maps


@pytest.mark.parametrize("stages, shared, dc_mode", [(1, False, "soft"), (3, False, "soft"), (3, True, "soft"), (3, False, "hard")])
def test_parameter_count(stages, shared, dc_mode):
    per_denoiser = _count(_tiny())
    model = Cascade(_tiny, num_stages=stages, shared_weights=shared, dc_mode=dc_mode)
    lambdas = stages if dc_mode == "soft" else 0
    assert _count(model) == (1 if shared else stages) * per_denoiser + lambdas


def test_forward_shape_dtype_and_gradient():
    torch.manual_seed(0)
    kspace, mask, maps = _problem()
    model = Cascade(_tiny, num_stages=2)
    out = model(kspace, mask, maps)
    assert out.shape == (B, T, H, W) and out.dtype == torch.complex64
    out.abs().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_identity_denoisers_with_hard_dc_return_zero_filling():
    """Zeroed residual heads make each stage DC(x); DC of the zero-filled image is itself (one coil, |S| = 1)."""
    kspace, mask, maps = _problem(coils=1)
    model = Cascade(_tiny, num_stages=3, dc_mode="hard")
    for denoiser in model.denoisers:
        torch.nn.init.zeros_(denoiser.tail.weight)
        torch.nn.init.zeros_(denoiser.tail.bias)
    torch.testing.assert_close(model(kspace, mask, maps), sense_adjoint(kspace, maps, mask), rtol=0, atol=1e-5)


def test_hard_dc_cascade_output_agrees_with_measurement_single_coil():
    torch.manual_seed(0)
    kspace, mask, maps = _problem(coils=1)
    out = Cascade(_tiny, num_stages=2, dc_mode="hard")(kspace, mask, maps)
    torch.testing.assert_close(sense_forward(out, maps, mask), kspace, rtol=0, atol=1e-5)


def test_checkpointing_gives_same_output_and_gradients():
    torch.manual_seed(0)
    kspace, mask, maps = _problem()
    plain = Cascade(_tiny, num_stages=2)
    ckpt = Cascade(_tiny, num_stages=2, checkpoint_stages=True)
    ckpt.load_state_dict(plain.state_dict())
    outs, grads = [], []
    for model in (plain, ckpt):
        out = model(kspace, mask, maps)
        out.abs().square().sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(outs[0], outs[1])
    for g_plain, g_ckpt in zip(*grads):
        torch.testing.assert_close(g_plain, g_ckpt)


def test_cascade_rejects_zero_stages():
    with pytest.raises(ValueError, match="num_stages"):
        Cascade(_tiny, num_stages=0)


TINY_OPTIONS = {
    "unet3d": {"base_channels": 2, "depth": 1, "cbam": True},
    "resnet3d": {"width": 2, "num_blocks": 1},
    "crnn": {"base_channels": 2, "depth": 1, "hidden_channels": 2},
    "unet2d1d": {"base_channels": 2, "depth": 1},
}


def test_registry_builds_every_denoiser_into_a_cascade():
    assert set(DENOISERS) == set(TINY_OPTIONS)
    kspace, mask, maps = _problem()
    for name, options in TINY_OPTIONS.items():
        model = build_reconstructor(name, denoiser_options=options, num_stages=2, shared_weights=True)
        assert len(model.denoisers) == 1 and isinstance(model.denoisers[0], DENOISERS[name])
        assert model(kspace, mask, maps).shape == (B, T, H, W)


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="denoiser"):
        build_reconstructor("vit")
    with pytest.raises(ValueError, match="widht"):
        build_reconstructor("resnet3d", denoiser_options={"widht": 3})


def test_cascade_under_bfloat16_autocast_returns_complex64():
    torch.manual_seed(0)
    kspace, mask, maps = _problem()
    model = Cascade(_tiny, num_stages=2)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(kspace, mask, maps)
    assert out.dtype == torch.complex64
    torch.testing.assert_close(out, model(kspace, mask, maps), rtol=0.05, atol=0.05)
