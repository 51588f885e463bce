"""NIfTI helpers shared by the ACDC and M&Ms readers, and label-map output.

Axis convention for every NIfTI reader: a volume stored (X, Y, Z[, T]) becomes our
(S=Z, T, H=X, W=Y) -- a pure transpose, no flips, so the array shown with rows = H and
columns = W looks like the short-axis views of the ACDC and M&Ms papers, and writing back
is exact. The affine is kept as is (its voxel axes are (H, W, S)); spacing is
(dz, dy, dx) = (pixdim_Z, pixdim_X, pixdim_Y) in mm.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener

from cinemri.case import Case
from cinemri.files import atomic_write_bytes
from cinemri.io.validate import check_case, check_image, check_spacing
from cinemri.labels import LABEL_VALUES


def load_nifti(path: str | os.PathLike) -> nib.Nifti1Image:
    """Open a NIfTI file; ValueError naming the file if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such NIfTI file")
    try:
        with _quiet_nibabel():
            img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types (ImageFileError, OSError, EOFError)
        raise ValueError(f"{path}: unreadable NIfTI file ({type(err).__name__}: {_one_line(err)})") from err
    if img.ndim not in (3, 4):
        raise ValueError(f"{path}: expected a 3D (X, Y, Z) or 4D (X, Y, Z, T) volume, got shape {img.shape}")
    return img


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Image volume as our axes.

    Returns (volume (S, T, H, W) float32 with T = 1 for a 3D file, affine (4, 4) float64,
    spacing (dz, dy, dx) mm); a complex-valued file gives its magnitude.
    Raises ValueError naming the file for bad spacing (zero,
    negative, non-finite or implausible, read from the header as stored: nibabel would
    silently replace a zero by 1 mm) or an unusable image (NaN/Inf, blank, constant, no
    contrast; see :mod:`cinemri.io.validate`).
    """
    stored = _stored_spacing(path)  # before nibabel's header fix-up (and its log line) happens
    img = load_nifti(path)
    spacing = stored if stored is not None else spacing_of(img, path)
    try:
        if img.get_data_dtype().kind == "c":  # a complex-valued cine: its magnitude
            data = np.abs(np.asarray(img.dataobj)).astype(np.float32)
        else:
            data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # truncated gzip streams surface here
        raise ValueError(f"{path}: unreadable NIfTI data ({type(err).__name__}: {_one_line(err)})") from err
    volume = to_ours(data)  # (S, T, H, W)
    check_image(volume, str(path))
    return volume, np.asarray(img.affine, dtype=np.float64), spacing


def read_nifti_cine(path: str | os.PathLike) -> Case:
    """A plain NIfTI cine (``.nii``/``.nii.gz``, 3D (X, Y, Z) or 4D (X, Y, Z, T)) as a Case.

    Returns Case with image (S, T, H, W) complex64 (the magnitude), spacing (dz, dy, dx) mm
    and affine from the header, name = the file name without its suffix, no labels or ED/ES.
    Raises ValueError naming the file for what :func:`read_volume` and
    :func:`cinemri.io.validate.check_case` refuse.
    """
    path = Path(path)
    volume, affine, spacing = read_volume(path)  # (S, T, H, W) float32, checked
    name = path.name[:-7] if path.name.endswith(".nii.gz") else path.stem
    return check_case(Case(name=name, spacing=spacing, image=volume.astype(np.complex64), affine=affine,
                           source=str(path)), content=False)


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
        raise ValueError(f"{path}: unreadable NIfTI data ({type(err).__name__}: {_one_line(err)})") from err
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
    """(dz, dy, dx) = (pixdim Z, pixdim X, pixdim Y) in mm from a loaded header.

    Raises ValueError naming ``path`` for spacing that :func:`cinemri.io.validate.check_spacing`
    refuses. Prefer :func:`_stored_spacing` for files: nibabel has already replaced a zero
    pixdim by 1 and a negative one by its absolute value in ``img.header``.
    """
    zooms = img.header.get_zooms()
    dx_file, dy_file, dz_file = (float(z) for z in zooms[:3])
    return check_spacing((dz_file, dx_file, dy_file), f"{path}: header pixdim")


def _stored_spacing(path: str | os.PathLike) -> tuple[float, float, float] | None:
    """(dz, dy, dx) from the pixdim stored in the file, checked; None when the header cannot be
    parsed here (:func:`load_nifti` then reports the file as unreadable).

    Raises ValueError naming the file for spacing that is zero, negative, non-finite or
    implausible (see :mod:`cinemri.io.validate`).
    """
    try:
        with ImageOpener(str(path)) as handle:
            head = handle.read(4)
            handle.seek(0)
            sizes = {int.from_bytes(head, order) for order in ("little", "big")} if len(head) == 4 else set()
            header_class = nib.Nifti1Header if 348 in sizes else nib.Nifti2Header if 540 in sizes else None
            if header_class is None:
                return None
            header = header_class.from_fileobj(handle, check=False)
            pixdim = np.asarray(header["pixdim"], dtype=np.float64)
            unit = header.get_xyzt_units()[0]
    except Exception:  # any parse failure: leave the verdict to nibabel's own loader
        return None
    where = f"{path}: header pixdim" + ("" if unit in ("mm", "unknown") else f" (unit {unit})")
    return check_spacing((pixdim[3], pixdim[1], pixdim[2]), where)


@contextlib.contextmanager
def _quiet_nibabel():
    """Silence nibabel's header fix-up log lines ("setting 0 dims to 1", ...) while loading:
    a library prints nothing, and what matters (spacing) is checked here from the stored header."""
    logger = nib.imageglobals.logger
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


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
    The file is written atomically (:func:`cinemri.files.atomic_write`: never half-written, a
    symlink at ``path`` replaced rather than followed, permissions from the umask).
    Returns the path written. Raises ValueError naming the argument on bad shape/values or a
    name not ending in .nii/.nii.gz; OSError naming ``path`` when it cannot be written.
    """
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{path}: a label map is written as .nii or .nii.gz, got another file name")
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
    data = img.to_bytes()  # a single-file .nii image
    if path.name.endswith(".nii.gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime 0: the same labels give the same file
    return atomic_write_bytes(path, data)


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
