"""Tests of cinemri.seg.models: U-Net, MedNeXt (+ UpKern), MMNet and the registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cinemri.seg.models import (SEGMENTERS, MedNeXt2D, MMNet, SegEnsemble, UNet2D, build_segmenter, segmenter_arguments,
                                upkern)
from cinemri.seg.models.common import crop_to, pad_to_multiple
from cinemri.seg.models.mednext import SIZES, MedNeXtBlock, MedNeXtDown, MedNeXtUp, depthwise_kernels
from cinemri.seg.models.mmnet import MultiScaleFusion

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# small but complete configurations for the slower checks
SMALL = {
    "unet": {"base_width": 8, "depth": 3},
    "mednext": {"base_width": 8},
    "mmnet": {"base_width": 8, "depth": 3, "skip_width": 8},
}


def small(name: str, **extra: object) -> nn.Module:
    torch.manual_seed(0)
    return build_segmenter(name, {**SMALL[name], **extra})


def multiple_of(name: str, model: nn.Module) -> int:
    return 16 if name == "mednext" else 2**model.depth


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
@pytest.mark.parametrize("shape", [(2, 1, 37, 45), (1, 1, 64, 64)])
def test_default_models_map_images_to_logits_of_the_same_size(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build_segmenter(name).eval()
    with torch.no_grad():
        y = model(torch.randn(shape))
    assert y.shape == (shape[0], 4, *shape[2:])
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_in_channels_and_num_classes_are_honoured(name: str) -> None:
    model = small(name, in_channels=2, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 2, 20, 28)).shape == (1, 3, 20, 28)


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_deep_supervision_only_in_training_mode(name: str) -> None:
    model = small(name, deep_supervision=True)
    h, w = 37, 45
    outs = model.train()(torch.randn(2, 1, h, w))
    depth = 4 if name == "mednext" else model.depth
    expected_levels = depth if name == "unet" else depth + 1  # U-Net: no head on the bottleneck
    assert isinstance(outs, list) and len(outs) == expected_levels
    for i, out in enumerate(outs):
        assert out.shape == (2, 4, math.ceil(h / 2**i), math.ceil(w / 2**i))
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, h, w)).shape == (2, 4, h, w)
    assert isinstance(small(name).train()(torch.randn(1, 1, 32, 32)), torch.Tensor)


# ------------------------------------------------------------------- padding / cropping


def test_pad_and_crop_are_inverse_and_pad_at_the_far_end() -> None:
    x = torch.randn(2, 3, 37, 45)
    padded, size = pad_to_multiple(x, 16)
    assert padded.shape == (2, 3, 48, 48) and size == (37, 45)
    assert torch.equal(padded[..., :37, :45], x)
    assert padded[..., 37:, :].abs().sum() == 0 and padded[..., :, 45:].abs().sum() == 0
    assert torch.equal(crop_to(padded, size), x)
    assert crop_to(padded[..., ::4, ::4], size, scale=4).shape == (2, 3, 10, 12)  # ceil(37/4), ceil(45/4)
    same, _ = pad_to_multiple(x[..., :32, :32], 16)
    assert same.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_odd_input_equals_zero_padded_input_cropped(name: str) -> None:
    """The documented rule: odd sizes are zero-padded at the bottom/right, then cropped."""
    model = small(name).eval()
    x = torch.randn(1, 1, 37, 45)
    m = multiple_of(name, model)
    hp, wp = -(-37 // m) * m, -(-45 // m) * m
    padded = F.pad(x, (0, wp - 45, 0, hp - 37))
    with torch.no_grad():
        direct = model(x)
        by_hand = model(padded)[..., :37, :45]
    torch.testing.assert_close(direct, by_hand, rtol=0, atol=1e-6)


# ------------------------------------------------------- gradients, eval determinism


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_gradients_reach_every_parameter(name: str) -> None:
    model = small(name, deep_supervision=True).train()
    outs = model(torch.randn(2, 1, 24, 40))
    loss = sum((o * torch.randn_like(o)).sum() for o in outs)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_eval_mode_is_deterministic_and_batch_independent(name: str) -> None:
    model = small(name, dropout=0.3)
    x = torch.randn(3, 1, 33, 30)
    model.train()
    model(x)  # update running statistics where there are any
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], single, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------ U-Net


@pytest.mark.parametrize("norm, layer", [("instance", nn.InstanceNorm2d), ("batch", nn.BatchNorm2d),
                                         ("group", nn.GroupNorm)])
def test_unet_norm_choice_and_widths(norm: str, layer: type) -> None:
    model = UNet2D(base_width=8, depth=3, norm=norm, max_width=32)
    norms = [m for m in model.modules() if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm))]
    assert norms and all(type(m) is layer for m in norms)
    convs = [m for m in model.encoders.modules() if isinstance(m, nn.Conv2d)]
    assert sorted({c.out_channels for c in convs}) == [8, 16, 32]  # capped at max_width
    strided = [c for c in convs if c.stride == (2, 2)]
    assert len(strided) == 3  # one strided conv per down-sampling step
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [u.stride for u in ups] == [(2, 2)] * 3
    pooled = UNet2D(base_width=8, depth=3, downsample="maxpool")
    assert sum(isinstance(m, nn.MaxPool2d) for m in pooled.modules()) == 3


# ---------------------------------------------------------------------------- MedNeXt


def test_mednext_block_structure_follows_the_paper() -> None:
    block = MedNeXtBlock(16, 16, exp_r=3, kernel_size=5)
    assert block.dwconv.groups == 16 and block.dwconv.in_channels == block.dwconv.out_channels == 16
    assert block.dwconv.kernel_size == (5, 5)
    assert isinstance(block.norm, nn.GroupNorm) and block.norm.num_groups == 16
    assert block.expand.kernel_size == (1, 1) and block.expand.out_channels == 48
    assert isinstance(block.act, nn.GELU)
    assert block.compress.kernel_size == (1, 1) and block.compress.out_channels == 16
    # hand count: depthwise 16*25 (no bias) + GroupNorm 2*16 + expand 16*48+48 + compress 48*16+16
    assert sum(p.numel() for p in block.parameters()) == 16 * 25 + 32 + 16 * 48 + 48 + 48 * 16 + 16
    # residual: with the branch zeroed the block is the identity
    nn.init.zeros_(block.compress.weight)
    nn.init.zeros_(block.compress.bias)
    x = torch.randn(2, 16, 9, 7)
    assert torch.equal(block(x), x)


def test_mednext_down_and_up_blocks_resample_with_residual_convs() -> None:
    down = MedNeXtDown(8, exp_r=2, kernel_size=3, dropout=0.0)
    assert down.dwconv.stride == (2, 2) and down.dwconv.groups == 8
    assert down.res_conv.kernel_size == (1, 1) and down.res_conv.stride == (2, 2)
    assert down(torch.randn(1, 8, 12, 10)).shape == (1, 16, 6, 5)
    up = MedNeXtUp(16, exp_r=2, kernel_size=5, dropout=0.0)
    assert isinstance(up.dwconv, nn.ConvTranspose2d) and up.dwconv.groups == 16
    assert isinstance(up.res_conv, nn.ConvTranspose2d) and up.res_conv.stride == (2, 2)
    assert up(torch.randn(1, 16, 6, 5)).shape == (1, 8, 12, 10)


@pytest.mark.parametrize("size", ["S", "B"])
def test_mednext_sizes_widths_and_expansion_ratios(size: str) -> None:
    model = MedNeXt2D(size=size)
    exp_r, blocks = SIZES[size]
    assert model.stem.kernel_size == (1, 1) and model.stem.out_channels == 32
    stacks = [*model.enc_blocks, model.bottleneck, *model.dec_blocks]  # the 9 levels in order
    widths = [32, 64, 128, 256, 512, 256, 128, 64, 32]
    for level, stack in enumerate(stacks):
        assert len(stack) == blocks[level]
        for block in stack:
            assert block.dwconv.in_channels == widths[level]
            assert block.expand.out_channels == exp_r[level] * widths[level]
    for i, down in enumerate(model.downs):  # down i uses level i+1's ratio
        assert down.expand.out_channels == exp_r[i + 1] * widths[i]
    for j, up in enumerate(model.ups):  # ups run decoder levels 3..0 = levels 5..8
        assert up.expand.out_channels == exp_r[5 + j] * widths[4 - j]
    assert all(m.kernel_size == (3, 3) for m in depthwise_kernels(model))


def test_mednext_parameter_counts_are_plausible() -> None:
    """The paper's 3D counts are 5.6 M (S) and 10.5 M (B); most weights are 1x1, so 2D is close."""
    count = {s: sum(p.numel() for p in MedNeXt2D(size=s).parameters()) for s in ("S", "B")}
    assert 4.5e6 < count["S"] < 6.5e6
    assert 9.0e6 < count["B"] < 12.0e6
    k5 = sum(p.numel() for p in MedNeXt2D(size="S", kernel_size=5).parameters())
    n_dw_channels = sum(m.weight.shape[0] for m in depthwise_kernels(MedNeXt2D(size="S")))
    assert k5 - count["S"] == n_dw_channels * (25 - 9)


def test_upkern_interpolates_depthwise_kernels_as_documented() -> None:
    torch.manual_seed(0)
    k3 = MedNeXt2D(size="S", base_width=8, kernel_size=3)
    k5 = upkern(MedNeXt2D(size="S", base_width=8, kernel_size=5), k3.state_dict())
    src, dst = k3.state_dict(), k5.state_dict()
    n_interpolated = 0
    for key, w in dst.items():
        if w.shape == src[key].shape:
            assert torch.equal(w, src[key]), key
            continue
        n_interpolated += 1
        s = src[key]
        assert w.shape == (s.shape[0], 1, 5, 5)
        torch.testing.assert_close(w[..., 2, 2], s[..., 1, 1])  # centre tap kept
        for (i, j), (a, b) in {(0, 0): (0, 0), (0, 4): (0, 2), (4, 0): (2, 0), (4, 4): (2, 2)}.items():
            torch.testing.assert_close(w[..., i, j], s[..., a, b])  # corners kept
    assert n_interpolated == len(depthwise_kernels(k3))
    # hand-computed row: [a, b, c] -> [a, 0.6a + 0.4b, b, 0.4b + 0.6c, c] (separable in 2D)
    probe = MedNeXt2D(size="S", base_width=8, kernel_size=3)
    state = probe.state_dict()
    key = next(k for k, v in state.items() if v.ndim == 4 and v.shape[1:] == (1, 3, 3))
    row = torch.tensor([1.0, 2.0, 7.0])
    state[key] = torch.outer(row, torch.ones(3)).expand_as(state[key]).clone()  # rows constant, varies down
    out = upkern(MedNeXt2D(size="S", base_width=8, kernel_size=5), state).state_dict()[key]
    expected = torch.tensor([1.0, 0.6 * 1 + 0.4 * 2, 2.0, 0.4 * 2 + 0.6 * 7, 7.0])
    torch.testing.assert_close(out[0, 0], torch.outer(expected, torch.ones(5)))
    with torch.no_grad():
        assert k5.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 4, 32, 32)


def test_upkern_rejects_a_different_architecture() -> None:
    source = MedNeXt2D(size="S", base_width=8).state_dict()
    with pytest.raises(ValueError, match="source_state"):
        upkern(MedNeXt2D(size="B", base_width=8, kernel_size=5), source)
    with pytest.raises(ValueError, match="source_state"):
        upkern(MedNeXt2D(size="S", base_width=16, kernel_size=5), source)


# ------------------------------------------------------------------------------ MMNet


def test_mmnet_fusion_modules_use_the_documented_dilations() -> None:
    model = MMNet(base_width=8, depth=2, skip_width=8)
    modules = [m for m in model.modules() if isinstance(m, MultiScaleFusion)]
    assert len(modules) == 3  # one per encoder level
    for m in modules:
        assert m.branches[0].kernel_size == (1, 1)
        assert [b.dilation for b in m.branches[1:]] == [(1, 1), (2, 2), (4, 4), (8, 8)]
        assert [b.padding for b in m.branches[1:]] == [(1, 1), (2, 2), (4, 4), (8, 8)]
    custom = MMNet(base_width=8, depth=2, skip_width=8, dilations=[1, 3])
    assert custom.dilations == (1, 3)
    assert all(norm_layer_is_batch(m) for m in model.modules() if isinstance(m, nn.Sequential) and len(m) == 3
               and isinstance(m[1], nn.ReLU))


def norm_layer_is_batch(seq: nn.Sequential) -> bool:
    return isinstance(seq[0], nn.BatchNorm2d)  # pre-activation: norm first, then ReLU, then conv


def test_mmnet_fusion_receptive_field_reaches_exactly_the_largest_dilation() -> None:
    """An impulse moves the module's output (minus its residual input) at offsets <= 8 only."""
    torch.manual_seed(0)
    module = MultiScaleFusion(32, (1, 2, 4, 8), "batch").eval()
    x = torch.zeros(1, 32, 41, 41)
    x[..., 20, 20] = 1.0
    with torch.no_grad():
        change = (module(x) - x).abs().sum(dim=(0, 1))  # (41, 41)
    rows, cols = torch.nonzero(change, as_tuple=True)
    assert (rows - 20).abs().max() == 8 and (cols - 20).abs().max() == 8
    for dy, dx in [(8, 0), (-8, 0), (0, 8), (0, -8), (8, 8)]:
        assert change[20 + dy, 20 + dx] > 0


def test_mmnet_decoder_receives_every_scale() -> None:
    model = MMNet(base_width=8, depth=3, skip_width=4)
    assert len(model.skips) == 3 and all(len(level) == 4 for level in model.skips)
    assert all(f[-1].in_channels == 16 for f in model.fuse)  # 4 levels x skip_width 4
    assert model.head[-1].out_channels == 4 and model.head[-1].kernel_size == (1, 1)


# ----------------------------------------------------------------- overfitting a pair


def toy_pair(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A short-axis-like toy: LV disc, MYO ring, RV crescent; intensities per class + noise."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    r_lv = torch.hypot(yy - 16, xx - 18)
    r_rv = torch.hypot(yy - 16, xx - 9)
    label = torch.zeros(size, size, dtype=torch.int64)
    label[(r_rv < 8) & (r_lv >= 9)] = 1
    label[(r_lv < 9)] = 2
    label[r_lv < 6] = 3
    g = torch.Generator().manual_seed(1)
    image = torch.tensor([0.0, 1.5, -0.5, 2.0])[label] + 0.2 * torch.randn(size, size, generator=g)
    return image[None, None], label[None]


def foreground_dice(logits: torch.Tensor, label: torch.Tensor) -> float:
    pred = logits.argmax(dim=1)
    scores = []
    for k in (1, 2, 3):
        p, g = pred == k, label == k
        scores.append(2 * (p & g).sum().item() / (p.sum() + g.sum()).item())
    return min(scores)


@pytest.mark.parametrize("name, lr, steps", [("unet", 1e-2, 25), ("mednext", 1e-2, 15), ("mmnet", 3e-3, 40)])
def test_each_model_overfits_one_image(name: str, lr: float, steps: int) -> None:
    image, label = toy_pair()
    model = small(name)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(image), label)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert foreground_dice(model(image), label) > 0.9


# ---------------------------------------------------------------- registry, arguments


def test_registry_is_a_plain_dict_of_builders() -> None:
    assert isinstance(SEGMENTERS, dict)
    assert SEGMENTERS == {"unet": UNet2D, "mednext": MedNeXt2D, "mmnet": MMNet}
    assert segmenter_arguments("mednext")["size"] == "S"
    model = build_segmenter("mednext", {"size": "B", "kernel_size": 5})
    assert isinstance(model, MedNeXt2D) and model.size == "B" and model.kernel_size == 5


def test_build_segmenter_rejects_unknown_names_and_arguments() -> None:
    with pytest.raises(ValueError, match="name must be one of"):
        build_segmenter("segformer")
    with pytest.raises(ValueError, match="'widht'"):
        build_segmenter("unet", {"widht": 16})


@pytest.mark.parametrize("name, args, word", [
    ("unet", {"norm": "layer"}, "norm"),
    ("unet", {"depth": 0}, "depth"),
    ("unet", {"downsample": "avg"}, "downsample"),
    ("unet", {"dropout": 1.0}, "dropout"),
    ("mednext", {"size": "XL"}, "size"),
    ("mednext", {"kernel_size": 4}, "kernel_size"),
    ("mmnet", {"dilations": []}, "dilations"),
    ("mmnet", {"norm": "none"}, "norm"),
    ("mmnet", {"num_classes": 0}, "num_classes"),
])
def test_bad_arguments_raise_value_errors_naming_them(name: str, args: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        build_segmenter(name, args)


# ----------------------------------------------------------------------------- ensemble


def test_ensemble_output_is_the_log_of_the_members_mean_probabilities() -> None:
    members = [{"name": "unet", "args": SMALL["unet"]}, {"name": "mednext", "args": SMALL["mednext"]}]
    torch.manual_seed(0)
    ensemble = build_segmenter("ensemble", {"members": members}).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = sum(torch.softmax(m(x), dim=1) for m in ensemble.members) / 2  # (2, 4, 32, 32)
        out = ensemble(x)
    assert out.shape == (2, 4, 32, 32)
    torch.testing.assert_close(torch.softmax(out, dim=1), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(2, 32, 32), rtol=1e-5, atol=1e-5)
    # in training mode a deep-supervised member's main output counts, not its coarser ones
    supervised = [{"name": "unet", "args": {**SMALL["unet"], "deep_supervision": True}}, members[1]]
    ensemble = build_segmenter("ensemble", {"members": supervised}).train()
    assert isinstance(ensemble.members[0](x), list)
    with torch.no_grad():
        assert ensemble(x).shape == (2, 4, 32, 32)


def test_ensemble_rejects_bad_members() -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        build_segmenter("ensemble", {"members": []})
    with pytest.raises(ValueError, match="itself an ensemble"):
        build_segmenter("ensemble", {"members": [{"name": "ensemble", "args": {"members": []}}]})
    with pytest.raises(ValueError, match="member 0 must be"):
        build_segmenter("ensemble", {"members": [{"model": "unet"}]})
    with pytest.raises(ValueError, match="one entry per member"):
        SegEnsemble([UNet2D(**SMALL["unet"])], channels=[None, [0]])
    two_and_three = [{"name": "unet", "args": {**SMALL["unet"], "num_classes": n}} for n in (2, 3)]
    with pytest.raises(ValueError, match="disagree on the output shape"):
        build_segmenter("ensemble", {"members": two_and_three}).eval()(torch.randn(1, 1, 16, 16))
