"""Readout strips: a training sample made of a few rows along the fully sampled readout.

The readout (kx, axis H) is always fully sampled and the mask acts on ky (axis W) only, so
after an inverse FFT along H the problem separates per readout position x (hybrid x-ky
space): the measurement of row x depends only on row x of the coil images. A strip of rows
[r, r + h) with the full phase-encode width is therefore an exact reconstruction problem
of its own. :func:`readout_strip` gives it the usual k-space form,

    E y = M F_h R F_H^{-1} y        (F_H, F_h: centred orthonormal 1D FFTs along H of length
                                     H and h; R: keep rows r..r+h-1; M: the mask)

so the SENSE operator, zero filling and data consistency of the cascade run on a strip
unchanged. Because M commutes with every operation along H, DC (hard or soft) of a strip
equals DC of the full image restricted to those rows, and so does the zero-filled image
(tests/data/test_data_strips.py checks both to rounding). Only the denoiser sees less context.

:func:`readout_strip_adjoint` is E^H (rows put back, zeros elsewhere); E E^H = M.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cinemri.physics import fft2c, ifft2c


def _check_rows(height: int, start: int, rows: int) -> None:
    if rows < 1 or start < 0 or start + rows > height:
        raise ValueError(f"strip rows [{start}, {start + rows}) do not fit in H={height} (rows must be >= 1)")


def readout_strip(kspace: Tensor, mask: Tensor, start: int, rows: int) -> Tensor:
    """K-space of the strip of readout rows [start, start + rows).

    kspace: (..., T, H, W) complex, zeros where not sampled, e.g. (B, C, T, H, W);
    mask: bool broadcastable to kspace, e.g. (B, 1, T, 1, W)
    returns (..., T, rows, W), same dtype; exactly zero where the mask is False.

    Raises:
        ValueError: if the rows do not fit in H.
    """
    _check_rows(kspace.shape[-2], start, rows)
    coil_rows = ifft2c(kspace)[..., start:start + rows, :]  # (..., T, rows, W)
    zero = torch.zeros((), dtype=kspace.dtype, device=kspace.device)
    return torch.where(mask, fft2c(coil_rows), zero)  # (..., T, rows, W)


def readout_strip_adjoint(strip: Tensor, mask: Tensor, height: int, start: int) -> Tensor:
    """Adjoint of :func:`readout_strip`: the strip's rows put back at [start, start + rows).

    strip: (..., T, rows, W) complex; mask as for :func:`readout_strip`
    returns (..., T, height, W), same dtype.

    Raises:
        ValueError: if the rows do not fit in ``height``.
    """
    rows = strip.shape[-2]
    _check_rows(height, start, rows)
    zero = torch.zeros((), dtype=strip.dtype, device=strip.device)
    coil_rows = ifft2c(torch.where(mask, strip, zero))  # (..., T, rows, W)
    full = coil_rows.new_zeros(*coil_rows.shape[:-2], height, coil_rows.shape[-1])  # (..., T, H, W)
    full[..., start:start + rows, :] = coil_rows
    return fft2c(full)


def image_strip(x: Tensor, start: int, rows: int) -> Tensor:
    """Rows [start, start + rows) of an image or maps: (..., H, W) -> (..., rows, W).

    Raises:
        ValueError: if the rows do not fit in H.
    """
    _check_rows(x.shape[-2], start, rows)
    return x[..., start:start + rows, :]
