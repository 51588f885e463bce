"""Training losses for reconstruction: L1 / L2 on the complex image, SSIM on the magnitude.

* :func:`l1_loss`, :func:`l2_loss` - mean absolute / squared error over the real and the
  imaginary part of every pixel (the complex image seen as two real channels).
* :func:`ssim_loss` - ``1 - SSIM`` of the magnitudes, SSIM as in :mod:`cinemri.metrics.image`
  (7x7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, valid region only, mean of
  the per-frame 2D SSIMs) with the data range of each batch item = max |target| of that
  item, held constant (no gradient through the range). Differentiable in ``pred``.
* :func:`dynamic_loss` - L1 on the dynamic part of the cine (each frame minus the temporal
  mean): the moving heart is a small share of the pixels, so whole-frame L1 lets a blurred
  end systole cost little; ``l1+dynamic`` counts its errors twice.
* :func:`recon_loss` - a weighted sum of these terms, e.g. ``{"l1": 1.0, "ssim": 1.0}``.

The SSIM loss is computed in float32, the metric in float64; on images in [0, 1] they agree
to about 1e-6.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch.nn import functional as F

SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03

LOSS_TERMS = ("l1", "l2", "ssim", "dynamic")


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim != 4:
        raise ValueError(f"pred/target must be (B, T, H, W), got shape {tuple(pred.shape)}")


def _real(x: Tensor) -> Tensor:
    """(B, T, H, W) complex -> (B, T, H, W, 2) float32; a real tensor -> (..., 1) float32."""
    return torch.view_as_real(x.to(torch.complex64)) if x.is_complex() else x.float().unsqueeze(-1)


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean |pred - target| over real and imaginary parts.

    pred, target: (B, T, H, W) complex64 (or real float)
    returns a 0-d float32 tensor
    """
    _check_pair(pred, target)
    return F.l1_loss(_real(pred), _real(target))


def l2_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean (pred - target)^2 over real and imaginary parts.

    pred, target: (B, T, H, W) complex64 (or real float)
    returns a 0-d float32 tensor
    """
    _check_pair(pred, target)
    return F.mse_loss(_real(pred), _real(target))


def dynamic_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean |(pred - mean_t pred) - (target - mean_t target)| over real and imaginary parts:
    L1 of the error that the temporal mean does not explain.

    pred, target: (B, T, H, W) complex64 (or real float)
    returns a 0-d float32 tensor
    """
    _check_pair(pred, target)
    error = _real(pred) - _real(target)  # (B, T, H, W, 2)
    return (error - error.mean(dim=1, keepdim=True)).abs().mean()


def ssim_map(pred: Tensor, target: Tensor, data_range: Tensor) -> Tensor:
    """SSIM map of real images over the valid region (see the module docstring).

    pred, target: (N, H, W) float32 with H, W >= 7; data_range: (N,) float32
    returns (N, H - 6, W - 6) float32
    """
    x, y = pred.unsqueeze(1), target.unsqueeze(1)  # (N, 1, H, W)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5, H, W)
    moments = F.avg_pool2d(stack, SSIM_WINDOW, stride=1)  # (N, 5, H - 6, W - 6)
    ux, uy, uxx, uyy, uxy = moments.unbind(dim=1)  # each (N, H - 6, W - 6)
    n = SSIM_WINDOW * SSIM_WINDOW
    cov = n / (n - 1)
    vx, vy, vxy = cov * (uxx - ux * ux), cov * (uyy - uy * uy), cov * (uxy - ux * uy)
    r = data_range.view(-1, 1, 1)  # (N, 1, 1)
    c1, c2 = (SSIM_K1 * r) ** 2, (SSIM_K2 * r) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - mean SSIM of the magnitudes, one data range per batch item (max |target| of it).

    pred, target: (B, T, H, W) complex64 (or real float), H, W >= 7
    returns a 0-d float32 tensor in [0, 2]

    Raises:
        ValueError: shapes differ, not 4-D, or images smaller than 7x7.
    """
    _check_pair(pred, target)
    b, t, h, w = pred.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"ssim_loss needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    p = (pred.abs() if pred.is_complex() else pred).float()  # (B, T, H, W)
    y = (target.abs() if target.is_complex() else target).float().detach()  # (B, T, H, W)
    ranges = y.flatten(1).amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)  # (B,)
    ranges = ranges.repeat_interleave(t)  # (B * T,)
    value = ssim_map(p.reshape(b * t, h, w), y.reshape(b * t, h, w), ranges)  # (B * T, H - 6, W - 6)
    return 1.0 - value.mean()


_TERMS = {"l1": l1_loss, "l2": l2_loss, "ssim": ssim_loss, "dynamic": dynamic_loss}


def parse_loss(kind: str, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Loss terms and weights from a kind like ``"l1+ssim"`` and optional per-term weights.

    Each term of ``kind`` (joined by ``+``) is one of :data:`LOSS_TERMS`; its weight is
    ``weights[term]``, 1.0 when absent. returns ``{term: weight}``.

    Raises:
        ValueError: an unknown or repeated term, a weight for a term not in ``kind``, or a
            negative weight.
    """
    terms = [t.strip() for t in kind.split("+")]
    bad = [t for t in terms if t not in LOSS_TERMS]
    if bad or len(set(terms)) != len(terms):
        raise ValueError(f"loss kind must be terms of {LOSS_TERMS} joined by '+', each once, got {kind!r}")
    weights = dict(weights or {})
    extra = sorted(set(weights) - set(terms))
    if extra:
        raise ValueError(f"loss weights name terms not in kind {kind!r}: {extra}")
    out = {t: float(weights.get(t, 1.0)) for t in terms}
    negative = {t: w for t, w in out.items() if w < 0}
    if negative:
        raise ValueError(f"loss weights must be >= 0, got {negative}")
    return out


def recon_loss(pred: Tensor, target: Tensor, terms: Mapping[str, float]) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of loss terms (see :func:`parse_loss`) and each term's detached value.

    pred, target: (B, T, H, W) complex64; terms: {name in LOSS_TERMS: weight}
    returns (0-d float32 loss, {name: 0-d detached value})
    """
    if not terms:
        raise ValueError("terms must name at least one loss term")
    total = pred.new_zeros((), dtype=torch.float32)
    logs: dict[str, Tensor] = {}
    for name, weight in terms.items():
        if name not in _TERMS:
            raise ValueError(f"loss term must be one of {LOSS_TERMS}, got {name!r}")
        value = _TERMS[name](pred, target)
        logs[name] = value.detach()
        total = total + weight * value
    return total, logs
