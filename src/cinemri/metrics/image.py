"""Image-quality metrics on magnitude images: PSNR, SSIM, NMSE.

Conventions (fastMRI's evaluation, DESIGN.md):

- Metrics are computed on magnitudes: complex inputs are replaced by ``abs``; real inputs
  are used as they are (a signed real image stays signed).
- One data range per case: by default the maximum of the reference (``target``) magnitude
  over the whole case, all frames together.
- SSIM is scikit-image's ``structural_similarity`` default: a 7x7 uniform window, sample
  covariance (N / (N - 1) with N = 49), K1 = 0.01, K2 = 0.03, and the mean over the valid
  region only (the (7 - 1) / 2 = 3-pixel border is excluded, as scikit-image crops it).
  For a cine (T, H, W) it is the mean of the T per-frame 2D SSIMs, all with the case's
  data range.
- PSNR = 10 log10(range^2 / MSE), MSE over every pixel of the case; +inf when MSE is 0.
- NMSE = ||pred - target||^2 / ||target||^2 over the case.

Inputs are torch tensors (NumPy arrays are accepted too); outputs are Python floats, or (B,)
float64 tensors for the ``*_batch`` variants (one value per case, for validation loops).
All arithmetic runs in float64 whatever the input dtype, so the numbers do not depend on
the device or on the precision the network ran in.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _magnitude(x: Tensor | np.ndarray, name: str) -> Tensor:
    """abs of a complex tensor, a real tensor as is; detached, float64."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    x = x.detach()
    if x.is_complex():
        x = x.abs()
    return x.to(torch.float64)


def _prepare(pred: Tensor, target: Tensor, batched: bool) -> tuple[Tensor, Tensor]:
    """Validate and convert a (pred, target) pair to float64 magnitudes of equal shape."""
    p, t = _magnitude(pred, "pred"), _magnitude(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: pred {tuple(p.shape)} vs target {tuple(t.shape)}")
    allowed = (3, 4) if batched else (2, 3)
    if p.ndim not in allowed:
        what = "(B, H, W) or (B, T, H, W)" if batched else "(H, W) or (T, H, W)"
        raise ValueError(f"pred/target must be {what}, got shape {tuple(p.shape)}")
    if p.numel() == 0:
        raise ValueError(f"pred/target are empty, shape {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()):
        raise ValueError("pred contains NaN or inf values")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("target contains NaN or inf values")
    return p, t


def _resolve_range(target: Tensor, data_range: float | None) -> float:
    """The case's data range: the given one, or the max of the target magnitude."""
    if data_range is None:
        data_range = float(target.max())
        if not data_range > 0:
            raise ValueError(f"data_range defaults to max(target) = {data_range}, which is not positive; "
                             "pass data_range explicitly")
        return data_range
    data_range = float(data_range)
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    return data_range


def _batch_ranges(target: Tensor, data_range: float | None) -> Tensor:
    """Per-case data ranges of a batch: target (B, ...) float64 -> (B,) float64."""
    if data_range is not None:
        value = _resolve_range(target, data_range)
        return torch.full((target.shape[0],), value, dtype=torch.float64, device=target.device)
    ranges = target.flatten(1).amax(dim=1)  # (B,)
    if not bool((ranges > 0).all()):
        bad = int(torch.nonzero(ranges <= 0)[0])
        raise ValueError(f"data_range defaults to max(target) per case, which is not positive for case {bad}; "
                         "pass data_range explicitly")
    return ranges


def _box_mean_valid(x: Tensor, k: int) -> Tensor:
    """Mean over every k x k window that fits inside the image ("valid" filtering).

    x: (..., H, W) float64 -> (..., H-k+1, W-k+1) float64. Separable running sums of k
    shifted slices: exact like ``avg_pool2d`` and several times faster on CPU in float64.
    """
    w = x.shape[-1] - k + 1
    rows = x[..., :w].clone()                                    # (..., H, W-k+1)
    for i in range(1, k):
        rows += x[..., i:i + w]
    h = x.shape[-2] - k + 1
    out = rows[..., :h, :].clone()                               # (..., H-k+1, W-k+1)
    for i in range(1, k):
        out += rows[..., i:i + h, :]
    return out / (k * k)


def _ssim_per_image(pred: Tensor, target: Tensor, data_range: Tensor) -> Tensor:
    """Mean SSIM of each 2D image over the valid (border-cropped) region.

    pred, target: (N, H, W) float64 magnitudes with H, W >= 7;
    data_range: (N,) float64, one range per image.
    returns (N,) float64
    """
    h, w = pred.shape[-2:]
    if h < SSIM_WIN_SIZE or w < SSIM_WIN_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE}, got {h}x{w}")
    x = pred.unsqueeze(1)    # (N, 1, H, W)
    y = target.unsqueeze(1)  # (N, 1, H, W)
    # Local means of the five moments; "valid" filtering is exactly skimage's border crop.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)          # (N, 5, H, W)
    moments = _box_mean_valid(stack, SSIM_WIN_SIZE)              # (N, 5, H-6, W-6)
    ux, uy, uxx, uyy, uxy = moments.unbind(dim=1)                # each (N, H-6, W-6)
    n_win = SSIM_WIN_SIZE * SSIM_WIN_SIZE
    cov_norm = n_win / (n_win - 1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    r = data_range.view(-1, 1, 1)                                # (N, 1, 1)
    c1 = (SSIM_K1 * r) ** 2
    c2 = (SSIM_K2 * r) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return (num / den).mean(dim=(-2, -1))                        # (N,)


def psnr(pred: Tensor, target: Tensor, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB of one case.

    pred, target: (H, W) or (T, H, W), complex (magnitude is used) or real, any float dtype.
    data_range: peak value; default max |target| over the whole case.
    returns 10 log10(data_range^2 / MSE) as a float; +inf when pred equals target.

    Raises:
        ValueError: shapes differ, not 2D/3D, non-finite values, or a non-positive data range.
    """
    p, t = _prepare(pred, target, batched=False)
    r = _resolve_range(t, data_range)
    mse = float(((p - t) ** 2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(r * r / mse)


def nmse(pred: Tensor, target: Tensor) -> float:
    """Normalised mean squared error ||pred - target||^2 / ||target||^2 of one case.

    pred, target: (H, W) or (T, H, W), complex (magnitude is used) or real.
    returns a float >= 0

    Raises:
        ValueError: shapes differ, not 2D/3D, non-finite values, or target all zero.
    """
    p, t = _prepare(pred, target, batched=False)
    energy = float((t * t).sum())
    if energy == 0.0:
        raise ValueError("nmse: target is all zero, the normalisation ||target||^2 is 0")
    return float(((p - t) ** 2).sum()) / energy


def ssim(pred: Tensor, target: Tensor, data_range: float | None = None) -> float:
    """Structural similarity of one case, scikit-image's default definition (see module doc).

    pred, target: (H, W) or (T, H, W) with H, W >= 7, complex (magnitude is used) or real.
    data_range: default max |target| over the whole case; a cine uses this one range for
        every frame and returns the mean of the per-frame SSIMs.
    returns a float in [-1, 1]

    Raises:
        ValueError: shapes differ, not 2D/3D, images smaller than 7x7, non-finite values,
            or a non-positive data range.
    """
    p, t = _prepare(pred, target, batched=False)
    r = _resolve_range(t, data_range)
    h, w = p.shape[-2:]
    p, t = p.reshape(-1, h, w), t.reshape(-1, h, w)  # (T, H, W)
    ranges = torch.full((p.shape[0],), r, dtype=torch.float64, device=p.device)
    return float(_ssim_per_image(p, t, ranges).mean())


def psnr_batch(pred: Tensor, target: Tensor, data_range: float | None = None) -> Tensor:
    """PSNR of each case of a batch, each with its own data range (max |target| of that case).

    pred, target: (B, H, W) or (B, T, H, W), complex or real.
    returns (B,) float64 on the input's device; +inf where a case is reproduced exactly.
    """
    p, t = _prepare(pred, target, batched=True)
    ranges = _batch_ranges(t, data_range)                 # (B,)
    mse = ((p - t) ** 2).flatten(1).mean(dim=1)           # (B,)
    return 10.0 * torch.log10(ranges * ranges / mse)      # 1/0 -> +inf


def worst_frame_psnr_batch(pred: Tensor, target: Tensor) -> Tensor:
    """The lowest per-frame PSNR of each cine of a batch, every frame scored with its cine's
    data range (max |target| of the cine): the frame the reconstruction gets most wrong,
    usually end systole, where the heart is furthest from the temporal mean.

    pred, target: (B, T, H, W), complex or real.
    returns (B,) float64; +inf where every frame is reproduced exactly.
    """
    if pred.ndim != 4:
        raise ValueError(f"worst_frame_psnr_batch needs (B, T, H, W) cines, got shape {tuple(pred.shape)}")
    p, t = _prepare(pred, target, batched=True)
    ranges = _batch_ranges(t, None)                       # (B,)
    mse = ((p - t) ** 2).flatten(2).mean(dim=2)           # (B, T)
    return (10.0 * torch.log10(ranges[:, None] ** 2 / mse)).amin(dim=1)


def nmse_batch(pred: Tensor, target: Tensor) -> Tensor:
    """NMSE of each case of a batch.

    pred, target: (B, H, W) or (B, T, H, W), complex or real.
    returns (B,) float64

    Raises:
        ValueError: as :func:`nmse`, for any case whose target is all zero.
    """
    p, t = _prepare(pred, target, batched=True)
    energy = (t * t).flatten(1).sum(dim=1)                # (B,)
    if not bool((energy > 0).all()):
        raise ValueError("nmse_batch: a target case is all zero, the normalisation ||target||^2 is 0")
    return ((p - t) ** 2).flatten(1).sum(dim=1) / energy


def ssim_batch(pred: Tensor, target: Tensor, data_range: float | None = None) -> Tensor:
    """SSIM of each case of a batch (mean over its frames, one data range per case).

    pred, target: (B, H, W) or (B, T, H, W) with H, W >= 7, complex or real.
    returns (B,) float64 on the input's device
    """
    p, t = _prepare(pred, target, batched=True)
    ranges = _batch_ranges(t, data_range)                 # (B,)
    b, h, w = p.shape[0], p.shape[-2], p.shape[-1]
    frames = p[0].numel() // (h * w)                      # T (1 for 2D cases)
    per_frame = _ssim_per_image(p.reshape(b * frames, h, w), t.reshape(b * frames, h, w),
                              ranges.repeat_interleave(frames))  # (B*T,)
    return per_frame.view(b, frames).mean(dim=1)          # (B,)


def cmrxrecon_scores(pred: Tensor, target: Tensor, crop: bool = True) -> dict[str, float]:
    """PSNR, SSIM and NMSE in the CMRxRecon 2023 convention (REFERENCES.md), beside ours.

    Every 2D image (frame) is scored on its own: prediction and reference magnitudes are each
    divided by their own maximum, then PSNR and SSIM use data range 1 and NMSE is
    ||gt - pred||^2 / ||gt||^2; the figures are the means over the images. With ``crop`` only the
    central H/3 x W/2 region is scored (H the readout, W the phase encodes), as on the
    challenge's board, after the normalisation of the whole image. Whole-image figures are
    several dB above cropped ones: always say which one a figure is.

    pred, target: (H, W), (T, H, W) or (B, T, H, W), complex or real; H/3 and W/2 >= 7 with crop.
    returns {"psnr": dB, "ssim": ..., "nmse": ...} as Python floats.

    Raises:
        ValueError: shapes differ, or a reference image is all zero.
    """
    p, t = _prepare(pred, target, batched=getattr(pred, "ndim", 0) == 4)
    h, w = p.shape[-2:]
    p, t = p.reshape(-1, h, w), t.reshape(-1, h, w)  # (N, H, W), one row per image
    t_max, p_max = t.flatten(1).amax(dim=1), p.flatten(1).amax(dim=1)  # (N,)
    if not bool((t_max > 0).all()):
        raise ValueError("cmrxrecon_scores: a reference image is all zero")
    p = p / torch.where(p_max > 0, p_max, torch.ones_like(p_max))[:, None, None]
    t = t / t_max[:, None, None]
    if crop:
        ch, cw = h // 3, w // 2
        top, left = (h - ch) // 2, (w - cw) // 2
        p, t = p[:, top:top + ch, left:left + cw], t[:, top:top + ch, left:left + cw]
    mse = ((p - t) ** 2).flatten(1).mean(dim=1)  # (N,)
    ones = torch.ones(p.shape[0], dtype=torch.float64, device=p.device)
    return {"psnr": float((10.0 * torch.log10(1.0 / mse)).mean()),
            "ssim": float(_ssim_per_image(p.contiguous(), t.contiguous(), ones).mean()),
            "nmse": float(((p - t) ** 2).flatten(1).sum(dim=1).div((t * t).flatten(1).sum(dim=1)).mean())}
