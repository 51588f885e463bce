"""Multi-coil acquisition of a magnitude cine, and augmentation of reconstruction samples.

Real cine archives (DICOM, NIfTI) hold magnitude images only. To train reconstruction on
their anatomy, each slice becomes a multi-coil acquisition (see docs/data.md):

1. a smooth random background phase (low-order 2D polynomial, peak |phase| drawn up to
   ``phase_max``) turns the magnitude into a complex image x (the phase of real scans comes
   from B0, coils and the receive chain, and is smooth);
2. C coils (C drawn from ``coils``) of one of the :data:`COIL_FAMILIES`, with random
   positions, reaches and phase ramps, normalised so that sum_c |S_c|^2 = 1 at every pixel
   (so S^H S x = x: the coil-combined fully sampled image is x plus noise);
3. complex Gaussian k-space noise with E|n|^2 = sigma^2 per coil sample, sigma = mean |x|
   over the object / SNR, SNR drawn from ``snr``. With orthonormal F and sum_c |S_c|^2 = 1
   the coil-combined image has exactly this noise level, so SNR is the combined image's.

Augmentation (training only) acts on the cine before the acquisition is simulated
(image and coil maps of a phantom case, coil images of a k-space case), so every augmented
sample is itself an exact acquisition: flips along H and W, rotations by multiples of 90
degrees (180 only for non-square images without ``crop``, so that shapes stay fixed),
time reversal, cyclic time shifts, a window of ``frames`` consecutive (cyclic) frames at a
random start, and a random crop (zero padding where the image is smaller) to ``crop``.

Every random draw comes from a ``numpy.random.Generator`` the caller seeds (the dataset
seeds it from (seed, case, slice, epoch)), so the same call gives the same sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cinemri.masks import MaskOptions, cartesian_mask
from cinemri.physics import fft2c, sense_forward

COIL_FAMILIES = ("ring", "two_arrays", "scattered")


@dataclass(frozen=True)
class SimulationOptions:
    """How a magnitude slice becomes multi-coil k-space; every default lives here.

    coils: (low, high) inclusive range of the number of coils.
    families: coil layouts to draw from (:data:`COIL_FAMILIES`): ``"ring"`` loops around the
        body, ``"two_arrays"`` anterior and posterior arrays, ``"scattered"`` coils at random
        positions near and inside the field of view.
    phase_max: largest peak |phase| (rad) of the smooth background phase; 0 keeps x real.
    snr: (low, high) range of the coil-combined image SNR (mean |x| over the object, pixels
        above 10 % of the maximum, divided by the noise std); the magnitude images keep
        their own noise on top.
    replace_maps: also simulate coils (not phase) for cases that bring their own maps
        (the phantom); False keeps their maps and noise level.
    """

    coils: tuple[int, int] = (4, 12)
    families: tuple[str, ...] = COIL_FAMILIES
    phase_max: float = math.pi
    snr: tuple[float, float] = (20.0, 80.0)
    replace_maps: bool = False

    def __post_init__(self) -> None:
        if len(self.coils) != 2 or not 1 <= self.coils[0] <= self.coils[1]:
            raise ValueError(f"coils must be (low, high) with 1 <= low <= high, got {self.coils!r}")
        if not self.families or any(f not in COIL_FAMILIES for f in self.families):
            raise ValueError(f"families must be a non-empty subset of {COIL_FAMILIES}, got {self.families!r}")
        if not 0 <= self.phase_max <= 2 * math.pi:
            raise ValueError(f"phase_max must be in [0, 2 pi], got {self.phase_max!r}")
        if len(self.snr) != 2 or not 0 < self.snr[0] <= self.snr[1]:
            raise ValueError(f"snr must be (low, high) with 0 < low <= high, got {self.snr!r}")


@dataclass(frozen=True)
class AugmentOptions:
    """Random transforms of a training cine (see the module docstring); all off by default.

    crop: (H, W) random crop (zero padding where the image is smaller), or None.
    frames: keep a random window of this many consecutive frames (cyclic), or None (all).
    """

    flip: bool = False
    rot90: bool = False
    time_reverse: bool = False
    time_shift: bool = False
    crop: tuple[int, int] | None = None
    frames: int | None = None

    def __post_init__(self) -> None:
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 1):
            raise ValueError(f"crop must be (H, W) positive or None, got {self.crop!r}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be >= 1 or None, got {self.frames!r}")

    @property
    def active(self) -> bool:
        return (self.flip or self.rot90 or self.time_reverse or self.time_shift or self.crop is not None
                or self.frames is not None)


# ------------------------------------------------------------------------- acquisition


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) coordinates u (along W) and v (along H), 1 = half the larger side, centre 0."""
    half = max(height, width) / 2.0
    v = (np.arange(height) - height // 2) / half
    u = (np.arange(width) - width // 2) / half
    return np.meshgrid(u, v, indexing="xy")  # each (H, W)


def smooth_phase(rng: np.random.Generator, height: int, width: int, phase_max: float) -> np.ndarray:
    """(H, W) float64 smooth phase: a random 2D polynomial of degree 2 plus a constant, its
    peak |phase - offset| scaled to a value drawn from [0.3, 1] x ``phase_max``."""
    u, v = _grid(height, width)
    terms = np.stack([u, v, u * u, u * v, v * v])  # (5, H, W)
    field = np.tensordot(rng.normal(size=5), terms, axes=1)  # (H, W)
    peak = np.abs(field).max()
    scale = phase_max * rng.uniform(0.3, 1.0) / peak if peak > 0 else 0.0
    return rng.uniform(-np.pi, np.pi) + scale * field


def coil_maps(rng: np.random.Generator, num_coils: int, height: int, width: int, family: str) -> np.ndarray:
    """(C, H, W) complex64 coil sensitivities of one of :data:`COIL_FAMILIES`.

    Each coil is a point at distance ``depth`` out of the image plane at (cx, cy) in the
    normalised grid (1 = half the field of view); magnitude 1 / (1 + d^2 / reach^2), phase a
    random offset plus a linear ramp. Normalised so that sum_c |S_c|^2 = 1 at every pixel.

    Raises:
        ValueError: unknown ``family`` or ``num_coils`` < 1.
    """
    if family not in COIL_FAMILIES:
        raise ValueError(f"family must be one of {COIL_FAMILIES}, got {family!r}")
    if num_coils < 1:
        raise ValueError(f"num_coils must be >= 1, got {num_coils}")
    c = num_coils
    if family == "ring":
        angle = 2 * np.pi * (np.arange(c) + rng.uniform()) / c + rng.uniform(-0.2, 0.2, c)
        radius_x, radius_y = rng.uniform(0.8, 1.2), rng.uniform(0.6, 1.1)
        cx, cy = radius_x * np.cos(angle), radius_y * np.sin(angle)
        reach = rng.uniform(0.5, 1.0, c)
    elif family == "two_arrays":
        front = np.arange(c) % 2 == 0  # alternate anterior / posterior
        counts = np.where(front, front.sum(), c - front.sum())
        order = np.where(front, np.cumsum(front) - 1, np.cumsum(~front) - 1)
        spread = rng.uniform(0.5, 0.9)
        cx = spread * (2 * (order + 0.5) / counts - 1) + rng.uniform(-0.08, 0.08, c)
        cy = np.where(front, -1.0, 1.0) * rng.uniform(0.7, 1.1, c)
        turn = rng.uniform(-np.pi, np.pi)  # the arrays' axis in the image
        cx, cy = cx * np.cos(turn) - cy * np.sin(turn), cx * np.sin(turn) + cy * np.cos(turn)
        reach = rng.uniform(0.4, 0.9, c)
    else:  # scattered
        angle = rng.uniform(-np.pi, np.pi, c)
        radius = np.sqrt(rng.uniform(0.0, 1.0, c)) * 1.3
        cx, cy = radius * np.cos(angle), radius * np.sin(angle)
        reach = rng.uniform(0.3, 0.8, c)
    depth = rng.uniform(0.1, 0.4, c)
    ramp = rng.normal(0.0, 1.0, (c, 2))  # rad per half field of view
    offset = rng.uniform(-np.pi, np.pi, c)
    u, v = _grid(height, width)
    d2 = (u[None] - cx[:, None, None]) ** 2 + (v[None] - cy[:, None, None]) ** 2 + depth[:, None, None] ** 2
    magnitude = 1.0 / (1.0 + d2 / reach[:, None, None] ** 2)  # (C, H, W)
    phase = offset[:, None, None] + ramp[:, :1, None] * u[None] + ramp[:, 1:, None] * v[None]
    maps = magnitude * np.exp(1j * phase)  # (C, H, W)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(axis=0, keepdims=True))
    return maps.astype(np.complex64)


@dataclass(frozen=True)
class Acquisition:
    """What :func:`simulate_acquisition` drew: the complex image x (T, H, W) complex64, the
    coil maps (C, H, W) complex64, the k-space noise std per coil sample, and the draws."""

    image: Tensor
    maps: Tensor
    noise_std: float
    family: str
    snr: float


def simulate_acquisition(rng: np.random.Generator, image: Tensor, options: SimulationOptions,
                         add_phase: bool = True) -> Acquisition:
    """Draw phase, coils and the noise level of one slice.

    image: (T, H, W) complex64 (magnitude in the real part when ``add_phase``)
    returns an :class:`Acquisition`; k-space is ``sense_forward(x, maps) + noise_std * n``
    with n complex standard normal (E|n|^2 = 1), which the caller draws.
    """
    t, h, w = image.shape
    x = image.to(torch.complex64)
    if add_phase and options.phase_max > 0:
        phase = torch.from_numpy(smooth_phase(rng, h, w, options.phase_max)).float()  # (H, W)
        x = x * torch.polar(torch.ones_like(phase), phase)  # (T, H, W)
    num_coils = int(rng.integers(options.coils[0], options.coils[1] + 1))
    family = options.families[int(rng.integers(len(options.families)))]
    maps = torch.from_numpy(coil_maps(rng, num_coils, h, w, family))  # (C, H, W)
    snr = float(rng.uniform(*options.snr))
    magnitude = x.abs()
    peak = float(magnitude.max())
    inside = magnitude[magnitude > 0.1 * peak] if peak > 0 else magnitude.flatten()
    level = float(inside.mean()) if inside.numel() else 0.0
    return Acquisition(image=x, maps=maps, noise_std=level / snr, family=family, snr=snr)


def undersampled_slice(magnitude: np.ndarray, acceleration: float, seed: int,
                       coils: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Undersampled k-space of one magnitude cine slice, the test acquisition of the benchmarks
    on real anatomy (and of training sets made from it): the project's default mask pattern and
    centre lines at ``acceleration``, seeded by ``seed``; one coil (maps = 1, no phase, no added
    noise: the magnitude's own noise stays), or ``coils`` > 1: the magnitude times a smooth random
    phase (peak pi), seen by ``coils`` coils of the ``ring`` layout drawn from ``seed``.

    magnitude: (T, H, W) float; returns kspace (1, C, T, H, W) complex64 (zero where not
    sampled), mask (1, 1, T, 1, W) bool, maps (1, C, H, W) complex64.
    """
    t, h, w = magnitude.shape
    image = torch.from_numpy(np.ascontiguousarray(magnitude)).to(torch.complex64)  # (T, H, W)
    masks = MaskOptions(acceleration=acceleration)  # the project's default pattern and centre
    mask = cartesian_mask(t, w, acceleration, masks.center_lines, masks.pattern, seed)[None, None, :, None, :]
    if coils == 1:
        kspace = fft2c(image)[None, None] * mask  # (1, 1, T, H, W)
        return kspace, mask, torch.ones(1, 1, h, w, dtype=torch.complex64)
    rng = np.random.default_rng(seed)
    phase = torch.from_numpy(smooth_phase(rng, h, w, np.pi)).float()  # (H, W)
    maps = torch.from_numpy(coil_maps(rng, coils, h, w, "ring"))[None]  # (1, C, H, W)
    kspace = sense_forward((image * torch.polar(torch.ones_like(phase), phase))[None], maps, mask)
    return kspace, mask, maps


# ------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class AugmentDraw:
    """One draw of :class:`AugmentOptions`: flips, quarter turns k (counter-clockwise in
    (H, W)), time reversal, cyclic shift, frame window start, crop origin (may be negative
    = padding) and the output size."""

    flip_h: bool
    flip_w: bool
    quarter_turns: int
    reverse: bool
    shift: int
    frames: int
    origin: tuple[int, int]
    size: tuple[int, int]


def draw_augmentation(rng: np.random.Generator, options: AugmentOptions, num_frames: int,
                      height: int, width: int) -> AugmentDraw:
    """Random parameters for a cine of T x H x W (see :class:`AugmentDraw`)."""
    flip_h = bool(options.flip and rng.integers(2))
    flip_w = bool(options.flip and rng.integers(2))
    turns = 0
    if options.rot90:
        turns = int(rng.integers(4)) if (height == width or options.crop is not None) else 2 * int(rng.integers(2))
    reverse = bool(options.time_reverse and rng.integers(2))
    frames = num_frames if options.frames is None else min(options.frames, num_frames)
    shift = int(rng.integers(num_frames)) if (options.time_shift or frames < num_frames) else 0
    h, w = (width, height) if turns % 2 else (height, width)
    size = options.crop if options.crop is not None else (h, w)
    origin = tuple(int(rng.integers(0, n - m + 1)) if n >= m else -((m - n) // 2) for n, m in zip((h, w), size))
    return AugmentDraw(flip_h, flip_w, turns, reverse, shift, frames, origin, tuple(size))  # type: ignore[arg-type]


def apply_spatial(x: Tensor, draw: AugmentDraw) -> Tensor:
    """Flips, quarter turns and crop/pad of the last two axes: (..., H, W) -> (..., h, w)."""
    if draw.flip_h:
        x = x.flip(-2)
    if draw.flip_w:
        x = x.flip(-1)
    if draw.quarter_turns:
        x = torch.rot90(x, draw.quarter_turns, dims=(-2, -1))  # (..., H, W) or (..., W, H)
    out = x.new_zeros(*x.shape[:-2], *draw.size)  # (..., h, w)
    (oh, ow), (h, w) = draw.origin, draw.size
    src_h = slice(max(oh, 0), min(oh + h, x.shape[-2]))
    src_w = slice(max(ow, 0), min(ow + w, x.shape[-1]))
    dst_h = slice(src_h.start - oh, src_h.stop - oh)
    dst_w = slice(src_w.start - ow, src_w.stop - ow)
    out[..., dst_h, dst_w] = x[..., src_h, src_w]
    return out


def apply_temporal(x: Tensor, draw: AugmentDraw, dim: int) -> Tensor:
    """Time reversal, cyclic shift and frame window along ``dim``: (..., T, ...) -> (..., frames, ...)."""
    if draw.reverse:
        x = x.flip(dim)
    if draw.shift:
        x = torch.roll(x, draw.shift, dims=dim)
    if draw.frames < x.shape[dim]:
        x = x.narrow(dim, 0, draw.frames)
    return x
