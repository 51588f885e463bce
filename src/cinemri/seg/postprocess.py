"""Anatomical post-processing of RV / MYO / LV label maps: what a network gets wrong on real
scans and anatomy can correct.

Rules, per frame, on the slice stack (S, H, W) with face connectivity in 3D (neighbouring
slices of a short-axis stack overlap where the heart is):

1. LV cavity: the largest connected component is the heart's; other LV blobs are dropped.
2. Myocardium: components that touch the kept LV (within ``touch_px`` pixels in-plane) are
   kept; with no LV, the largest component.
3. RV: components that touch the kept myocardium (within ``touch_px`` pixels) are kept, not
   only the largest: the RV is often cut into several blobs at the base and the apex, and a
   bright structure elsewhere (stomach, aorta) may be larger than the true RV in a slice.
   When no component touches the myocardium, the largest is kept.
4. Holes in the LV cavity, per slice (2D: a hole is a region of the slice enclosed by LV),
   become LV: papillary muscles and trabeculations belong to the cavity (ACDC convention).

Removed pixels become background. Labels: 0 background, 1 RV, 2 MYO, 3 LV.
:func:`largest_components` is the simpler rule (the largest component of each structure) that
``eval.largest_component`` applies without ``eval.postprocess``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cinemri.labels import LV, MYO, RV

_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)  # grow within each slice, never across slices


def _components(mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """(component ids (S, H, W) int32, count, sizes (count,)) of a boolean stack, face-connected in 3D."""
    ids, count = ndimage.label(mask)
    sizes = ndimage.sum_labels(mask, ids, index=np.arange(1, count + 1)) if count else np.zeros(0)
    return ids, count, np.asarray(sizes)


def _largest(mask: np.ndarray) -> np.ndarray:
    ids, count, sizes = _components(mask)
    if count <= 1:
        return mask.copy()
    return ids == 1 + int(np.argmax(sizes))


def _touching(mask: np.ndarray, anchor: np.ndarray, touch_px: int) -> np.ndarray:
    """Components of ``mask`` within ``touch_px`` in-plane pixels of ``anchor``; the largest
    component when none is (or when the anchor is empty)."""
    if not anchor.any():
        return _largest(mask)
    near = ndimage.binary_dilation(anchor, structure=_IN_PLANE, iterations=touch_px)
    ids, count, _ = _components(mask)
    keep = np.unique(ids[near & mask])
    keep = keep[keep > 0]
    if keep.size == 0:
        return _largest(mask)
    return np.isin(ids, keep)


def heart_postprocess(labels: np.ndarray, touch_px: int = 2) -> np.ndarray:
    """Apply the rules of this module to one frame's stack.

    labels: (S, H, W) integer in {0, 1, 2, 3} (S may be 1); touch_px: in-plane distance in
    pixels within which two structures count as touching.
    returns (S, H, W) same dtype.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be (S, H, W), got shape {labels.shape}")
    if touch_px < 1:
        raise ValueError(f"touch_px must be >= 1, got {touch_px}")
    lv = _largest(labels == LV) if np.any(labels == LV) else np.zeros(labels.shape, bool)
    myo = _touching(labels == MYO, lv, touch_px) if np.any(labels == MYO) else np.zeros(labels.shape, bool)
    rv = _touching(labels == RV, myo, touch_px) if np.any(labels == RV) else np.zeros(labels.shape, bool)
    filled = np.stack([ndimage.binary_fill_holes(s) for s in lv]) if lv.any() else lv  # (S, H, W)
    out = np.zeros_like(labels)
    out[rv] = RV
    out[myo] = MYO
    out[filled] = LV
    return out


def postprocess_frames(labels: np.ndarray, frames: list[int] | None = None, touch_px: int = 2) -> np.ndarray:
    """:func:`heart_postprocess` of every frame of a cine's labels.

    labels: (S, T, H, W) integer; frames: frames to process (default all). returns a new array.
    """
    if labels.ndim != 4:
        raise ValueError(f"labels must be (S, T, H, W), got shape {labels.shape}")
    out = labels.copy()
    for t in range(labels.shape[1]) if frames is None else frames:
        out[:, t] = heart_postprocess(labels[:, t], touch_px)
    return out


def largest_components(labels: np.ndarray, structures: tuple[int, ...] = (1, 2, 3)) -> np.ndarray:
    """Keep only the largest face-connected component of each structure (others -> background).

    labels: (S, H, W) integer -> same shape and dtype.
    """
    out = labels.copy()
    for value in structures:
        mask = labels == value
        components, count = ndimage.label(mask)
        if count > 1:
            sizes = ndimage.sum_labels(mask, components, index=np.arange(1, count + 1))
            out[mask & (components != 1 + int(np.argmax(sizes)))] = 0
    return out
