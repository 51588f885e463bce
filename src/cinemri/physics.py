"""MRI forward physics: centered orthonormal FFT, SENSE operators, coil combination.

Every operator is stateless: mask and coil maps are arguments. Complex data is
``torch.complex64``; shapes follow DESIGN.md (B batch, C coils, T frames, H readout,
W phase encode).
"""

from __future__ import annotations

import torch
from torch import Tensor

_SPATIAL = (-2, -1)


def fft2c(x: Tensor) -> Tensor:
    """Centered, orthonormal 2D FFT over the last two dims.

    x: (..., H, W) complex  ->  (..., H, W) complex k-space with DC at the centre.
    """
    x = torch.fft.ifftshift(x, dim=_SPATIAL)
    x = torch.fft.fft2(x, dim=_SPATIAL, norm="ortho")
    return torch.fft.fftshift(x, dim=_SPATIAL)


def ifft2c(k: Tensor) -> Tensor:
    """Exact inverse of :func:`fft2c`.

    k: (..., H, W) complex  ->  (..., H, W) complex image.
    """
    k = torch.fft.ifftshift(k, dim=_SPATIAL)
    k = torch.fft.ifft2(k, dim=_SPATIAL, norm="ortho")
    return torch.fft.fftshift(k, dim=_SPATIAL)


def sense_forward(image: Tensor, maps: Tensor, mask: Tensor | None = None) -> Tensor:
    """Multi-coil k-space of a coil-combined cine: A x = M F S x.

    image: (B, T, H, W) complex64, maps: (B, C, H, W) complex64,
    mask: (B, 1, T, 1, W) bool or None (fully sampled)
    returns (B, C, T, H, W) complex64
    """
    coil_images = maps.unsqueeze(2) * image.unsqueeze(1)  # (B, C, T, H, W)
    kspace = fft2c(coil_images)
    if mask is not None:
        kspace = kspace * mask
    return kspace


def sense_adjoint(kspace: Tensor, maps: Tensor, mask: Tensor | None = None) -> Tensor:
    """Adjoint of :func:`sense_forward`: A^H y = S^H F^H M y.

    kspace: (B, C, T, H, W) complex64, maps: (B, C, H, W) complex64,
    mask: (B, 1, T, 1, W) bool or None
    returns (B, T, H, W) complex64
    """
    if mask is not None:
        kspace = kspace * mask
    coil_images = ifft2c(kspace)  # (B, C, T, H, W)
    return (maps.conj().unsqueeze(2) * coil_images).sum(dim=1)


def rss(coil_images: Tensor, dim: int = 1) -> Tensor:
    """Root-sum-of-squares coil combination.

    coil_images: (B, C, ...) complex or real  ->  (B, ...) real magnitude.
    """
    return torch.sqrt((coil_images.abs() ** 2).sum(dim=dim))
