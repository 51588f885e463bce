"""One validation of what every reader hands over: voxel spacing and image content.

Every reader of :mod:`cinemri.io` passes the :class:`~cinemri.case.Case` it builds through
:func:`check_case` (NIfTI volumes are also checked file by file in
:func:`cinemri.io.nifti.read_volume`, so the message names the file at fault). A file that
passes gives numbers that mean something; one that does not is a ValueError naming the
file and the value, never a silent default.

Rules (documented in docs/data.md):

- shape (S, T, H, W): no empty axis, H and W at least :data:`MIN_MATRIX` = 4 pixels; ED, ES
  and labelled frames within the T frames.
- spacing (dz, dy, dx) in mm: finite and positive; in-plane dy, dx within
  :data:`~cinemri.case.IN_PLANE_SPACING_MM` (0.3-20 mm) and the slice distance dz within
  :data:`~cinemri.case.SLICE_SPACING_MM` (0.5-30 mm). Anything else is a broken or
  foreign-unit header (volumes in ml would be off by orders of magnitude).
- image (its magnitude): finite; not blank (all zero); no frame blank in every slice;
  largest magnitude within [:data:`MIN_PEAK`, :data:`MAX_MAGNITUDE`] = [1e-15, 1e15]
  (beyond, squares leave the float32 range and normalisation breaks); not constant (all
  magnitudes within 1e-6 of the peak of each other); with contrast: the 1st and 99th
  percentiles of the magnitude differ by more than 1e-6 of the peak (an image whose values
  are 98 % one value holds no picture).
- k-space (when there is no image): finite, not all zero, no frame zero in every slice and
  coil, magnitude within the same bounds, sampled values not all of one magnitude.
- sampling mask (T, W): every frame samples at least one phase-encode line, and its shape
  fits the cine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cinemri.case import IN_PLANE_SPACING_MM, SLICE_SPACING_MM, Case

MAX_MAGNITUDE = 1e15
MIN_PEAK = 1e-15
CONTRAST_PERCENTILES = (1.0, 99.0)
MIN_CONTRAST = 1e-6  # (p99 - p1) / peak below this: no contrast
MIN_MATRIX = 4  # H and W at least this many pixels
_SAMPLE = 1 << 20  # percentiles from at most this many evenly strided values


def check_spacing(spacing: Sequence[float], where: str) -> tuple[float, float, float]:
    """``spacing`` (dz, dy, dx) mm as floats, or ValueError naming ``where`` and the value.

    Raises ValueError for anything but three finite, positive, plausible values (see the
    module docstring for the ranges).
    """
    try:
        values = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: spacing must be three numbers (dz, dy, dx) in mm, got {spacing!r}") from None
    if len(values) != 3:
        raise ValueError(f"{where}: spacing must be three numbers (dz, dy, dx) in mm, got {spacing!r}")
    for name, value, (low, high) in (("slice distance dz", values[0], SLICE_SPACING_MM),
                                     ("in-plane spacing dy", values[1], IN_PLANE_SPACING_MM),
                                     ("in-plane spacing dx", values[2], IN_PLANE_SPACING_MM)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{where}: {name} = {value:g} mm; spacing must be positive and finite")
        if not low <= value <= high:
            raise ValueError(f"{where}: {name} = {value:g} mm is outside the plausible {low:g}-{high:g} mm "
                             "of a cardiac cine (a broken header or another unit?)")
    return values  # type: ignore[return-value]


def check_image(image: np.ndarray, where: str, what: str = "image") -> None:
    """ValueError naming ``where`` unless ``image`` holds a usable picture.

    image: (S, T, H, W) real or complex (a 2D or 3D array is checked as one frame).
    what: how the message calls the array ("image", "k-space").
    """
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"{where}: {what} is empty (shape {image.shape})")
    if image.dtype.kind not in "biufc":
        raise ValueError(f"{where}: {what} has non-numeric dtype {image.dtype}")
    if image.dtype.kind in "fc" and not np.isfinite(image).all():
        raise ValueError(f"{where}: {what} contains NaN or Inf")
    magnitude = np.abs(image) if image.dtype.kind in "fc" else np.abs(image.astype(np.float64))
    peak = float(magnitude.max())
    if peak == 0:
        raise ValueError(f"{where}: {what} is blank (every value is 0)")
    if image.ndim == 4:
        blank = np.flatnonzero(~image.any(axis=(0, 2, 3)))
        if blank.size:
            raise ValueError(f"{where}: {what} frame(s) {blank.tolist()} (0-based) are 0 in every slice")
    if peak > MAX_MAGNITUDE or peak < MIN_PEAK:
        raise ValueError(f"{where}: {what} magnitudes peak at {peak:.3g}, outside [{MIN_PEAK:g}, {MAX_MAGNITUDE:g}] "
                         "(float32 arithmetic over- or underflows there); rescale the data")
    lowest = float(magnitude.min())
    if peak - lowest <= MIN_CONTRAST * peak:  # equal up to float rounding
        raise ValueError(f"{where}: {what} is constant (every value has magnitude {peak:.6g})")
    flat = magnitude.reshape(-1)
    sample = flat[::max(1, flat.size // _SAMPLE)]
    low, high = (float(v) for v in np.percentile(sample, CONTRAST_PERCENTILES))
    if high - low <= MIN_CONTRAST * peak:
        raise ValueError(f"{where}: {what} has no contrast (98% of its values have magnitude {low:.6g} to "
                         f"{high:.6g}, peak {peak:.6g})")


def check_kspace(kspace: np.ndarray, where: str) -> None:
    """ValueError naming ``where`` unless ``kspace`` (S, C, T, H, W) can hold a picture.

    Finite, not all zero, no frame zero in every slice and coil, magnitude within
    [MIN_PEAK, MAX_MAGNITUDE], sampled values not all of one magnitude (the k-space of a
    single point). (Contrast is judged on images, not on k-space.)
    """
    kspace = np.asarray(kspace)
    if kspace.size == 0:
        raise ValueError(f"{where}: k-space is empty (shape {kspace.shape})")
    if kspace.dtype.kind in "fc" and not np.isfinite(kspace).all():
        raise ValueError(f"{where}: k-space contains NaN or Inf")
    if not kspace.any():
        raise ValueError(f"{where}: k-space is blank (every sample is 0)")
    if kspace.ndim == 5:
        blank = np.flatnonzero(~kspace.any(axis=(0, 1, 3, 4)))
        if blank.size:
            raise ValueError(f"{where}: k-space frame(s) {blank.tolist()} (0-based) hold no sample in any "
                             "slice or coil")
    magnitude = np.abs(kspace)
    peak = float(magnitude.max())
    if peak > MAX_MAGNITUDE or peak < MIN_PEAK:
        raise ValueError(f"{where}: k-space magnitudes peak at {peak:.3g}, outside [{MIN_PEAK:g}, "
                         f"{MAX_MAGNITUDE:g}] (float32 arithmetic over- or underflows there); rescale the data")
    if peak - float(magnitude[magnitude > 0].min()) <= MIN_CONTRAST * peak:
        raise ValueError(f"{where}: k-space samples all have magnitude {peak:.6g} (the image of a single point)")


def check_mask(mask: np.ndarray, where: str) -> np.ndarray:
    """``mask`` (T, W) as bool, or ValueError naming ``where`` when it cannot sample a cine.

    Refused: an empty or non-2-D mask, and one with a frame that samples no phase-encode
    line (nothing to reconstruct that frame from; an all-zero mask gives "acceleration inf").
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"{where}: sampling mask must be (T, W) with T, W >= 1, got shape {mask.shape}")
    mask = mask != 0
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size == mask.shape[0]:
        raise ValueError(f"{where}: sampling mask samples nothing (all {mask.shape[0]} frames are empty)")
    if empty.size:
        raise ValueError(f"{where}: sampling mask samples nothing in frame(s) {empty.tolist()} (0-based) "
                         f"of {mask.shape[0]}")
    return mask


def check_case(case: Case, where: str | None = None, content: bool = True) -> Case:
    """``case`` itself, after checking its spacing, its shape (no empty axis), its ED/ES and
    labelled frames (within the T frames), its sampling mask (see :func:`check_mask`) and
    (``content``) its image or k-space.

    where: what the messages name (default: ``case.source``, else ``case.name``).
    content: False when the reader has already checked the image file by file (NIfTI).
    Raises ValueError naming ``where`` and the value (see the module docstring).
    """
    where = where or case.source or case.name
    case.spacing = check_spacing(case.spacing, where)
    shape = case.shape  # (S, T, H, W)
    if 0 in shape:
        raise ValueError(f"{where}: empty case, (S, T, H, W) = {shape}")
    if min(shape[2:]) < MIN_MATRIX:
        raise ValueError(f"{where}: an image of {shape[2]} x {shape[3]} pixels (H x W) is no cine; "
                         f"each side needs at least {MIN_MATRIX}")
    frames = shape[1]
    for label, frame in (("ED", case.ed_frame), ("ES", case.es_frame)):
        if frame is not None and not 0 <= frame < frames:
            raise ValueError(f"{where}: {label} frame {frame} (0-based) is outside the {frames} frames")
    outside = [t for t in case.labelled_frames if not 0 <= t < frames]
    if outside:
        raise ValueError(f"{where}: labelled frame(s) {outside} (0-based) are outside the {frames} frames")
    if case.mask is not None:
        case.mask = check_mask(case.mask, where)
        if case.mask.shape != (frames, shape[3]):
            raise ValueError(f"{where}: sampling mask is {case.mask.shape} as (T, W), the cine needs "
                             f"{(frames, shape[3])}")
    if content:
        if case.image is not None:
            check_image(case.image, where)
        elif case.kspace is not None:
            check_kspace(case.kspace, where)
    return case
