"""Batch augmentation: alignment of images and labels, exact cases, determinism, identity."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cinemri.seg.augment import AugmentOptions, augment_batch, heart_crop

H, W = 40, 46
OFF = AugmentOptions.identity()


def phantom_batch(batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Blob labels (LV disc, MYO ring, RV crescent; background at the border) and an image that
    encodes them: image = 10 * label + smooth, smooth in [0.5, 3.5], so round(image / 10) = label."""
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    labels = torch.zeros(batch, H, W, dtype=torch.int64)
    for b in range(batch):
        cy, cx = 19.0 + b, 24.0 - b
        r = ((y - cy) ** 2 + (x - cx) ** 2).sqrt()
        r_rv = ((y - cy + 1) ** 2 + (x - cx + 9) ** 2).sqrt()
        labels[b][(r_rv < 11) & (r >= 9)] = 1
        labels[b][(r >= 5.5) & (r < 9)] = 2
        labels[b][r < 5.5] = 3
    smooth = 2.0 + 1.5 * torch.sin(x / 6.0) * torch.cos(y / 8.0)  # (H, W)
    images = (10.0 * labels + smooth).unsqueeze(1).float()  # (B, 1, H, W)
    return images, labels


def interior(labels: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, H, W) bool: pixels whose (2r+1)^2 neighbourhood holds a single label."""
    lab = labels.unsqueeze(1).double()
    size = 2 * radius + 1
    high = F.max_pool2d(lab, size, stride=1, padding=radius)
    low = -F.max_pool2d(-lab, size, stride=1, padding=radius)
    keep = (high == low).squeeze(1)
    keep[:, :radius], keep[:, -radius:], keep[:, :, :radius], keep[:, :, -radius:] = False, False, False, False
    return keep


def run(options: AugmentOptions, seed: int = 0, batch=None):
    images, labels = batch if batch is not None else phantom_batch()
    return augment_batch(images, labels, options, torch.Generator().manual_seed(seed))


SPATIAL = {
    "rotation": dataclasses.replace(OFF, p_rotation=1.0),
    "scale": dataclasses.replace(OFF, p_scale=1.0),
    "translation": dataclasses.replace(OFF, p_translation=1.0),
    "shear": dataclasses.replace(OFF, p_shear=1.0),
    "all": dataclasses.replace(OFF, p_rotation=1.0, p_scale=1.0, p_translation=1.0, p_shear=1.0,
                               p_flip_h=0.5, p_flip_v=0.5),
}


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_spatial_transforms_keep_images_and_labels_aligned(name):
    images, labels = phantom_batch()
    out_images, out_labels = run(SPATIAL[name], seed=3, batch=(images, labels))
    assert not torch.equal(out_labels, labels)  # something moved
    assert set(out_labels.unique().tolist()) <= {0, 1, 2, 3}
    assert torch.isfinite(out_images).all() and out_images.dtype == images.dtype
    keep = interior(out_labels, radius=1)
    assert keep.float().mean() > 0.5
    decoded = torch.round(out_images.squeeze(1) / 10.0).long()  # (B, H, W)
    assert torch.equal(decoded[keep], out_labels[keep])  # fails for a 1-pixel misalignment
    assert (decoded != out_labels).float().mean() < 0.04  # only on label boundaries
    for b in range(labels.shape[0]):  # every structure survives with a plausible area
        for k in (1, 2, 3):
            ratio = float((out_labels[b] == k).sum()) / float((labels[b] == k).sum())
            assert 0.3 < ratio < 2.5, (name, b, k, ratio)


def test_rotation_by_90_degrees_equals_rot90():
    images, labels = phantom_batch(2)
    images, labels = images[:, :, :39, :39].contiguous(), labels[:, :39, :39].contiguous()  # odd square
    options = dataclasses.replace(OFF, p_rotation=1.0, rotation_deg=(90.0, 90.0))
    out_images, out_labels = run(options, batch=(images, labels))
    # x_out = R x_in with x along W, y along H (downwards): rot90 from the W axis towards the H axis
    assert torch.equal(out_labels, torch.rot90(labels, 1, dims=(-1, -2)))
    assert torch.allclose(out_images, torch.rot90(images, 1, dims=(-1, -2)), atol=1e-4)


def test_integer_translation_shifts_and_fills_with_minimum():
    images, labels = phantom_batch(2)
    options = dataclasses.replace(OFF, p_translation=1.0, translation=(0.1, 0.1))  # 4.6 px in x, 4 px in y
    images, labels = images[:, :, :, :40].contiguous(), labels[:, :, :40].contiguous()  # W = 40 -> 4 px
    out_images, out_labels = run(options, batch=(images, labels))
    assert torch.equal(out_labels[:, 4:, 4:], labels[:, :-4, :-4])
    assert torch.equal(out_labels[:, :4], torch.zeros_like(out_labels[:, :4]))
    assert torch.allclose(out_images[..., 4:, 4:], images[..., :-4, :-4], atol=1e-4)
    low = images.amin(dim=(1, 2, 3))  # (B,)
    assert torch.allclose(out_images[:, 0, :3, :], low.view(-1, 1, 1).expand(-1, 3, 40), atol=1e-5)


def test_scale_magnifies_about_the_centre():
    images, labels = phantom_batch(1)
    options = dataclasses.replace(OFF, p_scale=1.0, scale=(1.3, 1.3))
    _, out_labels = run(options, batch=(images, labels))
    for k in (1, 2, 3):  # areas grow by 1.3^2 (pixel-counting error on a few boundaries)
        ratio = float((out_labels == k).sum()) / float((labels == k).sum())
        assert ratio == pytest.approx(1.69, rel=0.1)


@pytest.mark.parametrize("field, dim", [("p_flip_h", -1), ("p_flip_v", -2)])
def test_flips_are_exact(field, dim):
    images, labels = phantom_batch()
    out_images, out_labels = run(dataclasses.replace(OFF, **{field: 1.0}), batch=(images, labels))
    assert torch.equal(out_images, images.flip(dim)) and torch.equal(out_labels, labels.flip(dim))


def test_identity_and_determinism():
    images, labels = phantom_batch()
    out_images, out_labels = run(OFF, batch=(images, labels))
    assert torch.equal(out_images, images) and torch.equal(out_labels, labels)
    everything = dataclasses.replace(SPATIAL["all"], p_gamma=0.5, p_bias=0.5, p_brightness=0.5,
                                     p_contrast=0.5, p_noise=0.5)
    a, b = run(everything, seed=7), run(everything, seed=7)
    c = run(everything, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert torch.equal(images, phantom_batch()[0])  # inputs untouched


def test_parameters_are_drawn_per_sample():
    images, labels = phantom_batch(1)
    images, labels = images.expand(4, -1, -1, -1).contiguous(), labels.expand(4, -1, -1).contiguous()
    _, out_labels = run(dataclasses.replace(OFF, p_rotation=1.0), batch=(images, labels))
    assert len({tuple(o.flatten().tolist()) for o in out_labels}) == 4


def intensity_only(**changes) -> AugmentOptions:
    return dataclasses.replace(OFF, **changes)


def test_gamma_brightness_contrast_by_formula():
    images, labels = phantom_batch(2)
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    span = images.amax(dim=(1, 2, 3), keepdim=True) - low
    out, out_labels = run(intensity_only(p_gamma=1.0, gamma=(2.0, 2.0)), batch=(images, labels))
    assert torch.allclose(out, low + span * ((images - low) / span) ** 2, atol=1e-4)
    assert torch.equal(out_labels, labels)
    out, _ = run(intensity_only(p_brightness=1.0, brightness=(1.5, 1.5)), batch=(images, labels))
    assert torch.allclose(out, low + 1.5 * (images - low), atol=1e-4)
    out, _ = run(intensity_only(p_contrast=1.0, contrast=(0.5, 0.5)), batch=(images, labels))
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(out, mean + 0.5 * (images - mean), atol=1e-4)


def test_bias_field_is_smooth_and_bounded():
    images, labels = phantom_batch(3)
    images = images + 1.0  # strictly above the minimum except at the minimum pixel
    amplitude = 0.3
    out, out_labels = run(intensity_only(p_bias=1.0, bias_log_amplitude=(amplitude, amplitude)),
                          batch=(images, labels))
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    field = (out - low) / (images - low).clamp_min(1e-6)  # (B, 1, H, W)
    valid = (images - low) > 0.5
    values = field[valid]
    assert values.min() >= torch.exp(torch.tensor(-amplitude)) - 1e-4
    assert values.max() <= torch.exp(torch.tensor(amplitude)) + 1e-4
    assert float(values.max() / values.min()) > 1.1  # not a constant gain
    assert torch.equal(out_labels, labels)
    step = (field[..., 1:] - field[..., :-1]).abs()[valid[..., 1:] & valid[..., :-1]]
    assert float(step.max()) < 0.1  # smooth: small change between neighbours


def test_noise_level_relative_to_image_std():
    images = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(2, 64, 64, dtype=torch.int64)
    out, _ = run(intensity_only(p_noise=1.0, noise_std=(0.2, 0.2)), batch=(images, labels))
    ratio = (out - images).std(dim=(1, 2, 3)) / images.std(dim=(1, 2, 3))
    assert torch.allclose(ratio, torch.full_like(ratio, 0.2), rtol=0.05)


def test_blur_matches_scipy_gaussian_filter():
    from scipy import ndimage

    images = torch.randn(2, 1, 31, 27, generator=torch.Generator().manual_seed(3))
    labels = torch.zeros(2, 31, 27, dtype=torch.int64)
    out, out_labels = run(intensity_only(p_blur=1.0, blur_sigma_px=(1.0, 1.0)), batch=(images, labels))
    expected = ndimage.gaussian_filter(images.double().numpy(), sigma=(0, 0, 1.0, 1.0), mode="nearest", truncate=3.0)
    assert torch.allclose(out.double(), torch.from_numpy(expected), atol=1e-5)
    assert torch.equal(out_labels, labels)


def test_low_resolution_is_piecewise_smooth_and_keeps_the_mean():
    images = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    labels = torch.zeros(1, 32, 32, dtype=torch.int64)
    out, _ = run(intensity_only(p_low_resolution=1.0, low_resolution=(4.0, 4.0)), batch=(images, labels))
    assert abs(float(out.mean() - images.mean())) < 0.05  # area pooling + bilinear keeps the mean
    # an 8 x 8 image up-sampled: far less high-frequency energy than the white-noise input
    roughness = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean())  # noqa: E731
    assert roughness(out) < 0.3 * roughness(images)


def test_heart_crop_centres_the_labels_and_pads_with_the_minimum():
    images, labels = phantom_batch(3)  # hearts near (19 + b, 24 - b)
    gen = torch.Generator().manual_seed(0)
    out, out_labels = heart_crop(images, labels, (24, 20), 0.0, gen)
    assert out.shape == (3, 1, 24, 20) and out_labels.shape == (3, 24, 20)
    for b in range(3):
        fg = (out_labels[b] > 0).nonzero().double().mean(dim=0)  # centroid (y, x) in the crop
        assert abs(float(fg[0]) - 11.5) <= 1.0 and abs(float(fg[1]) - 9.5) <= 1.0
        assert torch.equal(torch.round(out[b, 0] / 10).long(), out_labels[b])  # still aligned
    # no foreground: centred on the image; a crop larger than the image is padded with the minimum
    empty = torch.zeros_like(labels)
    out, out_labels = heart_crop(images, empty, (50, 50), 0.0, gen)
    assert out.shape == (3, 1, 50, 50) and not out_labels.any()
    assert torch.allclose(out[:, :, 0, 0], images.amin(dim=(1, 2, 3)).view(3, 1))
    # jitter moves the crop, at most jitter * size per axis
    _, shifted = heart_crop(images, labels, (24, 20), 0.25, torch.Generator().manual_seed(1))
    for b in range(3):
        fg = (shifted[b] > 0).nonzero().double().mean(dim=0)
        assert abs(float(fg[0]) - 11.5) <= 0.25 * 24 + 1.5 and abs(float(fg[1]) - 9.5) <= 0.25 * 20 + 1.5


def test_everything_on_stays_finite_and_keeps_label_values():
    images, labels = phantom_batch()
    labels[labels == 2] = 0  # values {0, 1, 3}
    options = AugmentOptions(**{f.name: 1.0 for f in dataclasses.fields(AugmentOptions) if f.name.startswith("p_")})
    constant = (torch.full_like(images, 3.0), labels)  # zero span and zero std
    for batch in ((images, labels), constant):
        out_images, out_labels = run(options, seed=5, batch=batch)
        assert torch.isfinite(out_images).all()
        assert set(out_labels.unique().tolist()) <= {0, 1, 3}
        assert out_labels.dtype == torch.int64 and out_labels.shape == labels.shape
    out_images, _ = augment_batch(images.double(), labels, AugmentOptions(), torch.Generator().manual_seed(0))
    assert out_images.dtype == torch.float64


@pytest.mark.parametrize("changes", [
    {"p_rotation": 1.5}, {"p_noise": -0.1}, {"scale": (1.2, 0.8)}, {"scale": (0.0, 1.0)},
    {"gamma": (-1.0, 1.0)}, {"noise_std": (-0.1, 0.1)}, {"shear_deg": (-90.0, 0.0)}, {"bias_order": 0},
    {"translation": (0.0, float("nan"))}, {"low_resolution": (0.5, 2.0)}, {"blur_sigma_px": (-1.0, 1.0)},
    {"p_blur": 2.0},
])
def test_options_validated(changes):
    with pytest.raises(ValueError, match="AugmentOptions"):
        AugmentOptions(**changes)


def test_inputs_validated():
    images, labels = phantom_batch(2)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="images"):
        augment_batch(images.squeeze(1), labels, OFF, gen)
    with pytest.raises(ValueError, match="labels"):
        augment_batch(images, labels.int(), OFF, gen)
    with pytest.raises(ValueError, match="generator"):
        augment_batch(images, labels, OFF, 0)


def test_context_channels_move_together():
    """A (B, 3, H, W) batch (a plane and two neighbours): every channel gets the spatial map, the
    flips and the blur of its sample, exactly as a one-channel batch of that channel would."""
    images, labels = phantom_batch()
    stack = torch.cat([images, images + 1.0, images + 2.0], dim=1)  # (B, 3, H, W)
    options = dataclasses.replace(SPATIAL["all"], p_blur=1.0, blur_sigma_px=(1.0, 1.0))
    out, out_labels = run(options, seed=7, batch=(stack, labels))
    alone, alone_labels = run(options, seed=7, batch=(images, labels))
    assert out.shape == stack.shape and torch.equal(out_labels, alone_labels)
    assert torch.allclose(out[:, :1], alone, atol=1e-5)
    # the fill value outside the image is the sample's minimum over all channels; inside, the offsets stay
    inside = interior(out_labels, 2) & (out_labels > 0)
    assert torch.allclose((out[:, 2] - out[:, 0])[inside], torch.full_like(out[:, 0][inside], 2.0), atol=1e-4)
    cropped, cropped_labels = heart_crop(stack, labels, (24, 20), 0.0, torch.Generator().manual_seed(0))
    assert cropped.shape == (4, 3, 24, 20)
    assert torch.equal(torch.round((cropped[:, 1] - 1.0) / 10).long(), cropped_labels)


def test_noise_is_drawn_per_channel():
    images = torch.zeros(2, 3, 16, 16)
    labels = torch.zeros(2, 16, 16, dtype=torch.int64)
    images[:, :, 4:12, 4:12] = 1.0
    out, _ = run(intensity_only(p_noise=1.0, noise_std=(0.5, 0.5)), batch=(images, labels))
    noise = out - images
    assert not torch.allclose(noise[:, 0], noise[:, 1])
