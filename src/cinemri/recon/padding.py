"""Pad a (B, C, T, H, W) tensor up to multiples of a U-Net's total down-sampling, and crop back."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pad_to_multiple(x: Tensor, multiple: tuple[int, int, int]) -> tuple[Tensor, tuple[int, int, int]]:
    """Zero-pad the last three axes at their far end so each is a multiple of ``multiple``.

    x: (B, C, T, H, W) float; multiple: (mt, mh, mw) positive ints
    returns the padded tensor (B, C, T', H', W') and the original (T, H, W) for :func:`crop_to`.
    """
    size = tuple(x.shape[-3:])
    pads: list[int] = []
    for n, m in zip(reversed(size), reversed(multiple)):  # F.pad wants the last axis first
        pads += [0, (-n) % m]
    if any(pads):
        x = F.pad(x, pads)
    return x, size  # type: ignore[return-value]


def crop_to(x: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: x (B, C, T', H', W') -> (B, C, T, H, W)."""
    t, h, w = size
    return x[..., :t, :h, :w]
