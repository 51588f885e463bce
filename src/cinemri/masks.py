"""Cartesian k-t undersampling masks for cine MRI.

A mask is ``(T, W)`` bool: for each of T frames, which of the W phase-encode lines (ky)
are acquired. The readout (kx, H) is always fully sampled, so a mask broadcasts against
k-space ``(B, C, T, H, W)`` as ``mask[None, None, :, None, :]`` (DESIGN.md's
``(B, 1, T, 1, W)``); :func:`cinemri.physics.apply_mask` accepts either form.

Two patterns:

- ``"vd_random"``: variable-density random lines, drawn independently for every frame
  (as in Schlemper et al.'s dynamic cascade, IEEE TMI 2018): the probability of a line
  falls off as a Gaussian of the distance to the k-space centre (standard deviation
  W / 10) on top of a uniform floor of 1 / (2 R) of the peak, the density used there.
- ``"equispaced"``: near-uniform lines outside the centre, shifted by one line per frame
  (a sheared k-t lattice, as in CMRxRecon's uniform/kt masks).

Both patterns sample the ``center_lines`` central lines in every frame and exactly
``round(W / acceleration)`` lines per frame in total (the centre included), so the
achieved acceleration is the asked one to within rounding. CMRxRecon's own masks add the
centre on top of every R-th line and so sample more than W / R lines; ours do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import torch
from torch import Tensor

PATTERNS = ("vd_random", "equispaced")

# Density of "vd_random" (Schlemper et al.): Gaussian std as a fraction of W, and the
# uniform floor as a multiple of 1 / acceleration (relative to the Gaussian's peak of 1).
_VD_SIGMA_FRACTION = 0.1
_VD_FLOOR_PER_INVERSE_R = 0.5


@dataclass(frozen=True)
class MaskOptions:
    """The undersampling cinemri draws unless told otherwise; every mask default lives here.

    The reconstruction datasets (:class:`cinemri.data.ReconOptions`), the reconstruction
    config's ``data`` section, the acceleration study, ``cinemri demo``, the benchmarks and
    :func:`cartesian_mask` read their defaults from this class.

    acceleration: R >= 1; 5, the rate the project's models and benchmarks are built for.
    pattern: one of :data:`PATTERNS`; ``"vd_random"``, the pattern of the dynamic-cascade papers.
    center_lines: central lines sampled in every frame (see :func:`center_slice`). 8 is a
        calibration/low-frequency block that still leaves room for random lines at 10x on
        the smaller grids of the field (W = 96..128 gives 10-13 lines per frame at R = 10);
        use 24 to mimic CMRxRecon's calibration region on its W ~ 246 grids.

    Raises:
        ValueError: naming the field, for an acceleration that is not a finite number >= 1,
            an unknown pattern, or center_lines that is not an int >= 0.
    """

    acceleration: float = 5.0
    pattern: str = "vd_random"
    center_lines: int = 8

    def __post_init__(self) -> None:
        _check_mask_settings(self.acceleration, self.center_lines, self.pattern)


def _check_mask_settings(acceleration: object, center_lines: object, pattern: object) -> None:
    """ValueError naming the argument unless acceleration is a finite number >= 1, center_lines
    an int >= 0 and pattern one of PATTERNS (the grid-dependent checks are cartesian_mask's)."""
    if isinstance(acceleration, bool) or not isinstance(acceleration, Real):
        raise ValueError(f"acceleration must be a number >= 1, got {acceleration!r}")
    if not math.isfinite(acceleration) or acceleration < 1:
        raise ValueError(f"acceleration must be a finite number >= 1, got {acceleration!r}")
    if isinstance(center_lines, bool) or not isinstance(center_lines, Integral):
        raise ValueError(f"center_lines must be an int, got {center_lines!r}")
    if center_lines < 0:
        raise ValueError(f"center_lines must be >= 0, got {center_lines!r}")
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")


def center_slice(num_lines: int, center_lines: int) -> slice:
    """Indices of the ``center_lines`` central phase-encode lines out of ``num_lines``.

    The k-space centre (DC) is at index ``num_lines // 2`` (the fft2c convention); the
    block starts ``center_lines // 2`` lines below it. The same block is used by the
    masks and by :func:`cinemri.physics.estimate_coil_maps`.

    Raises:
        ValueError: if ``center_lines`` is negative or larger than ``num_lines``.
    """
    if not 0 <= center_lines <= num_lines:
        raise ValueError(f"center_lines must be in [0, num_lines={num_lines}], got {center_lines}")
    start = num_lines // 2 - center_lines // 2
    return slice(start, start + center_lines)


def lines_per_frame(num_lines: int, acceleration: float) -> int:
    """Number of phase-encode lines a frame gets: ``round(num_lines / acceleration)``.

    Halves round up (``floor(W / R + 0.5)``), so the result never depends on Python's
    round-half-to-even.
    """
    return int(math.floor(num_lines / acceleration + 0.5))


def cartesian_mask(
    num_frames: int,
    num_lines: int,
    acceleration: float,
    center_lines: int = MaskOptions.center_lines,
    pattern: str = MaskOptions.pattern,
    seed: int = 0,
) -> Tensor:
    """Cartesian k-t sampling mask with an exact acceleration and a fully sampled centre.

    Args:
        num_frames: T, frames of the cine (> 0).
        num_lines: W, phase-encode lines (> 0).
        acceleration: R >= 1; every frame samples ``round(W / R)`` lines, the centre
            included. R = 1 gives a fully sampled mask.
        center_lines: central lines sampled in every frame (see :func:`center_slice`);
            default :attr:`MaskOptions.center_lines` (why that many: see there).
        pattern: ``"vd_random"`` or ``"equispaced"`` (see the module docstring); default
            :attr:`MaskOptions.pattern`.
        seed: seeds a local ``torch.Generator``; the same arguments give the same mask.
            For ``"equispaced"`` it picks the lattice shift of the first frame.

    Returns:
        (T, W) torch.bool mask, True where a line is sampled.

    Raises:
        ValueError: naming the argument, if a size is not a positive integer,
            ``acceleration`` < 1 or not finite, ``center_lines`` is negative or above
            ``num_lines``, the centre alone needs more lines than ``round(W / R)``, or
            ``pattern`` is unknown.
    """
    _check_positive_int("num_frames", num_frames)
    _check_positive_int("num_lines", num_lines)
    _check_mask_settings(acceleration, center_lines, pattern)
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"seed must be an int, got {seed!r}")
    num_frames, num_lines = int(num_frames), int(num_lines)
    center_lines, seed = int(center_lines), int(seed)
    acceleration = float(acceleration)
    centre = center_slice(num_lines, center_lines)
    total = lines_per_frame(num_lines, acceleration)
    if total < 1:
        raise ValueError(
            f"acceleration={acceleration} leaves no line of num_lines={num_lines} to sample"
        )
    if center_lines > total:
        raise ValueError(
            f"center_lines={center_lines} exceeds the {total} lines per frame that "
            f"acceleration={acceleration} allows for num_lines={num_lines}"
        )

    mask = torch.zeros(num_frames, num_lines, dtype=torch.bool)  # (T, W)
    mask[:, centre] = True
    outer = torch.ones(num_lines, dtype=torch.bool)
    outer[centre] = False
    outer_idx = outer.nonzero().squeeze(1)  # (W - center_lines,) ascending
    num_outer = total - center_lines
    if num_outer == 0:
        return mask
    generator = torch.Generator().manual_seed(seed)
    if pattern == "vd_random":
        picks = _vd_random_picks(
            num_frames, num_lines, acceleration, outer_idx, num_outer, generator
        )
    else:
        picks = _equispaced_picks(num_frames, outer_idx, num_outer, generator)
    rows = torch.arange(num_frames).unsqueeze(1).expand_as(picks)  # (T, num_outer)
    mask[rows, picks] = True
    return mask


def _vd_random_picks(
    num_frames: int,
    num_lines: int,
    acceleration: float,
    outer_idx: Tensor,
    num_outer: int,
    generator: torch.Generator,
) -> Tensor:
    """(T, num_outer) int64 line indices drawn without replacement per frame."""
    distance = outer_idx.double() - num_lines // 2
    sigma = _VD_SIGMA_FRACTION * num_lines
    density = torch.exp(-0.5 * (distance / sigma) ** 2) + _VD_FLOOR_PER_INVERSE_R / acceleration
    weights = density.unsqueeze(0).expand(num_frames, -1)  # (T, W - center_lines)
    chosen = torch.multinomial(weights, num_outer, replacement=False, generator=generator)
    return outer_idx[chosen]  # (T, num_outer)


def _equispaced_picks(
    num_frames: int, outer_idx: Tensor, num_outer: int, generator: torch.Generator
) -> Tensor:
    """(T, num_outer) int64 line indices on a lattice shifted by one line per frame.

    The lattice runs over the non-centre lines (centre block removed), with positions
    ``shift + floor(k * L / n)`` for k < n (L non-centre lines, n to pick): spacing
    L / n, i.e. exactly every R-th line when that is an integer. The shift cycles through
    the ``floor(L / n)`` distinct values, starting from a seeded one.
    """
    num_free = outer_idx.numel()
    period = max(1, num_free // num_outer)
    start = int(torch.randint(period, (1,), generator=generator))
    shifts = (start + torch.arange(num_frames)) % period  # (T,)
    base = (torch.arange(num_outer) * num_free) // num_outer  # (n,) exact integer floor
    positions = shifts.unsqueeze(1) + base.unsqueeze(0)  # (T, n), all < num_free
    return outer_idx[positions]


def achieved_acceleration(mask: Tensor) -> float:
    """W divided by the mean number of sampled lines per frame.

    mask: (..., W) bool, each row along the last dim one frame's phase-encode lines,
    e.g. (T, W) or (B, 1, T, 1, W).

    Raises:
        ValueError: if ``mask`` is not bool or samples no line at all.
    """
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be torch.bool, got {mask.dtype}")
    rows = mask.reshape(-1, mask.shape[-1])  # (frames, W)
    mean_lines = rows.sum(dim=1).double().mean().item()
    if mean_lines == 0:
        raise ValueError("mask samples no line; its acceleration is undefined")
    return mask.shape[-1] / mean_lines


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
