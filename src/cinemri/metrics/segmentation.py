"""Segmentation metrics on label maps and boolean masks: Dice, HD95, Hausdorff (mm).

Definitions, written down because each one moves the numbers:

- Dice of one label: 2 |P & G| / (|P| + |G|). Both empty -> 1.0 (the structure is
  correctly absent, the ACDC / nnU-Net convention); exactly one empty -> 0.0.
- Surface of a mask: the mask voxels with at least one face-connected (4-connected in 2D,
  6-connected in 3D) background neighbour; outside the array counts as background.
- Directed distances: for every surface voxel of one mask, the Euclidean distance in mm
  (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``) to the nearest
  surface voxel of the other mask.
- HD95 (MONAI's definition): max of the two directed 95th percentiles (NumPy's default
  linear interpolation). Hausdorff (ACDC's official metric): max of the two directed maxima.
- Empty masks: both empty -> 0.0 (nothing to disagree about); exactly one empty -> +inf
  (a missed or hallucinated structure). Never NaN: :class:`~cinemri.metrics.MetricTable`
  counts the infinite values instead of dropping them from the mean silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from cinemri.labels import STRUCTURES


def _check_pair(pred: np.ndarray, true: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"{names[0]} and {names[1]} shapes differ: {pred.shape} vs {true.shape}")
    return pred, true


def dice(pred_labels: np.ndarray, true_labels: np.ndarray, label: int) -> float:
    """Dice coefficient of one label between two label maps of any shape.

    pred_labels, true_labels: (...) integer label maps of equal shape; label: the class.
    returns 2|P & G| / (|P| + |G|) as a float; 1.0 if the label is absent from both,
    0.0 if it is absent from exactly one.

    Raises:
        ValueError: the shapes differ.
    """
    p, g = _check_pair(pred_labels, true_labels, ("pred_labels", "true_labels"))
    p, g = p == label, g == label
    total = int(p.sum()) + int(g.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, g).sum()) / total


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing must be a sequence of {ndim} positive mm values, got {spacing!r}") from None
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be {ndim} positive finite mm values (one per mask axis), got {spacing!r}")
    return values


def _check_masks(pred_mask: np.ndarray, true_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = _check_pair(pred_mask, true_mask, ("pred_mask", "true_mask"))
    if p.ndim not in (2, 3):
        raise ValueError(f"masks must be 2D (H, W) or 3D (S, H, W), got shape {p.shape}")
    for name, m in (("pred_mask", p), ("true_mask", g)):
        if m.dtype != np.bool_:
            raise ValueError(f"{name} must be a boolean mask, got dtype {m.dtype} (compare labels == k first)")
    return p, g


def _surface(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a face-connected background neighbour (outside = background)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(pred_mask: np.ndarray, true_mask: np.ndarray,
                      spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface-to-surface distances in mm between two non-empty masks.

    pred_mask, true_mask: (H, W) or (S, H, W) bool of equal shape, both non-empty;
    spacing: mm per axis, same length as the mask dims (e.g. (dz, dy, dx)).
    returns (pred_to_true, true_to_pred): 1D float64 arrays, one distance per surface voxel
    of the first-named mask to the nearest surface voxel of the other.

    Raises:
        ValueError: bad shapes, dtypes or spacing, or an empty mask.
    """
    p, g = _check_masks(pred_mask, true_mask)
    sampling = _check_spacing(spacing, p.ndim)
    if not p.any() or not g.any():
        raise ValueError("surface_distances needs two non-empty masks; use hd95/hausdorff for the empty rule")
    # Crop to the bounding box of both masks plus one background voxel on each side: all
    # surface voxels lie inside it, so the distances are exact and the transform is small.
    coords = np.argwhere(p | g)
    lo, hi = coords.min(axis=0), coords.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    p, g = np.pad(p[box], 1), np.pad(g[box], 1)
    sp, sg = _surface(p), _surface(g)
    to_true = ndimage.distance_transform_edt(~sg, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~sp, sampling=sampling)
    return to_true[sp].astype(np.float64), to_pred[sg].astype(np.float64)


def _empty_rule(pred: np.ndarray, true: np.ndarray) -> float | None:
    """0.0 if both masks are empty, +inf if exactly one is, None if both hold voxels."""
    has_p, has_g = bool(pred.any()), bool(true.any())
    if has_p and has_g:
        return None
    return 0.0 if not (has_p or has_g) else math.inf


def _hd95_and_hausdorff(pred_mask: np.ndarray, true_mask: np.ndarray,
                        spacing: Sequence[float]) -> tuple[float, float]:
    """(HD95, Hausdorff) in mm from one surface-distance computation, after the empty rule.

    pred_mask, true_mask: (H, W) or (S, H, W) bool; both values are the empty rule's
    (0.0 or +inf) when a mask is empty.
    """
    p, g = _check_masks(pred_mask, true_mask)
    _check_spacing(spacing, p.ndim)
    rule = _empty_rule(p, g)
    if rule is not None:
        return rule, rule
    d_pg, d_gp = surface_distances(p, g, spacing)
    return float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))), float(max(d_pg.max(), d_gp.max()))


def hd95(pred_mask: np.ndarray, true_mask: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance in mm (MONAI's definition, see module doc).

    pred_mask, true_mask: (H, W) or (S, H, W) bool; spacing: mm per axis (required).
    returns max(P95(pred -> true), P95(true -> pred)); 0.0 if both masks are empty,
    +inf if exactly one is.

    Raises:
        ValueError: shapes differ, masks not 2D/3D or not bool, or bad spacing.
    """
    return _hd95_and_hausdorff(pred_mask, true_mask, spacing)[0]


def hausdorff(pred_mask: np.ndarray, true_mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Hausdorff distance in mm (maximum surface distance, ACDC's official metric).

    pred_mask, true_mask: (H, W) or (S, H, W) bool; spacing: mm per axis (required).
    returns max of the two directed maximum distances; 0.0 if both masks are empty,
    +inf if exactly one is.

    Raises:
        ValueError: shapes differ, masks not 2D/3D or not bool, or bad spacing.
    """
    return _hd95_and_hausdorff(pred_mask, true_mask, spacing)[1]


def segmentation_scores(pred_labels: np.ndarray, true_labels: np.ndarray, spacing: Sequence[float],
                        labels: Mapping[str, int] | None = None) -> dict[str, float]:
    """Dice, HD95 and Hausdorff of every structure of one volume (one phase, as ACDC scores it).

    pred_labels, true_labels: (H, W) or (S, H, W) integer label maps; spacing: mm per axis;
    labels: name -> label value, default ACDC's (:data:`cinemri.labels.STRUCTURES`: rv 1, myo 2, lv 3).
    returns, for every name, "dice_<name>", "hd95_<name>_mm", "hd_<name>_mm" and the raw
    voxel counts "n_pred_<name>", "n_true_<name>" (floats).

    Raises:
        ValueError: shapes differ, maps not 2D/3D, or bad spacing.
    """
    p, g = _check_pair(pred_labels, true_labels, ("pred_labels", "true_labels"))
    if p.ndim not in (2, 3):
        raise ValueError(f"label maps must be 2D (H, W) or 3D (S, H, W), got shape {p.shape}")
    _check_spacing(spacing, p.ndim)
    scores: dict[str, float] = {}
    for name, value in (STRUCTURES if labels is None else labels).items():
        pm, gm = p == value, g == value
        scores[f"dice_{name}"] = dice(p, g, value)
        scores[f"hd95_{name}_mm"], scores[f"hd_{name}_mm"] = _hd95_and_hausdorff(pm, gm, spacing)
        scores[f"n_pred_{name}"] = float(pm.sum())
        scores[f"n_true_{name}"] = float(gm.sum())
    return scores
