"""Convolutional Block Attention Module (CBAM; Woo et al., ECCV 2018), for 2D or 3D features.

Channel attention: average- and max-pooled descriptors over all positions go through one
shared MLP (C -> C/r -> C); their sum through a sigmoid scales every channel.
Spatial attention: the channel-wise average and max maps, stacked as 2 channels, go through
one k x k (x k) convolution and a sigmoid; in 3D the map covers (T, H, W), so attention can
pick frames as well as regions. The two are applied in that order, each multiplicatively.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def channel_max(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """``x.max(dim).values``, by the fastest CPU path for the case: with a gradient to carry,
    ``max`` (amax's backward re-scans the input for ties, ~3x slower); without, ``amax`` (no
    indices: ~10x faster over channels in bf16). The values are the same."""
    if torch.is_grad_enabled() and x.requires_grad:
        return x.max(dim=dim, keepdim=keepdim).values
    return x.amax(dim=dim, keepdim=keepdim)


def mean_fp32(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """``x.mean(dim)`` summed and returned in float32, outside autocast: on bf16 CPU tensors
    ``mean`` converts a copy of the whole tensor first (~6x slower at a cine's size), and the
    float32 sum is exact where a bf16 mean is rounded."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return x.sum(dim=dim, keepdim=keepdim, dtype=torch.float32) / x.shape[dim]


class ChannelAttention(nn.Module):
    """Channel gate of CBAM.

    x: (B, C, *spatial) float  ->  same shape, x scaled by a (B, C, 1, ...) gate in (0, 1).
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(2)  # (B, C, N)
        gate = self.mlp(mean_fp32(flat, dim=2)) + self.mlp(channel_max(flat, dim=2))  # (B, C)
        gate = torch.sigmoid(gate).view(*gate.shape, *([1] * (x.ndim - 2)))  # (B, C, 1, ...)
        return x * gate


class SpatialAttention(nn.Module):
    """Spatial gate of CBAM over all non-channel axes ((H, W) in 2D, (T, H, W) in 3D).

    x: (B, C, *spatial) float  ->  same shape, x scaled by a (B, 1, *spatial) gate in (0, 1).
    """

    def __init__(self, spatial_dims: int = 3, kernel_size: int = 7) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.conv = conv(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        stats = torch.cat([mean_fp32(x, dim=1, keepdim=True), channel_max(x, dim=1, keepdim=True).float()],
                          dim=1)  # (B, 2, *spatial) float32
        # The gate's convolution runs in fp32 and channels-last, whatever the autocast around it:
        # with 2 -> 1 channels and a 7x7x7 kernel, oneDNN's bf16 or standard-layout weight gradient
        # is ~3.5x slower on CPU, and its bf16 channels-last weight gradient is wrong on small inputs
        # (PyTorch 2.x; tests/recon/test_recon_models.py checks it). In 3D it goes through
        # conv3d_by_frames, which is the same sum done by a 2D convolution (~1.8x faster still).
        weight, bias = self.conv.weight.float(), self.conv.bias.float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            if stats.ndim == 5:
                gate = conv3d_by_frames(stats, weight, bias)
            else:
                gate = F.conv2d(stats.contiguous(memory_format=torch.channels_last),
                                weight.contiguous(memory_format=torch.channels_last), bias, padding=self.conv.padding)
        return x * torch.sigmoid(gate).to(x.dtype)


def conv3d_by_frames(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A "same"-padded 3D convolution of few channels, computed as one 2D convolution per frame.

    x: (B, C, T, H, W), weight: (O, C, k, k, k) with k odd, bias: (O,) or None -> (B, O, T, H, W),
    equal to ``F.conv3d(x, weight, bias, padding=k // 2)``. The k temporal taps become output
    channels of a 2D convolution over all frames at once, (B*T, C, H, W) -> (B*T, O*k, H, W), and
    output frame t sums tap i of frame t + i - k//2. oneDNN runs a 2D convolution of C = 2 input
    channels far faster than the 3D one, forward and backward (CBAM's spatial gate, CPU).
    """
    batch, channels, frames, height, width = x.shape
    out_channels, _, k = weight.shape[:3]
    if weight.shape[2:] != (k, k, k) or k % 2 == 0:
        raise ValueError(f"conv3d_by_frames needs a cubic kernel of odd size, got {tuple(weight.shape[2:])}")
    pad = k // 2
    planes = x.transpose(1, 2).reshape(batch * frames, channels, height, width)
    taps = weight.transpose(1, 2).reshape(out_channels * k, channels, k, k)  # (O*k, C, k, k): (o, tap) rows
    z = F.conv2d(planes.contiguous(memory_format=torch.channels_last), taps.contiguous(memory_format=torch.channels_last),
                 padding=pad)
    z = F.pad(z.view(batch, frames, out_channels, k, height, width), (0, 0, 0, 0, 0, 0, 0, 0, pad, pad))
    out = sum(z[:, i:i + frames, :, i] for i in range(k))  # (B, T, O, H, W)
    out = out.transpose(1, 2)
    return out if bias is None else out + bias.view(1, -1, 1, 1, 1)


class CBAM(nn.Module):
    """Channel then spatial attention.

    x: (B, C, T, H, W) (spatial_dims=3) or (B, C, H, W) (spatial_dims=2) float -> same shape.

    Args:
        channels: number of feature channels C.
        reduction: ratio r of the shared MLP's bottleneck (C -> max(1, C // r) -> C).
        spatial_dims: 2 or 3.
        kernel_size: odd size of the spatial-attention convolution (7 in the paper).
    """

    def __init__(self, channels: int, reduction: int = 8, spatial_dims: int = 3, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(spatial_dims, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial(self.channel(x))
