"""Denoisers, CBAM, channel conversion and padding of cinemri.recon."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cinemri.recon import CBAM, CRNN, ResNet3D, UNet2D1D, UNet3D, channels_to_complex, complex_to_channels
from cinemri.recon.cbam import conv3d_by_frames
from cinemri.recon.unet3d import max_pool_views
from cinemri.recon.padding import crop_to, pad_to_multiple

TINY = {
    "unet3d": lambda: UNet3D(base_channels=4, depth=2),
    "unet3d_cbam_time": lambda: UNet3D(base_channels=4, depth=2, cbam=True, cbam_reduction=1, pool_time=True, dropout=0.1),
    "resnet3d": lambda: ResNet3D(width=4, num_blocks=2, instance_norm=True),
    "crnn": lambda: CRNN(base_channels=4, depth=2, hidden_channels=4),
    "crnn_skips": lambda: CRNN(base_channels=4, depth=1, hidden_channels=3, gru_on_skips=True),
    "unet2d1d": lambda: UNet2D1D(base_channels=4, depth=2, temporal_kernel=5),
}


def _last_conv(model: nn.Module) -> nn.Module:
    """The model's output layer (the one that produces the residual)."""
    return model.tail if isinstance(model, ResNet3D) else (model.head if isinstance(model, CRNN) else model.net.head)


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_shape_dtype_and_gradients(name):
    torch.manual_seed(0)
    model = TINY[name]()
    x = torch.randn(1, 2, 3, 13, 11)  # odd T, H, W: not multiples of 2^depth
    out = model(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    out.square().mean().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches {pname}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_is_residual(name):
    """With the output layer zeroed the model is exactly the identity: out = x + net(x)."""
    torch.manual_seed(0)
    model = TINY[name]().eval()
    last = _last_conv(model)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    x = torch.randn(2, 2, 3, 8, 9)
    assert torch.equal(model(x), x)


def test_unet_batch_items_are_independent():
    """Instance norm, padding and attention never mix batch items."""
    torch.manual_seed(0)
    model = UNet3D(base_channels=4, depth=2, cbam=True).eval()
    x = torch.randn(2, 2, 3, 8, 12)
    torch.testing.assert_close(model(x)[1:], model(x[1:]), rtol=1e-4, atol=1e-5)


def test_cbam_shapes_gate_and_gradients():
    torch.manual_seed(0)
    for dims, shape in ((3, (2, 8, 5, 9, 11)), (2, (2, 8, 9, 11))):
        cbam = CBAM(8, reduction=4, spatial_dims=dims)
        x = torch.randn(*shape, requires_grad=True)
        out = cbam(x)
        assert out.shape == x.shape
        # both gates are sigmoids in (0, 1): attention only shrinks, and never flips a sign
        assert torch.all(out.abs() <= x.abs()) and torch.all(out * x >= 0)
        assert not torch.allclose(out, x)
        out.sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cbam.parameters())


def test_cbam_spatial_attention_spans_time_in_3d():
    """The 7x7x7 spatial gate of frame 2 depends on frame 0's features (3D), not in 2D per frame."""
    torch.manual_seed(0)
    cbam = CBAM(4, reduction=2, spatial_dims=3)
    x = torch.randn(1, 4, 6, 8, 8)
    gate = cbam.spatial.conv
    y = x.clone()
    y[:, :, 0] += 1.0
    stats = lambda v: torch.cat([v.mean(1, keepdim=True), v.amax(1, keepdim=True)], 1)  # noqa: E731
    assert not torch.allclose(gate(stats(x))[:, :, 2], gate(stats(y))[:, :, 2])
    assert torch.allclose(gate(stats(x))[:, :, 5], gate(stats(y))[:, :, 5])  # 5 frames away: outside k=7


def test_conv3d_by_frames_equals_conv3d_values_and_gradients():
    """The frame-wise 2D form of CBAM's 3D gate convolution is F.conv3d, forward and backward,
    also with fewer frames than taps and several output channels."""
    torch.manual_seed(0)
    for (batch, channels, frames, out_channels, k) in ((2, 2, 6, 1, 7), (1, 3, 3, 2, 5), (2, 2, 1, 1, 3)):
        x = torch.randn(batch, channels, frames, 9, 11, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(out_channels, channels, k, k, k, dtype=torch.float64, requires_grad=True)
        bias = torch.randn(out_channels, dtype=torch.float64, requires_grad=True)
        grad_out = torch.randn(batch, out_channels, frames, 9, 11, dtype=torch.float64)
        ours = conv3d_by_frames(x, weight, bias)
        grads = torch.autograd.grad(ours, (x, weight, bias), grad_out)
        ref = F.conv3d(x, weight, bias, padding=k // 2)
        ref_grads = torch.autograd.grad(ref, (x, weight, bias), grad_out)
        torch.testing.assert_close(ours, ref)
        for got, want in zip(grads, ref_grads):
            torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="cubic"):
        conv3d_by_frames(torch.randn(1, 2, 3, 5, 5), torch.randn(1, 2, 3, 5, 5), None)


def test_cbam_changes_unet_output():
    torch.manual_seed(0)
    model = UNet3D(base_channels=4, depth=1, cbam=True).eval()
    x = torch.randn(1, 2, 4, 8, 8)
    with_cbam = model(x)
    for block in (model.net.encoders[0], model.net.bottleneck, model.net.decoders[0]):
        block.body[-1] = nn.Identity()  # CBAM is the last layer of each block
    assert not torch.allclose(with_cbam, model(x), atol=1e-4)


def test_cbam_channel_attention_by_hand():
    """Channel gate = sigmoid(MLP(avg) + MLP(max)) with a hand-set MLP."""
    cbam = CBAM(2, reduction=2, spatial_dims=2)
    lin1, lin2 = cbam.channel.mlp[0], cbam.channel.mlp[2]
    with torch.no_grad():
        lin1.weight.copy_(torch.tensor([[1.0, 0.0]]))
        lin1.bias.zero_()
        lin2.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        lin2.bias.zero_()
    x = torch.tensor([[[[1.0, 3.0]], [[5.0, 7.0]]]])  # (1, 2, 1, 2); channel 0: avg 2, max 3
    gated = cbam.channel(x)
    expected = torch.sigmoid(torch.tensor([5.0, -5.0])).view(1, 2, 1, 1) * x
    torch.testing.assert_close(gated, expected)


def test_channels_round_trip_and_layout():
    image = torch.randn(2, 3, 5, 7, dtype=torch.complex64)
    channels = complex_to_channels(image)
    assert channels.shape == (2, 2, 3, 5, 7) and channels.dtype == torch.float32
    assert torch.equal(channels[:, 0], image.real) and torch.equal(channels[:, 1], image.imag)
    assert torch.equal(channels_to_complex(channels), image)
    half = channels_to_complex(channels.to(torch.bfloat16))
    assert half.dtype == torch.complex64


def test_channels_reject_wrong_input():
    with pytest.raises(ValueError, match="image"):
        complex_to_channels(torch.randn(2, 3, 5, 7))
    with pytest.raises(ValueError, match="channels"):
        channels_to_complex(torch.randn(2, 3, 3, 5, 7))


def test_pad_and_crop_round_trip():
    x = torch.randn(1, 2, 5, 19, 23)
    padded, size = pad_to_multiple(x, (2, 4, 8))
    assert padded.shape[-3:] == (6, 20, 24) and size == (5, 19, 23)
    assert torch.equal(crop_to(padded, size), x)
    assert padded[..., 5:, :, :].abs().sum() == 0


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: UNet3D(base_channels=0), "base_channels"),
        (lambda: UNet3D(norm="batch"), "norm"),
        (lambda: UNet3D(dropout=1.0), "dropout"),
        (lambda: UNet2D1D(temporal_kernel=2), "temporal_kernel"),
        (lambda: ResNet3D(width=0), "width"),
        (lambda: CRNN(hidden_channels=0), "hidden_channels"),
        (lambda: CBAM(8, spatial_dims=1), "spatial_dims"),
    ],
)
def test_constructors_name_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_cbam_bf16_gradients_are_right_with_channels_last_inputs_and_weights():
    """The spatial gate's 7x7x7 conv runs in fp32 whatever the autocast: the CPU's bf16 weight
    gradient of that conv with channels-last 3D tensors is wrong on small inputs."""
    torch.manual_seed(0)
    reference = CBAM(8, reduction=2, spatial_dims=3)
    x0 = torch.randn(2, 8, 4, 8, 24)
    grads = []
    for channels_last, bf16 in ((False, False), (True, True)):
        cbam = CBAM(8, reduction=2, spatial_dims=3)
        cbam.load_state_dict(reference.state_dict())
        x = x0.clone()
        if channels_last:
            cbam = cbam.to(memory_format=torch.channels_last_3d)
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=bf16):
            out = cbam(x)
        (out.float() * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append({name: p.grad.clone() for name, p in cbam.named_parameters()})
    for name, fp32 in grads[0].items():
        assert (grads[1][name] - fp32).norm() < 0.05 * fp32.norm(), name


def test_max_pool_views_equals_max_pool3d():
    """The inference pooling of the 3D U-Net gives MaxPool3d's values (space only and space-time),
    and the U-Net's output is the same with and without a gradient to carry."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 6, 8)
    for pool in ((1, 2, 2), (2, 2, 2)):
        assert torch.equal(max_pool_views(x, pool), nn.MaxPool3d(pool)(x))
    with pytest.raises(ValueError, match="pool"):
        max_pool_views(x, (1, 3, 3))
    model = UNet3D(base_channels=4, depth=2, cbam=True, pool_time=True).eval()
    trained_path = model(x[:, :2].requires_grad_())
    with torch.inference_mode():
        torch.testing.assert_close(model(x[:, :2]), trained_path.detach())
