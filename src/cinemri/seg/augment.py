"""Augmentation of segmentation batches in torch: images (B, C, H, W) and labels (B, H, W) together.

C > 1 when the network sees context (neighbouring slices or frames as channels): every channel
of a sample gets the same spatial map, flips and intensity changes (one acquisition), and its own
noise.

Every sample draws its own parameters from a ``torch.Generator`` (the same generator state
gives the same batch); every parameter is always drawn, whatever the probabilities, so
turning one transform off does not change the others' draws. Order of application:

1. spatial: one affine map per sample composed of scale, shear, rotation and translation
   (each present with its own probability; ``x_out = R Sh S x_in + t`` about the image
   centre, in pixel units so rotations stay rotations on non-square images), resampled with
   ``grid_sample`` — bilinear for images, nearest for labels (label values are copied, never
   mixed). Area brought in from outside the image is filled with each image's minimum (the
   background level after any normalisation) and with label 0.
2. flips: horizontal (along W) and vertical (along H), exact.
3. intensity, on images only: first resolution (Gaussian blur of ``sigma`` pixels; simulated
   low acquisition resolution: area down-sampling by a factor, bilinear back up), then, per
   image with ``lo, hi, mean, std`` its own statistics: gamma ``lo + (hi - lo) ((x - lo) / (hi - lo))^gamma``; smooth multiplicative bias field
   ``lo + (x - lo) exp(a P(y, x))`` with P a random polynomial of degree ``bias_order`` scaled
   to max |P| = 1 (so the field lies in [exp(-a), exp(a)]); brightness ``lo + (x - lo) b``;
   contrast ``mean + (x - mean) c``; additive Gaussian noise of standard deviation
   ``sigma * std``. Multiplicative changes act on ``x - lo`` because normalised images
   (z-score) have negative background.

Defaults follow nnU-Net's 2D recipe (rotation +-180 deg, scale 0.7-1.4 with p 0.2, mirroring
p 0.5 per axis, gamma 0.7-1.5 p 0.3, brightness/contrast 0.75-1.25 p 0.15, noise p 0.1) plus
small translation/shear, a bias field, blur (p 0.1) and low resolution (p 0.15). Rotation covers the full circle because short-axis
orientation differs between scanners and datasets (ACDC vs M&Ms exports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AugmentOptions:
    """Probability (per sample) and range (low, high; drawn uniformly) of every transform."""

    p_rotation: float = 0.2
    rotation_deg: tuple[float, float] = (-180.0, 180.0)
    p_scale: float = 0.2
    scale: tuple[float, float] = (0.7, 1.4)  # magnification of the anatomy (> 1: larger)
    p_translation: float = 0.2
    translation: tuple[float, float] = (-0.1, 0.1)  # fraction of W (x) and of H (y), drawn per axis
    p_shear: float = 0.1
    shear_deg: tuple[float, float] = (-10.0, 10.0)  # x' = x + tan(shear) y
    p_flip_h: float = 0.5  # mirror along W
    p_flip_v: float = 0.5  # mirror along H
    p_gamma: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.5)
    p_bias: float = 0.2
    bias_log_amplitude: tuple[float, float] = (0.1, 0.4)  # a: field in [exp(-a), exp(a)]
    bias_order: int = 3
    p_brightness: float = 0.15
    brightness: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    p_noise: float = 0.1
    noise_std: tuple[float, float] = (0.0, 0.1)  # relative to each image's standard deviation
    p_blur: float = 0.1
    blur_sigma_px: tuple[float, float] = (0.5, 1.2)  # Gaussian blur, standard deviation in pixels
    p_low_resolution: float = 0.15
    low_resolution: tuple[float, float] = (1.0, 2.0)  # down-sampling factor, then bilinear back up

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"AugmentOptions.{f.name} must be a probability in [0, 1], got {value!r}")
            if isinstance(value, tuple):
                if len(value) != 2 or not all(math.isfinite(float(v)) for v in value) or value[0] > value[1]:
                    raise ValueError(f"AugmentOptions.{f.name} must be a finite range (low, high) with "
                                     f"low <= high, got {value!r}")
        positive = {"scale": self.scale, "gamma": self.gamma, "brightness": self.brightness,
                    "contrast": self.contrast}
        for name, (low, _) in positive.items():
            if low <= 0:
                raise ValueError(f"AugmentOptions.{name} must be > 0, got {getattr(self, name)!r}")
        if self.low_resolution[0] < 1.0:
            raise ValueError(f"AugmentOptions.low_resolution must be >= 1, got {self.low_resolution!r}")
        for name in ("noise_std", "bias_log_amplitude", "blur_sigma_px"):
            if getattr(self, name)[0] < 0:
                raise ValueError(f"AugmentOptions.{name} must be >= 0, got {getattr(self, name)!r}")
        if abs(self.shear_deg[0]) >= 90 or abs(self.shear_deg[1]) >= 90:
            raise ValueError(f"AugmentOptions.shear_deg must lie in (-90, 90), got {self.shear_deg!r}")
        if not isinstance(self.bias_order, int) or self.bias_order < 1:
            raise ValueError(f"AugmentOptions.bias_order must be an integer >= 1, got {self.bias_order!r}")

    @classmethod
    def identity(cls) -> AugmentOptions:
        """Every probability 0: ``augment_batch`` returns its inputs unchanged."""
        return cls(**{f.name: 0.0 for f in fields(cls) if f.name.startswith("p_")})


class _Draws:
    """Per-sample uniform draws from one generator, moved to the images' device and dtype."""

    def __init__(self, batch: int, generator: torch.Generator, device: torch.device, dtype: torch.dtype) -> None:
        self.batch, self.generator, self.device, self.dtype = batch, generator, device, dtype

    def uniform(self, low: float, high: float, *shape: int) -> Tensor:
        u = torch.rand((self.batch, *shape), generator=self.generator, device=self.generator.device)
        return (low + (high - low) * u.double()).to(self.device, self.dtype)  # (B, *shape)

    def chance(self, p: float) -> Tensor:
        return self.uniform(0.0, 1.0) < p  # (B,) bool

    def normal(self, *shape: int) -> Tensor:
        z = torch.randn((self.batch, *shape), generator=self.generator, device=self.generator.device)
        return z.to(self.device, self.dtype)  # (B, *shape)


def _check_batch(images: Tensor, labels: Tensor) -> None:
    if images.dim() != 4 or images.shape[1] < 1 or not images.is_floating_point():
        raise ValueError(f"images must be float (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
    expected = (images.shape[0], images.shape[2], images.shape[3])
    if labels.dtype != torch.int64 or tuple(labels.shape) != expected:
        raise ValueError(f"labels must be int64 of shape {expected}, got {labels.dtype} {tuple(labels.shape)}")


def affine_theta(rotation_rad: Tensor, scale: Tensor, shear_rad: Tensor, shift_xy: Tensor,
                 height: int, width: int) -> Tensor:
    """``affine_grid`` matrices (output -> input, normalised coordinates, align_corners=False)
    of the pixel-space map x_out = R(rotation) Sh(shear) S(scale) x_in + shift about the centre.

    rotation_rad, scale, shear_rad: (B,) float; shift_xy: (B, 2) float, pixels (x along W, y along H)
    returns (B, 2, 3) float
    """
    cos, sin, tan = torch.cos(rotation_rad), torch.sin(rotation_rad), torch.tan(shear_rad)
    # forward linear part A = R @ Sh @ S with Sh = [[1, tan], [0, 1]], S = s I: (B, 2, 2)
    forward = torch.stack([torch.stack([cos, cos * tan - sin], -1),
                           torch.stack([sin, sin * tan + cos], -1)], -2) * scale.view(-1, 1, 1)
    inverse = torch.linalg.inv(forward)  # (B, 2, 2): x_in = inverse (x_out - shift)
    half = torch.tensor([width / 2.0, height / 2.0], dtype=forward.dtype, device=forward.device)  # (2,)
    # normalised u = x / half: u_in = diag(1/half) inverse diag(half) u_out - diag(1/half) inverse shift
    linear = inverse * half.view(1, 1, 2) / half.view(1, 2, 1)  # (B, 2, 2)
    offset = -(inverse @ shift_xy.unsqueeze(-1)).squeeze(-1) / half  # (B, 2)
    return torch.cat([linear, offset.unsqueeze(-1)], dim=-1)  # (B, 2, 3)


def _spatial(images: Tensor, labels: Tensor, options: AugmentOptions, draws: _Draws) -> tuple[Tensor, Tensor]:
    batch, _, height, width = images.shape
    rotate, scale, shift, shear = (draws.chance(options.p_rotation), draws.chance(options.p_scale),
                                   draws.chance(options.p_translation), draws.chance(options.p_shear))
    angle = torch.deg2rad(draws.uniform(*options.rotation_deg)) * rotate  # (B,)
    factor = torch.where(scale, draws.uniform(*options.scale), torch.ones_like(angle))  # (B,)
    size = torch.tensor([width, height], dtype=images.dtype, device=images.device)  # (2,) as (x, y)
    offset = draws.uniform(*options.translation, 2) * size * shift.unsqueeze(-1)  # (B, 2) pixels
    skew = torch.deg2rad(draws.uniform(*options.shear_deg)) * shear  # (B,)
    chosen = torch.nonzero(rotate | scale | shift | shear).squeeze(-1)  # (B',)
    if chosen.numel() == 0:
        return images, labels
    theta = affine_theta(angle[chosen], factor[chosen], skew[chosen], offset[chosen], height, width)  # (B', 2, 3)
    grid = F.affine_grid(theta, [chosen.numel(), 1, height, width], align_corners=False)  # (B', H, W, 2)
    sub = images[chosen]  # (B', C, H, W)
    low = sub.amin(dim=(1, 2, 3), keepdim=True)  # (B', 1, 1, 1): fill value outside the image
    warped = F.grid_sample(sub - low, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + low
    warped_labels = F.grid_sample(labels[chosen].unsqueeze(1).to(images.dtype), grid, mode="nearest",
                                  padding_mode="zeros", align_corners=False)  # (B', 1, H, W)
    images, labels = images.clone(), labels.clone()
    images[chosen] = warped
    labels[chosen] = warped_labels.squeeze(1).round().long()  # (B', H, W)
    return images, labels


def _flips(images: Tensor, labels: Tensor, options: AugmentOptions, draws: _Draws) -> tuple[Tensor, Tensor]:
    for p, dim in ((options.p_flip_h, -1), (options.p_flip_v, -2)):
        flip = draws.chance(p)  # (B,)
        if bool(flip.any()):
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(dim), images)  # (B, C, H, W)
            labels = torch.where(flip.view(-1, 1, 1), labels.flip(dim), labels)  # (B, H, W)
    return images, labels


def _polynomial_field(draws: _Draws, order: int, height: int, width: int) -> Tensor:
    """Random polynomial of degree ``order`` in (y, x) in [-1, 1]^2 without constant term,
    scaled to max |P| = 1 per sample: (B, 1, H, W)."""
    y = torch.linspace(-1.0, 1.0, height, device=draws.device, dtype=draws.dtype).view(height, 1)  # (H, 1)
    x = torch.linspace(-1.0, 1.0, width, device=draws.device, dtype=draws.dtype).view(1, width)  # (1, W)
    terms = [y ** i * x ** j for i in range(order + 1) for j in range(order + 1 - i) if i + j > 0]
    basis = torch.stack([t.expand(height, width) for t in terms])  # (N, H, W)
    coefficients = draws.uniform(-1.0, 1.0, len(terms))  # (B, N)
    field = torch.einsum("bn,nhw->bhw", coefficients, basis).unsqueeze(1)  # (B, 1, H, W)
    peak = field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)  # (B, 1, 1, 1)
    return field / peak


def _intensity(images: Tensor, options: AugmentOptions, draws: _Draws) -> Tensor:
    batch, channels, height, width = images.shape
    column = (batch, 1, 1, 1)
    # draws in a fixed order: (chosen, value) per transform, then the bias polynomial and the noise
    gamma_on, gamma = draws.chance(options.p_gamma).view(column), draws.uniform(*options.gamma).view(column)
    bias_on, amplitude = (draws.chance(options.p_bias).view(column),
                          draws.uniform(*options.bias_log_amplitude).view(column))
    field = _polynomial_field(draws, options.bias_order, height, width)  # (B, 1, H, W)
    bright_on, brightness = (draws.chance(options.p_brightness).view(column),
                             draws.uniform(*options.brightness).view(column))
    contrast_on, contrast = (draws.chance(options.p_contrast).view(column),
                             draws.uniform(*options.contrast).view(column))
    noise_on, sigma = draws.chance(options.p_noise).view(column), draws.uniform(*options.noise_std).view(column)
    noise = draws.normal(channels, height, width)  # (B, C, H, W)
    blur_on, blur_sigma = draws.chance(options.p_blur), draws.uniform(*options.blur_sigma_px)  # (B,), (B,)
    coarse_on, coarse = draws.chance(options.p_low_resolution), draws.uniform(*options.low_resolution)  # (B,)

    images = _resolution(images, blur_on, blur_sigma, coarse_on, coarse)
    low = images.amin(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    span = images.amax(dim=(1, 2, 3), keepdim=True) - low  # (B, 1, 1, 1)
    unit = ((images - low) / span.clamp_min(torch.finfo(images.dtype).tiny)).clamp(0.0, 1.0)  # (B, C, H, W)
    images = torch.where(gamma_on, low + span * unit.pow(gamma), images)
    images = torch.where(bias_on, low + (images - low) * torch.exp(amplitude * field), images)
    images = torch.where(bright_on, low + (images - low) * brightness, images)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    images = torch.where(contrast_on, mean + (images - mean) * contrast, images)
    std = images.std(dim=(1, 2, 3), keepdim=True) if height * width > 1 else torch.zeros_like(mean)
    return torch.where(noise_on, images + sigma * std * noise, images)


def _gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """image: (1, C, H, W) -> (1, C, H, W), separable Gaussian of ``sigma`` pixels per channel,
    edges replicated."""
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)  # (2r+1,)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    planes = image.transpose(0, 1)  # (C, 1, H, W): each channel blurred alone
    padded = F.pad(planes, (radius, radius, radius, radius), mode="replicate")  # (C, 1, H+2r, W+2r)
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1))  # (C, 1, H+2r, W)
    return F.conv2d(out, kernel.view(1, 1, -1, 1)).transpose(0, 1)  # (1, C, H, W)


def _resolution(images: Tensor, blur_on: Tensor, sigma: Tensor, coarse_on: Tensor, factor: Tensor) -> Tensor:
    """Blur and simulated low acquisition resolution of the chosen images (others untouched).

    images: (B, C, H, W); blur_on, coarse_on: (B,) bool; sigma (pixels), factor (>= 1): (B,)
    Low resolution: area down-sampling by ``factor`` then bilinear up-sampling to (H, W).
    """
    chosen = torch.nonzero(blur_on | coarse_on).squeeze(-1).tolist()
    if not chosen:
        return images
    images = images.clone()
    height, width = images.shape[-2:]
    for b in chosen:  # a few images per batch; sizes differ per image
        image = images[b:b + 1]  # (1, C, H, W)
        if bool(blur_on[b]):
            image = _gaussian_blur(image, float(sigma[b]))
        if bool(coarse_on[b]):
            small = (max(1, round(height / float(factor[b]))), max(1, round(width / float(factor[b]))))
            image = F.interpolate(F.adaptive_avg_pool2d(image, small), size=(height, width), mode="bilinear",
                                  align_corners=False)
        images[b:b + 1] = image
    return images


def heart_crop(images: Tensor, labels: Tensor, size: tuple[int, int], jitter: float,
               generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Crop every sample to ``size`` around its heart, with a random shift.

    images: (B, C, H, W) float; labels: (B, H, W) int64; size: (h, w); jitter: the largest
    shift of the crop centre, as a fraction of (h, w), drawn uniformly per sample and axis.
    The centre is the centroid of the foreground labels (the image centre when a sample has
    none). Area outside the image is filled with the image's minimum and label 0.
    returns images (B, C, h, w), labels (B, h, w).
    """
    _check_batch(images, labels)
    batch, channels, height, width = images.shape
    crop_h, crop_w = (int(v) for v in size)
    shifts = (torch.rand((batch, 2), generator=generator) * 2.0 - 1.0) * jitter  # (B, 2) in [-jitter, jitter]
    fg = labels > 0  # (B, H, W)
    count = fg.sum(dim=(1, 2)).clamp_min(1)  # (B,)
    rows = torch.arange(height, device=labels.device).view(1, -1, 1)
    cols = torch.arange(width, device=labels.device).view(1, 1, -1)
    centre_y = torch.where(fg.any(dim=(1, 2)), (fg * rows).sum(dim=(1, 2)) / count, torch.full_like(count, height // 2,
                           dtype=torch.float32))  # (B,)
    centre_x = torch.where(fg.any(dim=(1, 2)), (fg * cols).sum(dim=(1, 2)) / count, torch.full_like(count, width // 2,
                           dtype=torch.float32))  # (B,)
    pad_y, pad_x = crop_h, crop_w  # enough that any crop centred inside the image fits
    fill = images.amin(dim=(1, 2, 3))  # (B,)
    out_images = images.new_empty((batch, channels, crop_h, crop_w))
    out_labels = labels.new_zeros((batch, crop_h, crop_w))
    for b in range(batch):
        cy = float(centre_y[b]) + float(shifts[b, 0]) * crop_h
        cx = float(centre_x[b]) + float(shifts[b, 1]) * crop_w
        top = min(max(round(cy - crop_h / 2), -pad_y), height + pad_y - crop_h)
        left = min(max(round(cx - crop_w / 2), -pad_x), width + pad_x - crop_w)
        padded = F.pad(images[b] - fill[b], (pad_x, pad_x, pad_y, pad_y)) + fill[b]  # (C, H+2py, W+2px)
        out_images[b] = padded[:, top + pad_y: top + pad_y + crop_h, left + pad_x: left + pad_x + crop_w]
        padded_labels = F.pad(labels[b], (pad_x, pad_x, pad_y, pad_y))  # (H+2py, W+2px)
        out_labels[b] = padded_labels[top + pad_y: top + pad_y + crop_h, left + pad_x: left + pad_x + crop_w]
    return out_images, out_labels


def augment_batch(images: Tensor, labels: Tensor, options: AugmentOptions,
                  generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Augment a batch: spatial transforms on images and labels together, intensity on images.

    images: (B, C, H, W) float (finite); labels: (B, H, W) int64
    options: probabilities and ranges (:class:`AugmentOptions`)
    generator: source of all randomness (any device; draws are moved to the images' device)
    returns (images (B, C, H, W) same dtype, finite; labels (B, H, W) int64 whose values are a
    subset of the input's values and 0). New tensors; the inputs are not modified. With all
    probabilities 0 the inputs are returned unchanged.
    """
    if not isinstance(options, AugmentOptions):
        raise ValueError(f"options must be an AugmentOptions, got {type(options).__name__}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    _check_batch(images, labels)
    if images.numel() == 0:
        return images, labels
    draws = _Draws(images.shape[0], generator, images.device, images.dtype)
    images, labels = _spatial(images, labels, options, draws)
    images, labels = _flips(images, labels, options, draws)
    intensity = (options.p_gamma, options.p_bias, options.p_brightness, options.p_contrast, options.p_noise,
                 options.p_blur, options.p_low_resolution)
    if any(p > 0 for p in intensity):
        images = _intensity(images, options, draws)
    return images, labels
