"""Shared display helpers: style, magnitude images of a Case, frame choice, atomic writes.

Everything here works on NumPy arrays (the I/O boundary); torch is used only to
coil-combine k-space with :mod:`cinemri.physics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cinemri.case import Case
from cinemri.files import atomic_write  # noqa: F401  (the report modules' writer, re-exported)
from cinemri.labels import LV, MYO, RV
from cinemri.physics import ifft2c, rss


@dataclass(frozen=True)
class ReportStyle:
    """Every display default of :mod:`cinemri.report`, in one place.

    Contour colours are from the Okabe-Ito colour-blind-safe palette (RGB 0-255).
    ``MYO`` is drawn as the epicardial border (outside of MYO + LV) and ``LV`` as the
    endocardial border, so the two never lie on top of each other.
    """

    rv_rgb: tuple[int, int, int] = (86, 180, 233)  # sky blue
    myo_rgb: tuple[int, int, int] = (240, 228, 66)  # yellow
    lv_rgb: tuple[int, int, int] = (213, 94, 0)  # vermillion
    window_percentile: float = 99.5  # grey window: [0, this percentile of the magnitude]
    gif_min_px: int = 256  # shorter side of a GIF frame is at least this many pixels
    gif_max_px: int = 768  # ... and its longer side at most this (unless the shorter side needs more)
    cycle_seconds: float = 1.0  # default GIF playback: one cardiac cycle per second (60 bpm)
    contour_linewidth_pt: float = 0.8  # montage contour width
    # curves on white paper: darker Okabe-Ito colours (yellow is unreadable on white)
    rv_curve_rgb: tuple[int, int, int] = (0, 114, 178)  # blue
    myo_curve_rgb: tuple[int, int, int] = (0, 158, 115)  # bluish green
    lv_curve_rgb: tuple[int, int, int] = (213, 94, 0)  # vermillion

    def label_colours(self) -> dict[int, tuple[int, int, int]]:
        """{label: RGB} of the contours on grey images: RV, MYO (epicardium), LV (endocardium)."""
        return {RV: self.rv_rgb, MYO: self.myo_rgb, LV: self.lv_rgb}

    def curve_colours(self) -> dict[int, tuple[int, int, int]]:
        """{label: RGB} of volume curves on a white background."""
        return {RV: self.rv_curve_rgb, MYO: self.myo_curve_rgb, LV: self.lv_curve_rgb}


STYLE = ReportStyle()
LABEL_NAMES = {RV: "RV", MYO: "MYO (epi)", LV: "LV (endo)"}


def structure_mask(labels: np.ndarray, label: int) -> np.ndarray:
    """Region whose border is drawn for ``label``: RV cavity, epicardium (MYO + LV), LV cavity.

    labels: (..., H, W) integer  ->  (..., H, W) bool
    """
    if label == MYO:
        return (labels == MYO) | (labels == LV)
    return labels == label


def check_case(case: Case) -> tuple[int, int, int, int]:
    """Validate that ``case`` has something to show; returns its (S, T, H, W)."""
    if case.image is None and case.kspace is None:
        raise ValueError(f"case {case.name!r} has neither image nor kspace to show")
    if case.image is not None and case.image.ndim != 4:
        raise ValueError(f"case {case.name!r}: image must be (S, T, H, W), got shape {case.image.shape}")
    if case.image is None and case.kspace.ndim != 5:
        raise ValueError(f"case {case.name!r}: kspace must be (S, C, T, H, W), got shape {case.kspace.shape}")
    h, w = (case.image if case.image is not None else case.kspace).shape[-2:]
    shape = (case.num_slices, case.num_frames, h, w)
    if case.labels is not None and tuple(case.labels.shape) != shape:
        raise ValueError(f"case {case.name!r}: labels shape {case.labels.shape} does not match the cine {shape}")
    bad = [f for f in case.labelled_frames if not 0 <= f < shape[1]]
    if bad:
        raise ValueError(f"case {case.name!r}: labelled_frames {bad} are outside the {shape[1]} frames")
    spacing = case.spacing
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"case {case.name!r}: spacing must be three positive mm values, got {spacing!r}")
    return shape  # type: ignore[return-value]


def magnitude(case: Case, slices: Sequence[int], frames: Sequence[int]) -> np.ndarray:
    """Magnitude images of the chosen slices and frames.

    From ``case.image`` when present, otherwise the root-sum-of-squares of the coil
    images of the zero-filled k-space (``rss(ifft2c(kspace))``). Only the requested
    slices and frames are transformed, so large k-space stays cheap.

    returns (len(slices), len(frames), H, W) float32
    """
    slices, frames = list(slices), list(frames)
    if case.image is not None:
        return np.abs(case.image[np.ix_(slices, frames)]).astype(np.float32)
    out = []
    for s in slices:
        k = torch.from_numpy(np.ascontiguousarray(case.kspace[s][:, frames]))  # (C, T', H, W)
        out.append(rss(ifft2c(k.to(torch.complex64)), dim=0).numpy())  # (T', H, W)
    return np.stack(out).astype(np.float32)  # (S', T', H, W)


def window(mag: np.ndarray, percentile: float = STYLE.window_percentile) -> np.ndarray:
    """Scale a magnitude image to [0, 1], clipping at a percentile of its values.

    mag: (...) float  ->  (...) float32 in [0, 1]
    """
    top = float(np.percentile(mag, percentile)) if mag.size else 0.0
    if not np.isfinite(top) or top <= 0:
        top = float(np.max(mag)) if mag.size and np.max(mag) > 0 else 1.0
    return np.clip(mag / top, 0.0, 1.0).astype(np.float32)


def labelled_frames(case: Case) -> list[int]:
    """Frames that carry ground truth: ``case.labelled_frames``, else frames with any label."""
    if case.labels is None:
        return []
    if case.labelled_frames:
        return sorted(int(f) for f in case.labelled_frames)
    return [int(t) for t in np.flatnonzero(case.labels.any(axis=(0, 2, 3)))]


def mid_ventricular_slice(case: Case) -> int:
    """Middle of the slices that contain LV cavity in any labelled frame; S // 2 without labels."""
    s = case.num_slices
    frames = labelled_frames(case)
    if frames:
        has_lv = np.flatnonzero((case.labels[:, frames] == LV).any(axis=(1, 2, 3)))
        if has_lv.size:
            return int(has_lv[(has_lv.size - 1) // 2])
    return s // 2


def choose_frames(case: Case, frames: Sequence[int] | None) -> tuple[list[int], list[str], str]:
    """Frames to show side by side, their column names and a note on how they were chosen.

    ``frames`` given: those (named ``t=k``). Otherwise ED and ES from the case; if unknown,
    ED/ES detected from the LV volume of the labelled frames (largest / smallest); with fewer
    than two labelled frames, the first and the middle frame.
    """
    t = case.num_frames
    if frames is not None:
        frames = [int(f) for f in frames]
        if not frames or any(not 0 <= f < t for f in frames):
            raise ValueError(f"frames must be non-empty indices in [0, {t}), got {frames!r}")
        return frames, [f"t={f}" for f in frames], ""
    if case.ed_frame is not None and case.es_frame is not None:
        for name, f in (("ed_frame", case.ed_frame), ("es_frame", case.es_frame)):
            if not 0 <= f < t:
                raise ValueError(f"case {case.name!r}: {name}={f} is outside the {t} frames")
        return [case.ed_frame, case.es_frame], ["ED", "ES"], ""
    known = labelled_frames(case)
    if len(known) >= 2:
        lv = (case.labels[:, known] == LV).sum(axis=(0, 2, 3))
        ed, es = known[int(np.argmax(lv))], known[int(np.argmin(lv))]
        if ed != es:
            return [ed, es], ["ED", "ES"], "ED/ES not given: largest/smallest LV of the labelled frames"
    if t == 1:
        return [0], ["t=0"], "ED/ES not given: single frame"
    return [0, t // 2], [f"t={0}", f"t={t // 2}"], "ED/ES not given: first and middle frame"


def heart_box(case: Case, frames: Sequence[int], margin_mm: float = 20.0) -> tuple[int, int, int, int] | None:
    """Pixel box (y0, y1, x0, x1), end exclusive, around every label of ``frames`` in all slices.

    The box is widened by ``margin_mm`` on each side (clipped to the image) and made
    physically square where the image allows; None when those frames carry no label.
    """
    if case.labels is None:
        return None
    found = case.labels[:, list(frames)].any(axis=(0, 1))  # (H, W)
    if not found.any():
        return None
    _, dy, dx = case.spacing
    h, w = found.shape
    rows, cols = np.flatnonzero(found.any(axis=1)), np.flatnonzero(found.any(axis=0))
    cy, cx = (rows[0] + rows[-1] + 1) / 2.0, (cols[0] + cols[-1] + 1) / 2.0  # centre in pixels
    half_mm = max((rows[-1] + 1 - rows[0]) * dy, (cols[-1] + 1 - cols[0]) * dx) / 2.0 + margin_mm
    hy, hx = half_mm / dy, half_mm / dx
    y0, y1 = max(0, int(np.floor(cy - hy))), min(h, int(np.ceil(cy + hy)))
    x0, x1 = max(0, int(np.floor(cx - hx))), min(w, int(np.ceil(cx + hx)))
    return y0, y1, x0, x1


@dataclass(frozen=True)
class Orientation:
    """How (H, W) planes are turned for display: ``transpose`` first, then flips of the
    displayed rows (``flip_rows``) and columns (``flip_cols``); ``how`` says what decided it."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    how: str = "as stored (no affine or labels to orient by)"

    def apply(self, planes: np.ndarray) -> np.ndarray:
        """(..., H, W) -> (..., H', W') as displayed."""
        out = np.swapaxes(planes, -1, -2) if self.transpose else planes
        if self.flip_rows:
            out = out[..., ::-1, :]
        if self.flip_cols:
            out = out[..., ::-1]
        return np.ascontiguousarray(out)

    def spacing(self, dy: float, dx: float) -> tuple[float, float]:
        """(row, column) spacing in mm of the displayed planes."""
        return (dx, dy) if self.transpose else (dy, dx)


_OPS = [Orientation(t, r, c) for t in (False, True) for r in (False, True) for c in (False, True)]


def _voxel_steps(op: Orientation) -> tuple[np.ndarray, np.ndarray]:
    """(voxel (H, W) step of one displayed row down, of one displayed column right)."""
    down, right = (np.array([0.0, 1.0]), np.array([1.0, 0.0])) if op.transpose else \
        (np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    return (-down if op.flip_rows else down), (-right if op.flip_cols else right)


def display_orientation(case: Case, frames: Sequence[int] = ()) -> Orientation:
    """The radiological short-axis view of ``case``: RV on the viewer's left, anterior up.

    With an affine (NIfTI, DICOM), the one of the 8 flips/transposes of the (H, W) grid
    whose screen-right points most to the patient's left and screen-up most to anterior
    (RAS world axes, as radiologists view short-axis stacks). Without one, from the labels of
    ``frames`` (else any labelled frame): the RV centroid is put to the left of the LV's
    (anterior-posterior stays unknown). Otherwise the planes are shown as stored.
    """
    if case.affine is not None and np.asarray(case.affine).shape == (4, 4):
        axes = np.asarray(case.affine, dtype=np.float64)[:3, :2]  # world step of voxel H, W (RAS, mm)
        axes = axes / np.maximum(np.linalg.norm(axes, axis=0), 1e-12)
        left, anterior = np.array([-1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])

        def score(op: Orientation) -> float:
            down, right = _voxel_steps(op)
            return float((axes @ right) @ left - (axes @ down) @ anterior)

        best = max(_OPS, key=score)
        return Orientation(best.transpose, best.flip_rows, best.flip_cols,
                           "radiological short-axis view from the affine: RV on the viewer's left, anterior up")
    chosen = [f for f in (list(frames) or labelled_frames(case)) if case.labels is not None]
    if chosen:
        labels = case.labels[:, chosen]  # (S, F, H, W)
        rv, lv = np.argwhere(labels == RV)[:, 2:], np.argwhere(labels == LV)[:, 2:]
        if len(rv) and len(lv):
            offset = rv.mean(axis=0) - lv.mean(axis=0)  # (dH, dW) from LV to RV in voxels
            transpose = abs(offset[0]) * case.spacing[1] > abs(offset[1]) * case.spacing[2]
            along_cols = offset[0] if transpose else offset[1]
            return Orientation(transpose, False, bool(along_cols > 0),
                               "short-axis view turned by the labels: RV on the viewer's left "
                               "(no affine: anterior-posterior unknown)")
    return Orientation()

