"""Rasterise the heart of one slice over all frames on a supersampled grid, average down."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..labels import LV, MYO, RV
from .contrast import Contrast
from .heart import (N_THETA, R_ENDO, R_ENVELOPE, R_EPI, R_OUTFLOW, R_RV, R_RVWALL, R_TRAB,
                    HeartFrames)


def _sample(radii: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Border radii at pixel angles (nearest of the N_THETA angles, 0.5 degree apart).

    radii: (T, K, N) on the THETA grid; theta: (T, n) rad in [-pi, pi]. returns (T, K, n) float32.
    """
    idx = np.rint((theta + np.pi) * (N_THETA / (2 * np.pi))).astype(np.int64) % N_THETA  # (T, n)
    radii = radii.astype(np.float32)
    return np.stack([np.take(radii[t], idx[t], axis=1) for t in range(radii.shape[0])])  # (T, K, n)


def render_heart(heart: HeartFrames, s: int, x: np.ndarray, y: np.ndarray, static: np.ndarray,
                 texture: np.ndarray, contrast: Contrast) -> tuple[np.ndarray, np.ndarray]:
    """Labels and signal of slice ``s`` in every frame, on a (supersampled) grid.

    x, y: (h, w) mm coordinates of the grid; static: (h, w) signal of the static anatomy;
    texture: (h, w) smooth zero-mean field, a +-4 % flow/tissue inhomogeneity in the heart.
    returns labels (T, h, w) uint8 {0 bg, 1 RV, 2 MYO, 3 LV} and signal (T, h, w) float32.
    """
    c = contrast
    t_count = heart.centre.shape[0]
    cx, cy = heart.centre[:, 0, None], heart.centre[:, 1, None]  # (T, 1)
    dx = (x.reshape(1, -1) - cx).astype(np.float32)  # (T, n)
    dy = (y.reshape(1, -1) - cy).astype(np.float32)
    rot = heart.rotation[s][:, None].astype(np.float32)  # (T, 1)
    lx = np.cos(rot) * dx + np.sin(rot) * dy  # rotate back by the torsion angle
    ly = -np.sin(rot) * dx + np.cos(rot) * dy
    r, theta = np.hypot(lx, ly), np.arctan2(ly, lx)  # (T, n)
    b = _sample(heart.radii[s], theta)  # (T, 7, n)

    in_lv = r < b[:, R_ENDO]
    in_myo = ~in_lv & (r < b[:, R_EPI])
    in_out = ~in_lv & ~in_myo & (r < b[:, R_OUTFLOW])
    in_rv = ~in_lv & ~in_myo & ~in_out & (r < b[:, R_RV])
    in_rvwall = ~in_lv & ~in_myo & ~in_out & ~in_rv & (r < b[:, R_RVWALL])
    in_fat = (r < b[:, R_ENVELOPE]) & ~(in_lv | in_myo | in_out | in_rv | in_rvwall)

    labels = np.zeros(r.shape, np.uint8)
    labels[in_lv], labels[in_myo], labels[in_rv] = LV, MYO, RV

    trabecula = in_lv & (r >= b[:, R_TRAB])
    muscle = in_myo | in_rvwall | trabecula
    for k in range(2):  # papillary muscles: myocardial signal, LV label
        size = heart.pm_radius[s, k]
        if size <= 0:
            continue
        ang = heart.pm_angle[k]
        idx = int(round((np.angle(np.exp(1j * ang)) + np.pi) / (2 * np.pi) * N_THETA)) % N_THETA
        r_wall = heart.radii[s, :, R_ENDO, idx]  # (T,) endocardial radius behind the muscle
        dist = np.maximum(r_wall - 1.05 * size, 0.35 * r_wall)  # attached to the wall
        px, py = dist * np.cos(ang), dist * np.sin(ang)
        muscle |= in_lv & (np.hypot(lx - px[:, None], ly - py[:, None]) < size)

    sig = np.broadcast_to(static.reshape(1, -1).astype(np.float32), r.shape).copy()
    sig[in_fat] = c["fat"]
    sig[in_lv | in_out] = c["blood"]
    sig[in_rv] = c["rv_blood"]
    sig[trabecula] = 0.55 * c["myocardium"] + 0.45 * c["blood"]
    sig[muscle & ~trabecula] = c["myocardium"]
    heart_px = r < b[:, R_ENVELOPE]
    sig[heart_px] *= (1.0 + 0.04 * np.broadcast_to(texture.reshape(1, -1), r.shape))[heart_px]
    shape = (t_count,) + x.shape
    return labels.reshape(shape), sig.reshape(shape)


def majority_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """Majority label over factor x factor blocks (ties go to the lower label).

    labels: (..., H*factor, W*factor) uint8. returns (..., H, W) uint8.
    """
    *lead, hf, wf = labels.shape
    blocks = labels.reshape(*lead, hf // factor, factor, wf // factor, factor)
    counts = np.stack([(blocks == k).sum(axis=(-3, -1)) for k in range(4)])  # (4, ..., H, W)
    return counts.argmax(0).astype(np.uint8)


KSPACE_TAPER = 0.3  # Tukey taper of the acquisition window (fraction of k-space), like a scanner's raw filter


def acquisition_window(height: int, width: int) -> np.ndarray:
    """Separable Tukey window over centred k-space, 1 in the middle, 0 at the edges.

    returns (H, W) float64 in fftshift order (DC at index H//2, W//2).
    """
    def tukey(n: int) -> np.ndarray:
        k = np.abs(np.arange(n) - n // 2) / (n / 2)  # 0 at DC, 1 at Nyquist
        edge = 1.0 - KSPACE_TAPER
        return np.where(k <= edge, 1.0, 0.5 * (1 + np.cos(np.pi * np.clip(k - edge, 0, None) / KSPACE_TAPER)))
    return tukey(height)[:, None] * tukey(width)[None]


@lru_cache(maxsize=16)
def acquisition_operator(n: int, factor: int) -> np.ndarray:
    """1D imaging operator from a ``factor``-times finer grid to ``n`` pixels.

    The fine signal's spectrum is truncated to the n central frequencies (as a scanner
    acquires them), tapered by the Tukey window of :func:`acquisition_window`, and
    transformed back; coarse pixel i is centred on the middle of its block of ``factor``
    fine samples. The kernel is a real, shifted, windowed sinc.
    returns (n, n * factor) float64 (read-only); the 2D operator is P_h @ X @ P_w.T.
    """
    nf = n * factor
    spec = np.fft.fftshift(np.fft.fft(np.eye(nf), axis=0), axes=0)  # (nf, nf), DC at nf//2
    spec = spec[nf // 2 - n // 2: nf // 2 - n // 2 + n]  # (n, nf) central frequencies, DC at n//2
    k = np.arange(n) - n // 2
    shift = (factor - 1) / 2  # fine samples from a block's first sample to its centre
    window = acquisition_window(n, 1)[:, 0]
    spec = spec * (np.exp(2j * np.pi * shift * k / nf) * window)[:, None]
    op = np.fft.ifft(np.fft.ifftshift(spec, axes=0), axis=0).real / factor  # (n, nf)
    op.setflags(write=False)
    return op


def acquire(signal: np.ndarray, factor: int, rows: slice = slice(None), cols: slice = slice(None),
            height: int | None = None, width: int | None = None) -> np.ndarray:
    """Image an object rendered on a ``factor``-times finer grid at the coarse resolution
    (k-space truncation with a mild taper: realistic PSF, partial volume, slight Gibbs ringing).

    signal: (..., h, w) float, the fine-grid window ``[rows, cols]`` of an object that is zero
    elsewhere on a (height*factor, width*factor) grid (default: the whole grid,
    height = h / factor, width = w / factor). returns (..., height, width) float32.
    Computed as two large matrix products (P_h X P_w^T), batched over the leading axes.
    """
    *lead, hf, wf = signal.shape
    height, width = height or hf // factor, width or wf // factor
    p_h = np.ascontiguousarray(acquisition_operator(height, factor)[:, rows], dtype=np.float32)  # (H, hf)
    p_wt = np.ascontiguousarray(acquisition_operator(width, factor)[:, cols].T, dtype=np.float32)  # (wf, W)
    if p_h.shape[1] != hf or p_wt.shape[0] != wf:
        raise ValueError(f"signal window {(hf, wf)} does not match rows/cols {p_h.shape[1], p_wt.shape[0]}")
    n = int(np.prod(lead, dtype=np.int64))
    x = signal.astype(np.float32, copy=False).reshape(n * hf, wf) @ p_wt  # (n*hf, W)
    x = x.reshape(n, hf, width).transpose(1, 0, 2).reshape(hf, n * width)  # (hf, n*W)
    x = (p_h @ x).reshape(height, n, width).transpose(1, 0, 2)  # (n, H, W)
    return x.reshape(*lead, height, width)
