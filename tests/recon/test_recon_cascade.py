"""The unrolled cascade and the registry of cinemri.recon."""

import pytest
import torch

from cinemri.physics import ifft2c, sense_adjoint, sense_forward
from cinemri.recon import DENOISERS, Cascade, ResNet3D, build_reconstructor, cs_tv, hard_dc, view_sharing

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


# ------------------------------------------------- starting image, DC schedule, precision, size


def test_view_sharing_fills_missing_lines_from_the_time_average():
    """Hand-built k-t data: 3 frames, lines sampled by some frames get their mean in the others."""
    g = torch.Generator().manual_seed(1)
    y = torch.complex(torch.randn(1, 1, 3, 4, 5, generator=g), torch.randn(1, 1, 3, 4, 5, generator=g))
    mask = torch.zeros(1, 1, 3, 1, 5, dtype=torch.bool)
    mask[..., 0, :, [0, 2]] = True  # frame 0: lines 0, 2
    mask[..., 1, :, [2, 3]] = True  # frame 1: lines 2, 3
    mask[..., 2, :, [0, 2]] = True  # frame 2: lines 0, 2 (line 1 and 4: never)
    y = y * mask
    filled = y.clone()
    line0 = (y[:, :, 0, :, 0] + y[:, :, 2, :, 0]) / 2
    line3 = y[:, :, 1, :, 3]
    filled[:, :, 1, :, 0] = line0
    filled[:, :, 0, :, 3] = line3
    filled[:, :, 2, :, 3] = line3
    maps = torch.ones(1, 1, 4, 5, dtype=torch.complex64)
    torch.testing.assert_close(view_sharing(y, mask, maps), ifft2c(filled)[:, 0])
    same = mask[:, :, :1].expand_as(mask)  # every frame the same lines: view sharing = zero filling
    torch.testing.assert_close(view_sharing(y * same, same, maps), sense_adjoint(y * same, maps, same))


def test_cascade_starts_from_view_sharing_when_asked():
    kspace, mask, maps = _problem()
    model = Cascade(_tiny, num_stages=1, dc_mode="hard", init="view_sharing")
    torch.nn.init.zeros_(model.denoisers[0].tail.weight)
    torch.nn.init.zeros_(model.denoisers[0].tail.bias)
    expected = hard_dc(view_sharing(kspace, mask, maps), kspace, mask, maps)
    torch.testing.assert_close(model(kspace, mask, maps), expected)
    with pytest.raises(ValueError, match="init"):
        Cascade(_tiny, init="sense")


def test_cascade_starts_from_a_few_cs_tv_iterations_when_asked():
    kspace, mask, maps = _problem()
    model = Cascade(_tiny, num_stages=1, dc_mode="hard", init="cs_tv", init_iters=7)
    torch.nn.init.zeros_(model.denoisers[0].tail.weight)
    torch.nn.init.zeros_(model.denoisers[0].tail.bias)
    expected = hard_dc(cs_tv(kspace, mask, maps, num_iters=7), kspace, mask, maps)
    torch.testing.assert_close(model(kspace, mask, maps), expected)
    out = model(kspace, mask, maps)
    out.abs().sum().backward()  # gradients reach the denoiser, none flow into the CS iterations
    assert model.denoisers[0].tail.weight.grad is not None
    spatial = Cascade(_tiny, num_stages=1, dc_mode="hard", init="cs_tv", init_iters=7, init_lambda_s=0.01)
    spatial.load_state_dict(model.state_dict())
    expected = hard_dc(cs_tv(kspace, mask, maps, num_iters=7, lambda_s=0.01), kspace, mask, maps)
    torch.testing.assert_close(spatial(kspace, mask, maps), expected)
    assert not torch.allclose(spatial(kspace, mask, maps), model(kspace, mask, maps))  # the spatial TV acts
    with pytest.raises(ValueError, match="init_iters"):
        Cascade(_tiny, init="cs_tv", init_iters=0)
    with pytest.raises(ValueError, match="init_lambda_s"):
        Cascade(_tiny, init="cs_tv", init_lambda_s=-1.0)
    assert build_reconstructor("resnet3d", denoiser_options={"width": 3, "num_blocks": 1}, init="cs_tv",
                               init_iters=3).init_iters == 3


def test_dc_hardness_one_is_hard_dc_and_zero_is_the_learned_soft_dc():
    torch.manual_seed(0)
    kspace, mask, maps = _problem()
    soft = Cascade(_tiny, num_stages=2, dc_mode="soft", init_lambda=0.5)
    hard = Cascade(_tiny, num_stages=2, dc_mode="hard")
    hard.denoisers.load_state_dict(soft.denoisers.state_dict())
    torch.testing.assert_close(soft(kspace, mask, maps, dc_hardness=1.0), hard(kspace, mask, maps), rtol=0, atol=1e-5)
    assert torch.equal(soft(kspace, mask, maps, dc_hardness=0.0), soft(kspace, mask, maps))
    half = soft(kspace, mask, maps, dc_hardness=0.5)
    assert not torch.allclose(half, soft(kspace, mask, maps)) and not torch.allclose(half, hard(kspace, mask, maps))
    soft(kspace, mask, maps, dc_hardness=1.0).abs().sum().backward()
    assert all(dc.raw_lambda.grad is not None for dc in soft.dcs)  # still used: DDP sees every parameter
    with pytest.raises(ValueError, match="hardness"):
        soft(kspace, mask, maps, dc_hardness=1.5)


def test_shared_weights_equal_stages_with_copies_of_one_denoiser():
    torch.manual_seed(0)
    kspace, mask, maps = _problem()
    shared = Cascade(_tiny, num_stages=3, shared_weights=True)
    copies = Cascade(_tiny, num_stages=3)
    for denoiser in copies.denoisers:
        denoiser.load_state_dict(shared.denoisers[0].state_dict())
    copies.dcs.load_state_dict(shared.dcs.state_dict())
    torch.testing.assert_close(shared(kspace, mask, maps), copies(kspace, mask, maps))


def test_bf16_autocast_path_equals_fp32_and_keeps_dc_in_fp32():
    """The main model's blocks (3D U-Net + CBAM) under CPU bf16 autocast: output and gradients
    close to fp32; hard DC still reproduces the measurement to fp32 precision."""
    torch.manual_seed(0)
    options = {"base_channels": 4, "depth": 1, "cbam": True}
    for dc_mode in ("soft", "hard"):
        kspace, mask, maps = _problem(coils=1 if dc_mode == "hard" else C)  # hard DC projects exactly for one coil
        model = build_reconstructor("unet3d", denoiser_options=options, num_stages=2, dc_mode=dc_mode)
        reference = model(kspace, mask, maps)
        reference.abs().sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            low = model(kspace, mask, maps)
        low.abs().sum().backward()
        assert low.dtype == torch.complex64
        assert (low - reference).norm() < 0.02 * reference.norm()
        flat_ref = torch.cat([g.flatten() for g in grads])
        flat_low = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.nn.functional.cosine_similarity(flat_ref, flat_low, dim=0) > 0.98
        if dc_mode == "hard":
            torch.testing.assert_close(sense_forward(low.detach(), maps, mask), kspace, rtol=0, atol=1e-5)


def test_cascade_runs_on_the_whole_field_of_view_at_an_odd_size():
    """37 x 50 (not a multiple of the U-Net's 4): output at the input's size, no crop."""
    g = torch.Generator().manual_seed(2)
    maps = torch.randn(1, 1, 37, 50, dtype=torch.complex64, generator=g)
    maps = maps / maps.abs()  # one coil, |S| = 1: hard DC is an exact projection
    truth = torch.randn(1, 5, 37, 50, dtype=torch.complex64, generator=g)
    mask = torch.rand(1, 1, 5, 1, 50, generator=g) < 0.3
    kspace = sense_forward(truth, maps, mask)
    model = build_reconstructor("unet3d", denoiser_options={"base_channels": 2, "depth": 2, "cbam": True},
                                num_stages=2, dc_mode="hard")
    with torch.no_grad():
        out = model(kspace, mask, maps)
    assert out.shape == (1, 5, 37, 50) and torch.isfinite(out).all()
    torch.testing.assert_close(sense_forward(out, maps, mask), kspace, rtol=0, atol=1e-5)


def test_channels_last_gives_the_same_output_and_gradients():
    torch.manual_seed(0)
    kspace, mask, maps = _problem()
    options = {"base_channels": 4, "depth": 1, "cbam": True}
    plain = build_reconstructor("unet3d", denoiser_options=options, num_stages=2)
    fast = build_reconstructor("unet3d", denoiser_options=options, num_stages=2, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    conv = fast.denoisers[0].net.encoders[0].body[0].weight  # (4, 2, 3, 3, 3)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()  # kept by loading
    outs = []
    for model in (plain, fast):
        out = model(kspace, mask, maps)
        out.abs().sum().backward()
        outs.append(out.detach())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    for a, b in zip(plain.parameters(), fast.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5)
    # under bf16 autocast too, channels-last gives the gradients of the standard format
    lows = []
    for model in (plain, fast):
        model.zero_grad()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            low = model(kspace, mask, maps)
        low.abs().sum().backward()
        lows.append(low.detach())
    torch.testing.assert_close(lows[1], lows[0], rtol=1e-2, atol=1e-3)
    for name, a, b in zip(dict(plain.named_parameters()), plain.parameters(), fast.parameters()):
        assert (b.grad - a.grad).norm() <= 0.02 * a.grad.norm() + 1e-6, name


def test_hybrid_space_dc_leaves_the_cascade_unchanged():
    """A mask given per readout row, (B, 1, T, H, W), keeps every DC step in k-space; the same mask
    as (B, 1, T, 1, W) takes the hybrid-space path: same output and same gradients."""
    kspace, mask, maps = _problem()
    torch.manual_seed(0)
    model = Cascade(_tiny, num_stages=3, dc_mode="soft")
    outputs, grads = [], []
    for m in (mask, mask.expand(B, 1, T, H, W)):
        model.zero_grad()
        out = model(kspace, m, maps)
        out.abs().sum().backward()
        outputs.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_residual_gates_start_the_cascade_at_its_starting_image_and_then_learn():
    """With gates at 0 the random denoisers change nothing: the output is DC of the CS-TV start;
    the gates get a gradient, and once they leave 0 the denoisers get one too."""
    torch.manual_seed(0)
    kspace, mask, maps = _problem()
    model = Cascade(_tiny, num_stages=2, dc_mode="hard", init="cs_tv", init_iters=5, residual_gates=True)
    assert _count(model) == 2 * _count(_tiny()) + 2
    start = cs_tv(kspace, mask, maps, num_iters=5)
    expected = hard_dc(hard_dc(start, kspace, mask, maps), kspace, mask, maps)
    torch.testing.assert_close(model(kspace, mask, maps), expected)
    truth = sense_adjoint(kspace, maps, mask) * 0.5  # any target the networks can move towards
    (model(kspace, mask, maps) - truth).abs().sum().backward()
    assert model.gates.grad is not None and model.gates.grad.abs().min() > 0
    with torch.no_grad():
        model.gates.fill_(0.1)
    model.zero_grad()
    (model(kspace, mask, maps) - truth).abs().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.denoisers.parameters())
    assert not torch.allclose(model(kspace, mask, maps), expected)
    gated = build_reconstructor("resnet3d", denoiser_options={"width": 3, "num_blocks": 1}, residual_gates=True)
    assert gated.gates.shape == (3,) and build_reconstructor("resnet3d").gates is None
