"""The project's own HDF5 case format (``.h5``), one file per case.

Layout (every dataset optional, but at least one of image / kspace / labels present;
see docs/data.md for the full table):

    /image      (S, T, H, W)     complex64   coil-combined cine
    /labels     (S, T, H, W)     uint8       0 bg, 1 RV, 2 MYO, 3 LV
    /coil_maps  (S, C, H, W)     complex64   sum_c |S_c|^2 = 1 inside the body
    /kspace     (S, C, T, H, W)  complex64   measured k-space, zeros where not sampled
    /mask       (T, W)           bool        sampling mask of /kspace
    /affine     (4, 4)           float64     NIfTI voxel-to-world of the source, axes (H, W, S)

Root attributes: format="cinemri-case", format_version=1, name, spacing_mm (dz, dy, dx),
ed_frame / es_frame (-1 = unknown), group ("" = unknown), labelled_frames (int64 array),
noise_std, indices (JSON object), spacing_assumed, source.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import h5py
import numpy as np

from cinemri.case import Case
from cinemri.files import atomic_write_bytes, json_text
from cinemri.io.validate import check_case

FORMAT_NAME = "cinemri-case"
FORMAT_VERSION = 1
_REQUIRED_ATTRS = ("format", "format_version", "name", "spacing_mm", "ed_frame", "es_frame", "group",
                   "labelled_frames", "noise_std", "indices")
# dataset name -> (ndim, dtype)
_DATASETS = {
    "image": (4, np.complex64),
    "labels": (4, np.uint8),
    "coil_maps": (4, np.complex64),
    "kspace": (5, np.complex64),
    "mask": (2, np.bool_),
    "affine": (2, np.float64),
}
_PER_SLICE = ("image", "labels", "coil_maps", "kspace")  # datasets whose first axis is S


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """One chunk per leading index, the last three axes whole: a slice reads without the rest."""
    if len(shape) < 3:
        return None
    return (1,) * (len(shape) - 3) + tuple(shape[-3:])


def write_case(case: Case, path: str | os.PathLike) -> Path:
    """Write ``case`` to ``path`` in the cinemri HDF5 case format, atomically.

    The file is built in memory and written with :func:`cinemri.files.atomic_write` (a
    temporary file beside ``path``, moved into place; a symlink at ``path`` is replaced, not
    followed; permissions follow the umask), so a reader never sees a half-written case and
    a full disk is a plain OSError naming ``path``: the HDF5 library itself never meets the
    failing write (it cannot recover from one). Arrays are stored with gzip (level 4) +
    shuffle, lossless; complex64 natively (h5py compound r/i).

    case: a :class:`~cinemri.case.Case`; arrays as documented there.
    Returns the path written.
    Raises ValueError if the case's arrays have the wrong shape or dtype; OSError naming
    ``path`` when it cannot be written.
    """
    path = Path(path)
    arrays = _validated_arrays(case, str(path))
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["name"] = case.name
        f.attrs["spacing_mm"] = np.asarray(case.spacing, dtype=np.float64)
        f.attrs["ed_frame"] = -1 if case.ed_frame is None else int(case.ed_frame)
        f.attrs["es_frame"] = -1 if case.es_frame is None else int(case.es_frame)
        f.attrs["group"] = case.group or ""
        f.attrs["labelled_frames"] = np.asarray(case.labelled_frames, dtype=np.int64)
        f.attrs["noise_std"] = float(case.noise_std)
        f.attrs["indices"] = json_text({k: float(v) for k, v in case.indices.items()}, indent=None)  # NaN: null
        f.attrs["spacing_assumed"] = bool(case.spacing_assumed)
        f.attrs["source"] = case.source
        for key, arr in arrays.items():
            compress = dict(compression="gzip", compression_opts=4, shuffle=True) if arr.ndim >= 2 else {}
            f.create_dataset(key, data=arr, chunks=_chunks(arr.shape), **compress)
    return atomic_write_bytes(path, buffer.getbuffer())


def _validated_arrays(case: Case, where: str) -> dict[str, np.ndarray]:
    arrays = {key: getattr(case, key) for key in _DATASETS if getattr(case, key) is not None}
    if not any(k in arrays for k in ("image", "kspace", "labels")):
        raise ValueError(f"{where}: case {case.name!r} holds no image, kspace or labels")
    for key, arr in arrays.items():
        ndim, dtype = _DATASETS[key]
        if not isinstance(arr, np.ndarray) or arr.ndim != ndim or arr.dtype != dtype:
            got = f"{getattr(arr, 'shape', '?')} {getattr(arr, 'dtype', type(arr).__name__)}"
            raise ValueError(f"{where}: case.{key} must be a {ndim}-D {np.dtype(dtype).name} array, got {got}")
    _check_consistency(arrays, where)
    return arrays


def _check_consistency(arrays: dict[str, np.ndarray], where: str) -> None:
    """Shapes of the datasets must agree with each other (S, C, T, H, W)."""
    dims: dict[str, int] = {}
    axes = {"image": "STHW", "labels": "STHW", "coil_maps": "SCHW", "kspace": "SCTHW", "mask": "TW"}
    for key, names in axes.items():
        if key not in arrays:
            continue
        for axis_name, n in zip(names, arrays[key].shape):
            if axis_name in dims and dims[axis_name] != n:
                raise ValueError(f"{where}: {key} has {axis_name}={n} but another dataset has "
                                 f"{axis_name}={dims[axis_name]} (shapes "
                                 + ", ".join(f"{k}{tuple(a.shape)}" for k, a in arrays.items()) + ")")
            dims[axis_name] = n
    if "affine" in arrays and arrays["affine"].shape != (4, 4):
        raise ValueError(f"{where}: affine must be (4, 4), got {arrays['affine'].shape}")


def read_case(path: str | os.PathLike, slice_index: int | None = None) -> Case:
    """Read a case written by :func:`write_case`.

    slice_index: read only this slice (the result has S = 1), or None for all slices.
    Returns a :class:`~cinemri.case.Case` with the arrays of the file (dtypes as stored:
    complex64, uint8, bool, float64).
    Raises ValueError naming the file for: unreadable/truncated file, wrong format name or
    version, a missing attribute, a dataset of wrong ndim/dtype/shape, NaN/Inf values,
    labels outside {0, 1, 2, 3}, implausible spacing or an unusable image / k-space (blank,
    constant, no contrast; see :mod:`cinemri.io.validate`).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such case file")
    try:
        with h5py.File(path, "r") as f:
            return _read_open(f, path, slice_index)
    except _H5_ERRORS as err:  # truncated or corrupt HDF5
        raise ValueError(f"{path}: not a readable HDF5 case file ({_one_line(err)})") from err


def _read_open(f: h5py.File, path: Path, slice_index: int | None) -> Case:
    attrs = dict(f.attrs)
    for key in _REQUIRED_ATTRS:
        if key not in attrs:
            raise ValueError(f"{path}: missing attribute {key!r}")
    if _attr(attrs, "format", _as_str, path, "text") != FORMAT_NAME:
        raise ValueError(f"{path}: format attribute is {_as_str(attrs['format'])!r}, expected {FORMAT_NAME!r}")
    version = _attr(attrs, "format_version", _as_int, path, "an integer")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version} is newer than this reader ({FORMAT_VERSION})")
    arrays: dict[str, np.ndarray] = {}
    for key in f:
        if key not in _DATASETS:
            continue
        ds = f.get(key)  # None for a dangling link
        if not isinstance(ds, h5py.Dataset):
            kind = "a dangling link" if ds is None else type(ds).__name__
            raise ValueError(f"{path}: {key!r} must be a dataset, got {kind}")
        ndim, dtype = _DATASETS[key]
        if ds.ndim != ndim or ds.dtype != dtype:
            raise ValueError(f"{path}: dataset {key!r} must be {ndim}-D {np.dtype(dtype).name}, "
                             f"got shape {ds.shape} dtype {ds.dtype}")
        if slice_index is not None and key in _PER_SLICE:
            if not 0 <= slice_index < ds.shape[0]:
                raise ValueError(f"{path}: slice_index={slice_index} outside the {ds.shape[0]} slices")
            arrays[key] = ds[slice_index:slice_index + 1]
        else:
            arrays[key] = ds[()]
    if not any(k in arrays for k in ("image", "kspace", "labels")):
        raise ValueError(f"{path}: holds no 'image', 'kspace' or 'labels' dataset")
    _check_consistency(arrays, str(path))
    for key, arr in arrays.items():
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise ValueError(f"{path}: dataset {key!r} contains NaN or Inf")
    if "labels" in arrays:
        bad = np.setdiff1d(np.unique(arrays["labels"]), [0, 1, 2, 3])
        if bad.size:
            raise ValueError(f"{path}: labels hold values {bad.tolist()} outside {{0, 1, 2, 3}}")
    spacing = _attr(attrs, "spacing_mm", lambda v: np.asarray(v, dtype=np.float64).ravel(), path, "three numbers")
    if spacing.size != 3 or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"{path}: spacing_mm must be three positive mm values, got {spacing.tolist()}")
    try:
        indices = {str(k): math.nan if v is None else float(v)  # null: NaN (the one JSON rule)
                   for k, v in json.loads(_as_str(attrs["indices"])).items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: attribute 'indices' is not a JSON object of numbers ({err})") from err
    ed, es = (_attr(attrs, key, _as_int, path, "an integer") for key in ("ed_frame", "es_frame"))
    return check_case(Case(
        name=_attr(attrs, "name", _as_str, path, "text"),
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        image=arrays.get("image"), labels=arrays.get("labels"), coil_maps=arrays.get("coil_maps"),
        kspace=arrays.get("kspace"), mask=arrays.get("mask"), affine=arrays.get("affine"),
        ed_frame=None if ed < 0 else ed, es_frame=None if es < 0 else es,
        group=_attr(attrs, "group", _as_str, path, "text") or None,
        labelled_frames=_attr(attrs, "labelled_frames", lambda v: tuple(_as_int(i) for i in np.asarray(v).ravel()),
                              path, "integers"),
        noise_std=_attr(attrs, "noise_std", lambda v: float(np.asarray(v, dtype=np.float64).item()), path,
                        "a number"), indices=indices,
        source=str(path), spacing_assumed="spacing_assumed" in attrs and _attr(
            attrs, "spacing_assumed", lambda v: bool(np.asarray(v).item()), path, "true or false"),
    ))


def case_header(path: str | os.PathLike) -> dict:
    """What a case file holds, without reading its arrays.

    Returns {"name": str, "shapes": {dataset: shape}, "labelled_frames": tuple[int, ...]}.
    Raises ValueError naming the file if it is unreadable or not a cinemri case, or when a
    labelled frame lies outside the cine's frames (training would index past the end).
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if _as_str(f.attrs.get("format", "")) != FORMAT_NAME:
                raise ValueError(f"{path}: not a {FORMAT_NAME} file (format attribute missing or different)")
            head = {"name": _as_str(f.attrs.get("name", path.stem)),
                    "shapes": {key: tuple(f[key].shape) for key in f if key in _DATASETS},
                    "labelled_frames": tuple(int(i) for i in np.asarray(f.attrs.get("labelled_frames", [])).ravel())}
    except (*_H5_ERRORS, TypeError) as err:
        raise ValueError(f"{path}: not a readable HDF5 case file ({_one_line(err)})") from err
    shapes = head["shapes"]
    frames = (shapes["image"][1] if len(shapes.get("image", ())) == 4 else
              shapes["kspace"][2] if len(shapes.get("kspace", ())) == 5 else
              shapes["labels"][1] if len(shapes.get("labels", ())) == 4 else None)
    outside = [t for t in head["labelled_frames"] if frames is not None and not 0 <= t < frames]
    if outside:
        raise ValueError(f"{path}: labelled frame(s) {outside} (0-based) are outside the {frames} frames")
    return head


def is_case_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is an HDF5 file whose root attribute ``format`` is cinemri-case."""
    try:
        with h5py.File(path, "r") as f:
            return _as_str(f.attrs.get("format", "")) == FORMAT_NAME
    except (*_H5_ERRORS, TypeError, ValueError):  # unreadable or corrupt: not a case file
        return False


# h5py reports a truncated or corrupt file as any of these, depending on where it breaks
_H5_ERRORS = (OSError, RuntimeError, KeyError)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_int(value) -> int:
    """An integer attribute (a Python or NumPy scalar, or a 1-element array); TypeError/ValueError otherwise."""
    number = np.asarray(value).item()
    if isinstance(number, (bytes, str)) or int(number) != number:
        raise ValueError(f"not an integer: {number!r}")
    return int(number)


def _attr(attrs: dict, key: str, convert, path: Path, what: str):
    """``convert(attrs[key])``, or ValueError naming the file, the attribute and its value."""
    try:
        return convert(attrs[key])
    except (TypeError, ValueError, OverflowError, AttributeError) as err:
        shown = repr(attrs[key])
        raise ValueError(f"{path}: attribute {key!r} must be {what}, got "
                         f"{shown if len(shown) <= 80 else shown[:77] + '...'}") from err
