"""Data consistency: pull a network's image estimate back towards the measured k-space.

Both layers work on the complex image through the SENSE operator of :mod:`cinemri.physics`
(:func:`~cinemri.physics.sense_forward` A = F S without a mask, and its adjoint
:func:`~cinemri.physics.sense_adjoint` A^H = S^H F^H); they never call an FFT themselves:

    k    = A x = F S x                            full coil k-space of the estimate
    hard: k_dc = (1 - m) k + m y                  sampled entries replaced by the measurement
    soft: k_dc = (1 - m) k + m (k + lam y) / (1 + lam),   lam >= 0 (lam -> inf gives hard)
    x_dc = A^H k_dc = S^H F^H k_dc

m is the sampling mask and y the measured k-space (zero where not sampled). With
``hybrid=True`` the measurement comes in hybrid (x, ky) space, y_h = F_H^H y
(:func:`~cinemri.physics.to_hybrid`), and A becomes F_W S
(:func:`~cinemri.physics.hybrid_forward` / :func:`~cinemri.physics.hybrid_adjoint`): the same
result, because a mask that is the same on every readout row commutes with F_H, at half the FFT
work per layer (a cascade converts y once for all its stages). For single coil
(C = 1, maps of ones) hard DC is the exact projection onto {x : M F x = y}. For several coils
it is a projection only when the maps are orthonormal per pixel (sum_c |S_c|^2 = 1, and the
coil images of x stay in the range of S); otherwise it is the usual "replace and recombine"
step, which is what cascades such as Schlemper et al. (2018) do.

DC always runs in float32 / complex64 with autocast disabled, whatever the network runs in
(complex128 inputs stay complex128, e.g. for exactness tests).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinemri.physics import hybrid_adjoint, hybrid_forward, sense_adjoint, sense_forward

DC_MODES = ("hard", "soft")


def _check(image: Tensor, kspace: Tensor, mask: Tensor, maps: Tensor) -> None:
    if image.ndim != 4 or kspace.ndim != 5 or maps.ndim != 4 or mask.ndim != 5:
        raise ValueError(
            "expected image (B, T, H, W), kspace (B, C, T, H, W), mask (B, 1, T, 1, W), maps (B, C, H, W); "
            f"got image {tuple(image.shape)}, kspace {tuple(kspace.shape)}, mask {tuple(mask.shape)}, maps {tuple(maps.shape)}"
        )


def _mix(image: Tensor, kspace: Tensor, mask: Tensor, maps: Tensor, weight: Tensor | None,
         hybrid: bool = False) -> Tensor:
    """A^H [(1 - m) k + m ((1 - w) k + w y)] with k = A x (A: the SENSE operator without a mask,
    into k-space, or into hybrid space when ``hybrid``); w = 1 (hard) or lam / (1 + lam)."""
    if hybrid and mask.shape[-2] != 1:
        raise ValueError(f"hybrid-space DC needs a mask that is the same on every readout row, (B, 1, T, 1, W); "
                         f"got mask {tuple(mask.shape)}")
    forward, adjoint = (hybrid_forward, hybrid_adjoint) if hybrid else (sense_forward, sense_adjoint)
    with torch.autocast(device_type=image.device.type, enabled=False):
        wide = torch.complex128 in (image.dtype, kspace.dtype, maps.dtype)
        dtype = torch.complex128 if wide else torch.complex64
        image = image.to(dtype)
        kspace = kspace.to(dtype)
        maps = maps.to(dtype)
        coil_k = forward(image, maps)  # (B, C, T, H, W), every location
        sampled = mask.to(torch.bool)  # (B, 1, T, 1, W)
        if weight is None:
            target = kspace  # hard: replace
        else:
            target = coil_k + weight * (kspace - coil_k)  # (k + lam y) / (1 + lam)
        coil_k = torch.where(sampled, target, coil_k)  # (B, C, T, H, W)
        return adjoint(coil_k, maps)  # (B, T, H, W)


def hard_dc(image: Tensor, kspace: Tensor, mask: Tensor, maps: Tensor, *, hybrid: bool = False) -> Tensor:
    """Replace the sampled k-space of ``image`` by the measurement.

    image: (B, T, H, W) complex, kspace: (B, C, T, H, W) complex64 measurement (in hybrid
    space when ``hybrid``, see the module docstring), mask: (B, 1, T, 1, W) bool,
    maps: (B, C, H, W) complex64
    returns (B, T, H, W) complex64
    """
    _check(image, kspace, mask, maps)
    return _mix(image, kspace, mask, maps, None, hybrid)


def soft_dc(image: Tensor, kspace: Tensor, mask: Tensor, maps: Tensor, lam: Tensor | float, *,
            hybrid: bool = False) -> Tensor:
    """Weighted average of the estimate's and the measured k-space at sampled locations.

    k_dc = (1 - m) k + m (k + lam y) / (1 + lam); lam = 0 keeps k, lam -> inf is :func:`hard_dc`.
    image: (B, T, H, W) complex, kspace: (B, C, T, H, W) complex64 (hybrid space when ``hybrid``),
    mask: (B, 1, T, 1, W) bool, maps: (B, C, H, W) complex64, lam: non-negative float, or 0-d
    float tensor (may need grad; its sign is the caller's responsibility, e.g. softplus)
    returns (B, T, H, W) complex64
    """
    _check(image, kspace, mask, maps)
    if not isinstance(lam, Tensor):
        if not lam >= 0:  # tensors are not checked here: that would sync a GPU every stage
            raise ValueError(f"lam must be a non-negative scalar, got {lam}")
        lam = torch.tensor(float(lam), device=image.device)
    elif lam.ndim != 0:
        raise ValueError(f"lam must be a 0-d tensor, got shape {tuple(lam.shape)}")
    return _mix(image, kspace, mask, maps, lam / (1 + lam), hybrid)


class DataConsistency(nn.Module):
    """Hard or soft (learned lambda) data consistency as a module.

    forward(image (B, T, H, W) complex, kspace (B, C, T, H, W) complex64,
            mask (B, 1, T, 1, W) bool, maps (B, C, H, W) complex64, hardness=0.0, *, hybrid=False)
        -> (B, T, H, W) complex64   (hybrid: kspace holds to_hybrid(y), see the module docstring)

    ``hardness`` h in [0, 1] (soft mode; a training schedule, not a parameter): the weight
    of the measurement becomes h + (1 - h) lam / (1 + lam), so h = 1 is hard DC (lambda
    still receives a zero gradient, so DistributedDataParallel sees every parameter used)
    and h = 0 is the learned soft DC, computed exactly as without it.

    Args:
        mode: "hard" (no parameters) or "soft" (one learned lambda = softplus(p) >= 0).
        init_lambda: starting lambda of the soft mode (> 0). Lambda weighs the measurement
            against the network's k-space in the units of the normalised data.

    Raises:
        ValueError: on an unknown mode or a non-positive init_lambda.
    """

    def __init__(self, *, mode: str = "soft", init_lambda: float = 1.0) -> None:
        super().__init__()
        if mode not in DC_MODES:
            raise ValueError(f"mode must be one of {DC_MODES}, got {mode!r}")
        if not init_lambda > 0 or not math.isfinite(init_lambda):
            raise ValueError(f"init_lambda must be a positive finite number, got {init_lambda}")
        self.mode = mode
        if mode == "soft":
            raw = init_lambda + math.log(-math.expm1(-init_lambda))  # softplus^-1(init_lambda)
            self.raw_lambda = nn.Parameter(torch.tensor(raw, dtype=torch.float32))

    @property
    def lam(self) -> Tensor | None:
        """Current lambda (0-d float32 tensor), or None for hard DC."""
        return F.softplus(self.raw_lambda) if self.mode == "soft" else None

    def forward(self, image: Tensor, kspace: Tensor, mask: Tensor, maps: Tensor, hardness: float = 0.0, *,
                hybrid: bool = False) -> Tensor:
        if self.mode == "hard":
            return hard_dc(image, kspace, mask, maps, hybrid=hybrid)
        if hardness == 0:
            return soft_dc(image, kspace, mask, maps, self.lam, hybrid=hybrid)
        if not 0 <= hardness <= 1:
            raise ValueError(f"hardness must be in [0, 1], got {hardness}")
        _check(image, kspace, mask, maps)
        lam = self.lam
        return _mix(image, kspace, mask, maps, hardness + (1 - hardness) * lam / (1 + lam), hybrid)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
