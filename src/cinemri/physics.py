"""MRI forward physics: centered orthonormal FFT, SENSE operators, coil combination,
sampling-mask application and coil-map estimation from the calibration region.

Every operator is stateless: mask and coil maps are arguments. Complex data is
``torch.complex64``; shapes follow DESIGN.md (B batch, C coils, T frames, H readout,
W phase encode).
"""

from __future__ import annotations

import functools
from numbers import Integral, Real

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from cinemri.masks import center_slice

_SPATIAL = (-2, -1)
# Calibration lines (ky) of coil-map estimation: CMRxRecon's fully sampled centre. The datasets
# and inference read this default from here.
CALIBRATION_LINES = 24


def fft2c(x: Tensor) -> Tensor:
    """Centered, orthonormal 2D FFT over the last two dims.

    x: (..., H, W) complex  ->  (..., H, W) complex k-space with DC at the centre.
    """
    return _centered(x, torch.fft.fftn, _SPATIAL)


def ifft2c(k: Tensor) -> Tensor:
    """Exact inverse of :func:`fft2c`.

    k: (..., H, W) complex  ->  (..., H, W) complex image.
    """
    return _centered(k, torch.fft.ifftn, _SPATIAL)


def fft1c(x: Tensor, dim: int) -> Tensor:
    """Centered, orthonormal 1D FFT along ``dim`` (-1: phase encode W, -2: readout H).

    x: (..., H, W) complex -> same shape; ``fft2c(x) == fft1c(fft1c(x, -1), -2)``.
    """
    return _centered(x, torch.fft.fftn, _one_dim(dim))


def ifft1c(k: Tensor, dim: int) -> Tensor:
    """Exact inverse of :func:`fft1c` along the same ``dim``."""
    return _centered(k, torch.fft.ifftn, _one_dim(dim))


def _one_dim(dim: int) -> tuple[int]:
    if dim not in _SPATIAL:
        raise ValueError(f"dim must be -1 or -2, got {dim}")
    return (dim,)


def _centered(x: Tensor, transform, dims: tuple[int, ...]) -> Tensor:
    """``fftshift(transform(ifftshift(x)))`` over ``dims`` (of the last two), orthonormal.

    For even sizes the shifts are modulations: rolling by N/2 before the transform multiplies
    frequency k by (-1)^k, rolling after it is the transform of the input times (-1)^n. So the
    result is s c transform(c x), with c the product over ``dims`` of (-1)^index (a checkerboard
    in 2D) and s = (-1)^(sum of N/2) (the same for the inverse); two multiplications cost less
    than two rolls, forward and in the gradient. Odd sizes roll.
    """
    sizes = tuple(x.shape[d] for d in dims)
    if any(n % 2 for n in sizes):
        x = torch.fft.ifftshift(x, dim=dims)
        return torch.fft.fftshift(transform(x, dim=dims, norm="ortho"), dim=dims)
    before, after = _modulations(sizes, dims, x.device, x.real.dtype)
    return _times_real(transform(_times_real(x, before), dim=dims, norm="ortho"), after)


def _times_real(x: Tensor, factor: Tensor) -> Tensor:
    """x * factor for a real ``factor`` that broadcasts over x's trailing dims; a complex x is
    multiplied through its float view, several times faster on CPU than complex arithmetic."""
    if not x.is_complex():
        return x * factor
    return torch.view_as_complex(torch.view_as_real(x) * factor.unsqueeze(-1))


@functools.lru_cache(maxsize=32)
def _modulations(sizes: tuple[int, ...], dims: tuple[int, ...], device: torch.device,
                 dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(c, s c) of :func:`_centered` as +-1 tensors that broadcast over (H, W), made once per
    size (every DC step of a cascade asks for the same ones). Read-only: callers only multiply
    by them. Made as normal tensors even inside ``torch.inference_mode``, so a cached pair also
    serves training later."""
    with torch.inference_mode(False):
        checker = torch.ones((), dtype=dtype, device=device)
        for n, dim in zip(sizes, dims):
            signs = (1 - 2 * (torch.arange(n, device=device) % 2)).to(dtype)  # (-1)^index
            checker = checker * (signs[:, None] if dim == -2 else signs)
        return checker, checker if sum(n // 2 for n in sizes) % 2 == 0 else -checker


def sense_forward(image: Tensor, maps: Tensor, mask: Tensor | None = None) -> Tensor:
    """Multi-coil k-space of a coil-combined cine: A x = M F S x.

    image: (B, T, H, W) complex64, maps: (B, C, H, W) complex64,
    mask: (B, 1, T, 1, W) or (T, W) bool, or None (fully sampled)
    returns (B, C, T, H, W) complex64

    Raises:
        ValueError: if the shapes of ``image``, ``maps`` and ``mask`` do not fit together,
            or ``mask`` is not bool.
    """
    _check_sense(image, maps, "image", 4)
    kspace = fft2c(_coil_images(image, maps))  # (B, C, T, H, W)
    if mask is not None:
        kspace = apply_mask(kspace, mask)
    return kspace


def sense_adjoint(kspace: Tensor, maps: Tensor, mask: Tensor | None = None) -> Tensor:
    """Adjoint of :func:`sense_forward`: A^H y = S^H F^H M y.

    kspace: (B, C, T, H, W) complex64, maps: (B, C, H, W) complex64,
    mask: (B, 1, T, 1, W) or (T, W) bool, or None
    returns (B, T, H, W) complex64

    Raises:
        ValueError: if the shapes of ``kspace``, ``maps`` and ``mask`` do not fit together,
            or ``mask`` is not bool.
    """
    _check_sense(kspace, maps, "kspace", 5)
    if mask is not None:
        kspace = apply_mask(kspace, mask)
    return _combine(ifft2c(kspace), maps)


def to_hybrid(kspace: Tensor) -> Tensor:
    """k-space -> hybrid (x, ky) space: the inverse FFT along the fully sampled readout H.

    kspace: (..., H, W) complex -> (..., H, W) complex. A Cartesian mask that is the same on
    every readout row, (B, 1, T, 1, W), commutes with this transform, so data consistency can
    work in hybrid space with 1D FFTs along W only (:func:`hybrid_forward`)."""
    return ifft1c(kspace, -2)


def hybrid_forward(image: Tensor, maps: Tensor) -> Tensor:
    """The SENSE operator into hybrid space, F_W S x (no mask; :func:`to_hybrid` of
    :func:`sense_forward` without a mask).

    image: (B, T, H, W) complex64, maps: (B, C, H, W) complex64 -> (B, C, T, H, W) complex64
    """
    _check_sense(image, maps, "image", 4)
    return fft1c(_coil_images(image, maps), -1)


def hybrid_adjoint(hybrid: Tensor, maps: Tensor) -> Tensor:
    """Adjoint of :func:`hybrid_forward`: S^H F_W^H h.

    hybrid: (B, C, T, H, W) complex64, maps: (B, C, H, W) complex64 -> (B, T, H, W) complex64
    """
    _check_sense(hybrid, maps, "hybrid", 5)
    return _combine(ifft1c(hybrid, -1), maps)


def _coil_images(image: Tensor, maps: Tensor) -> Tensor:
    """S x: (B, T, H, W) image, (B, C, H, W) maps -> (B, C, T, H, W) coil images."""
    return maps.unsqueeze(2) * image.unsqueeze(1)


def _combine(coil_images: Tensor, maps: Tensor) -> Tensor:
    """S^H c: (B, C, T, H, W) coil images, (B, C, H, W) maps -> (B, T, H, W)."""
    return (maps.conj().unsqueeze(2) * coil_images).sum(dim=1)


def rss(coil_images: Tensor, dim: int = 1) -> Tensor:
    """Root-sum-of-squares coil combination.

    coil_images: (B, C, ...) complex or real  ->  (B, ...) real magnitude.
    """
    return torch.sqrt((coil_images.abs() ** 2).sum(dim=dim))


def apply_mask(kspace: Tensor, mask: Tensor) -> Tensor:
    """Zero the k-space samples that a sampling mask does not acquire.

    kspace: (..., T, H, W) complex, e.g. (B, C, T, H, W) complex64
    mask: (T, W) bool (a :func:`cinemri.masks.cartesian_mask`) or bool broadcastable to
        ``kspace`` such as (B, 1, T, 1, W)
    returns kspace's shape and dtype; unsampled entries are exactly 0 (also where the
    input held NaN or inf there)

    Raises:
        ValueError: if ``mask`` is not bool or does not broadcast to ``kspace``.
    """
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be torch.bool, got {mask.dtype}")
    if mask.ndim == 2:
        mask = mask.unsqueeze(-2)  # (T, 1, W)
    try:
        shape = torch.broadcast_shapes(mask.shape, kspace.shape)
    except RuntimeError:
        shape = None
    if shape != kspace.shape:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to kspace {tuple(kspace.shape)}"
        )
    zero = torch.zeros((), dtype=kspace.dtype, device=kspace.device)
    return torch.where(mask.to(kspace.device), kspace, zero)


def estimate_coil_maps(
    kspace: Tensor,
    center_lines: int = CALIBRATION_LINES,
    window: int = 5,
    threshold: float = 0.05,
) -> Tensor:
    """Coil sensitivities from the fully sampled k-space centre (Walsh's adaptive combine).

    Steps, per batch item:

    1. Calibration data: k-space averaged over frames, each phase-encode line divided by
       the number of frames in which it was acquired (a line counts as acquired in a
       frame when any of its samples is non-zero). Undersampled, zero-filled cines are
       fine as long as each of the ``center_lines`` central lines (see
       :func:`cinemri.masks.center_slice`) is acquired in at least one frame.
    2. Low-resolution coil images: ifft2c of the calibration block weighted by a Hann
       window, ``center_lines`` wide in ky and the same fraction of k-space in kx.
    3. Walsh et al. (MRM 2000): at each pixel, the dominant eigenvector of the coil
       covariance summed over a ``window`` x ``window`` neighbourhood. Its norm is 1, so
       sum_c |S_c|^2 = 1. (``window=1`` gives the ratio method S_c = I_c / RSS(I).)
    4. Phase: eigenvectors have an arbitrary phase per pixel; each is rotated so that
       its projection onto a virtual reference coil (the dominant eigenvector of the
       covariance summed over the object) is real and positive. This avoids the phase
       singularities of referencing to a single physical coil.
    5. Support: maps are zero outside the object, where the low-resolution RSS image is
       at most ``threshold`` times its maximum; holes inside the object (dark lungs,
       blood with low signal) are filled, so the support is a solid region.

    The maps, like any estimated maps, agree with the true ones only up to a smooth
    phase per pixel, which the combined image absorbs.

    Single coil (C = 1): maps of ones everywhere (the image keeps all of its phase; no
    support mask).

    Args:
        kspace: (C, T, H, W) or (B, C, T, H, W) complex64 k-space, zeros where not acquired.
        center_lines: calibration lines in ky (>= 1 and <= W); default
            :data:`CALIBRATION_LINES`, CMRxRecon's fully sampled centre. Use at most the
            centre your mask always samples.
        window: odd side length in pixels of the Walsh neighbourhood (>= 1).
        threshold: relative low-resolution RSS level, in [0, 1), below which a pixel is
            background.

    Returns:
        maps (C, H, W) or (B, C, H, W) complex64, matching the input's batch layout.

    Raises:
        ValueError: naming the argument, for a real or wrongly shaped ``kspace``, a
            calibration line never acquired, or an out-of-range ``center_lines``,
            ``window`` or ``threshold``.
    """
    if not kspace.is_complex():
        raise ValueError(f"kspace must be complex, got {kspace.dtype}")
    if kspace.ndim not in (4, 5):
        raise ValueError(
            f"kspace must be (C, T, H, W) or (B, C, T, H, W), got shape {tuple(kspace.shape)}"
        )
    unbatched = kspace.ndim == 4
    k = (kspace.unsqueeze(0) if unbatched else kspace).to(torch.complex64)  # (B, C, T, H, W)
    b, c, _, h, w = k.shape
    if not _is_int(center_lines) or not 1 <= center_lines <= w:
        raise ValueError(f"center_lines must be an int in [1, W={w}], got {center_lines!r}")
    if not _is_int(window) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive int, got {window!r}")
    if not isinstance(threshold, Real) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    if c == 1:
        maps = torch.ones(b, 1, h, w, dtype=torch.complex64, device=k.device)
        return maps[0] if unbatched else maps

    calib = _time_averaged(k, int(center_lines))  # (B, C, H, W)
    low = ifft2c(calib * _hann_2d(h, w, int(center_lines), k.device))  # (B, C, H, W)
    cov = low.unsqueeze(2) * low.unsqueeze(1).conj()  # (B, C, C, H, W): I_c conj(I_d)
    cov = _box_sum(cov, int(window))
    support = _support(rss(low, dim=1), float(threshold))  # (B, H, W) bool

    cov_pix = cov.permute(0, 3, 4, 1, 2)  # (B, H, W, C, C)
    vectors = torch.linalg.eigh(cov_pix)[1][..., -1]  # (B, H, W, C), unit norm
    weights = support.to(cov_pix.real.dtype)[..., None, None]  # (B, H, W, 1, 1)
    global_cov = (cov_pix * weights).sum(dim=(1, 2))  # (B, C, C)
    reference = torch.linalg.eigh(global_cov)[1][..., -1]  # (B, C)
    projection = (reference.conj()[:, None, None, :] * vectors).sum(dim=-1)  # (B, H, W)
    rotation = torch.where(
        projection.abs() > 0, projection.conj() / projection.abs(), torch.ones_like(projection)
    )
    vectors = vectors * rotation.unsqueeze(-1)  # (B, H, W, C)
    maps = vectors.permute(0, 3, 1, 2) * support.unsqueeze(1)  # (B, C, H, W)
    maps = maps.to(torch.complex64)
    return maps[0] if unbatched else maps


def _time_averaged(k: Tensor, center_lines: int) -> Tensor:
    """(B, C, T, H, W) -> (B, C, H, W): mean over the frames in which each line was acquired."""
    acquired = (k != 0).any(dim=3).any(dim=1)  # (B, T, W)
    counts = acquired.sum(dim=1)  # (B, W)
    centre = center_slice(k.shape[-1], center_lines)
    missing = (counts[:, centre] == 0).nonzero()
    if missing.numel() > 0:
        line = int(missing[0, 1]) + centre.start
        raise ValueError(
            f"kspace: calibration line {line} (of center_lines={center_lines}) is never "
            "acquired; lower center_lines to the centre the mask always samples"
        )
    total = k.sum(dim=2)  # (B, C, H, W)
    return total / counts.clamp(min=1)[:, None, None, :].to(total.real.dtype)


def _hann_2d(h: int, w: int, center_lines: int, device: torch.device) -> Tensor:
    """(H, W) real window: Hann over the calibration block, zero elsewhere."""
    lines_x = min(h, max(1, round(center_lines * h / w)))
    window_x = torch.zeros(h, device=device)
    window_y = torch.zeros(w, device=device)
    window_x[center_slice(h, lines_x)] = _inner_hann(lines_x).to(device)
    window_y[center_slice(w, center_lines)] = _inner_hann(center_lines).to(device)
    return window_x[:, None] * window_y[None, :]  # (H, W)


def _inner_hann(n: int) -> Tensor:
    """(n,) Hann window without its zero end points, positive on all n samples."""
    return torch.hann_window(n + 2, periodic=False)[1:-1]


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _box_sum(cov: Tensor, window: int) -> Tensor:
    """Mean of (B, C, C, H, W) complex over a window x window neighbourhood (edges: valid part)."""
    if window == 1:
        return cov
    b, c, _, h, w = cov.shape
    parts = torch.view_as_real(cov).permute(0, 1, 2, 5, 3, 4).reshape(b, c * c * 2, h, w)
    pooled = torch.nn.functional.avg_pool2d(
        parts, window, stride=1, padding=window // 2, count_include_pad=False
    )  # (B, C*C*2, H, W)
    pooled = pooled.reshape(b, c, c, 2, h, w).permute(0, 1, 2, 4, 5, 3).contiguous()
    return torch.view_as_complex(pooled)  # (B, C, C, H, W)


def _support(rss_low: Tensor, threshold: float) -> Tensor:
    """(B, H, W) bool: RSS above threshold x its max, holes filled (scipy, on the CPU)."""
    peak = rss_low.flatten(1).amax(dim=1)[:, None, None]  # (B, 1, 1)
    above = (rss_low > threshold * peak).cpu().numpy()
    filled = np.stack([ndimage.binary_fill_holes(item) for item in above])
    return torch.from_numpy(filled).to(rss_low.device)


def _check_sense(x: Tensor, maps: Tensor, name: str, ndim: int) -> None:
    """Shapes of a SENSE operand against its coil maps (B, C, H, W)."""
    if x.ndim != ndim or maps.ndim != 4:
        raise ValueError(
            f"{name} must have {ndim} dims and maps 4 (B, C, H, W); got {name} "
            f"{tuple(x.shape)}, maps {tuple(maps.shape)}"
        )
    coils_ok = ndim == 4 or x.shape[1] == maps.shape[1]
    if x.shape[-2:] != maps.shape[-2:] or maps.shape[0] not in (1, x.shape[0]) or not coils_ok:
        raise ValueError(f"{name} {tuple(x.shape)} does not match maps {tuple(maps.shape)}")
