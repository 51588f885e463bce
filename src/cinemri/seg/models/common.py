"""Pieces every 2D segmenter here shares: argument checks, norm layers, pad-and-crop."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("instance", "batch", "group")


def check_common_args(in_channels: int, num_classes: int, dropout: float) -> None:
    """Validate the arguments every segmenter takes; raises ValueError naming the bad one."""
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def check_norm(norm: str) -> None:
    """Raise ValueError unless ``norm`` is one of :data:`NORMS`."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def group_count(channels: int, max_groups: int = 8) -> int:
    """The largest divisor of ``channels`` that is <= ``max_groups`` (GroupNorm's group count)."""
    return max(g for g in range(1, max_groups + 1) if channels % g == 0)


def norm_layer(norm: str, channels: int) -> nn.Module:
    """A 2D normalisation over ``channels``, all with learned affine parameters.

    "instance": InstanceNorm2d(affine=True); "batch": BatchNorm2d; "group": GroupNorm with
    :func:`group_count` groups (8 when ``channels`` is a multiple of 8).
    """
    check_norm(norm)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(group_count(channels), channels)


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Zero-pad H and W at their far end (bottom, right) up to multiples of ``multiple``.

    x: (B, C, H, W) float -> (B, C, H', W') float with H' = ceil(H / multiple) * multiple,
    and the original (H, W) for :func:`crop_to`. Padding only at the far end keeps pixel
    (0, 0) fixed at every scale, so a feature map 2^i times coarser covers the original
    image in its first ceil(H / 2^i) x ceil(W / 2^i) pixels.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))  # (B, C, H', W')
    return x, (h, w)


def crop_to(x: Tensor, size: tuple[int, int], scale: int = 1) -> Tensor:
    """Undo :func:`pad_to_multiple` on a map ``scale`` times coarser than the input.

    x: (B, K, H' / scale, W' / scale) -> (B, K, ceil(H / scale), ceil(W / scale)).
    """
    h, w = size
    return x[..., : math.ceil(h / scale), : math.ceil(w / scale)]
