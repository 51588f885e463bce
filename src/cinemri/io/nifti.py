"""NIfTI helpers shared by the ACDC and M&Ms readers, and label-map output.

Axis convention for every NIfTI reader: a volume stored (X, Y, Z[, T]) becomes our
(S=Z, T, H=X, W=Y) -- a pure transpose, no flips, so the array shown with rows = H and
columns = W looks like the short-axis views of the ACDC and M&Ms papers, and writing back
is exact. The affine is kept as is (its voxel axes are (H, W, S)); spacing is
(dz, dy, dx) = (pixdim_Z, pixdim_X, pixdim_Y) in mm.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from cinemri.case import Case

LABEL_VALUES = (0, 1, 2, 3)


def load_nifti(path: str | os.PathLike) -> nib.Nifti1Image:
    """Open a NIfTI file; ValueError naming the file if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such NIfTI file")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types (ImageFileError, OSError, EOFError)
        raise ValueError(f"{path}: unreadable NIfTI file ({type(err).__name__}: {err})") from err
    if img.ndim not in (3, 4):
        raise ValueError(f"{path}: expected a 3D (X, Y, Z) or 4D (X, Y, Z, T) volume, got shape {img.shape}")
    return img


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Image volume as our axes.

    Returns (volume (S, T, H, W) float32 with T = 1 for a 3D file, affine (4, 4) float64,
    spacing (dz, dy, dx) mm). Raises ValueError naming the file on NaN/Inf or bad spacing.
    """
    img = load_nifti(path)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # truncated gzip streams surface here
        raise ValueError(f"{path}: unreadable NIfTI data ({type(err).__name__}: {err})") from err
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: image contains NaN or Inf")
    return to_ours(data), np.asarray(img.affine, dtype=np.float64), spacing_of(img, path)


def read_label_volume(path: str | os.PathLike, remap: tuple[int, int, int, int] = LABEL_VALUES
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Label volume as our axes, remapped to ACDC labels.

    remap: remap[v] is the ACDC label of file value v (M&Ms: (0, 3, 2, 1)).
    Returns (labels (S, T, H, W) uint8, affine (4, 4) float64).
    Raises ValueError naming the file for non-integer or out-of-range values.
    """
    img = load_nifti(path)
    try:
        raw = np.asarray(img.dataobj)
    except Exception as err:
        raise ValueError(f"{path}: unreadable NIfTI data ({type(err).__name__}: {err})") from err
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all() or not np.all(raw == np.round(raw)):
            raise ValueError(f"{path}: label values are not integers")
    values = np.unique(raw)
    bad = np.setdiff1d(values, LABEL_VALUES)
    if bad.size:
        raise ValueError(f"{path}: labels hold values {bad.tolist()} outside {{0, 1, 2, 3}}")
    lut = np.asarray(remap, dtype=np.uint8)
    return to_ours(lut[raw.astype(np.int64)]), np.asarray(img.affine, dtype=np.float64)


def spacing_of(img: nib.Nifti1Image, path) -> tuple[float, float, float]:
    """(dz, dy, dx) = (pixdim Z, pixdim X, pixdim Y) in mm from the header."""
    zooms = img.header.get_zooms()
    dx_file, dy_file, dz_file = (float(z) for z in zooms[:3])
    spacing = (dz_file, dx_file, dy_file)
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"{path}: header pixdim gives spacing {spacing}, expected positive mm")
    return spacing


def to_ours(data: np.ndarray) -> np.ndarray:
    """(X, Y, Z) or (X, Y, Z, T) -> (S=Z, T, H=X, W=Y), a pure transpose."""
    if data.ndim == 3:
        data = data[..., None]
    return np.ascontiguousarray(data.transpose(2, 3, 0, 1))


def from_ours(data: np.ndarray) -> np.ndarray:
    """(S, T, H, W) -> (X, Y, Z, T); (S, H, W) -> (X, Y, Z). Inverse of :func:`to_ours`."""
    if data.ndim == 3:
        return np.ascontiguousarray(data.transpose(1, 2, 0))
    return np.ascontiguousarray(data.transpose(2, 3, 0, 1))


def write_labels_nifti(labels: np.ndarray, path: str | os.PathLike, reference: Case | None = None,
                       remap: tuple[int, int, int, int] = LABEL_VALUES) -> Path:
    """Write label maps as a uint8 NIfTI in the source's own axis order and affine.

    labels: (S, T, H, W) or (S, H, W) integer in {0, 1, 2, 3} (ACDC labels); a T axis of
        length 1 is written as a 3D volume, T > 1 as 4D (X, Y, Z, T).
    reference: the Case the labels belong to; its ``affine`` is kept exactly (else a
        diagonal affine from its spacing; without a reference, the identity).
    remap: remap[v] is the file value of ACDC label v (M&Ms: (0, 3, 2, 1)).
    Returns the path written. Raises ValueError naming the argument on bad shape/values.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (3, 4):
        raise ValueError(f"labels must be (S, T, H, W) or (S, H, W), got shape {labels.shape}")
    bad = np.setdiff1d(np.unique(labels), LABEL_VALUES)
    if bad.size:
        raise ValueError(f"labels hold values {bad.tolist()} outside {{0, 1, 2, 3}}")
    if labels.ndim == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]  # (S, H, W)
    affine = _reference_affine(reference)
    out = np.asarray(remap, dtype=np.uint8)[labels.astype(np.int64)]
    img = nib.Nifti1Image(from_ours(out), affine)
    img.set_data_dtype(np.uint8)
    if reference is not None:
        dz, dy, dx = reference.spacing
        zooms = (dy, dx, dz) + ((1.0,) if out.ndim == 4 else ())
        img.header.set_zooms(zooms)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def _reference_affine(reference: Case | None) -> np.ndarray:
    if reference is None:
        return np.eye(4)
    if reference.affine is not None:
        affine = np.asarray(reference.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"reference.affine must be (4, 4), got {affine.shape}")
        return affine
    dz, dy, dx = reference.spacing
    return np.diag([dy, dx, dz, 1.0])
