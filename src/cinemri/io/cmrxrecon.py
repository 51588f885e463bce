"""CMRxRecon cine ``.mat`` files: MATLAB v7.3 (HDF5) and v5 (scipy.io).

MATLAB dims of k-space (HDF5 shows them reversed):
    multi-coil  (kx, ky, coils, slices, frames)
    single-coil (kx, ky, slices, frames)
    demo        (kx, ky)  one coil, slice and frame
kx is the readout (fully sampled) -> our H; ky the phase encode (undersampled) -> our W.
Returned k-space is (S, C, T, H, W) complex64. Masks ``maskNN`` / ``mask`` are (kx, ky),
(ky, kx) or (kx, ky, frames) in MATLAB order -> our (T, W) bool.

The files carry no geometry: spacing is set to CMRxRecon's published cine protocol
(1.5 x 1.5 mm in-plane, 8 mm slices) and ``Case.spacing_assumed`` is True.

:func:`write_cmrxrecon` writes multi-coil k-space in the same layout (MATLAB v7.3: HDF5 with
MATLAB's 512-byte header, compound real/imag ``single``), e.g. ``cinemri phantom --format
cmrxrecon``.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from cinemri import __version__
from cinemri.case import Case
from cinemri.files import atomic_write_bytes
from cinemri.io.validate import check_case, check_mask

DEFAULT_SPACING_MM = (8.0, 1.5, 1.5)  # (dz, dy, dx), CMRxRecon cine protocol
KSPACE_NAME = re.compile(r"^kspace(_single)?_(full|sub\d+)$")
MASK_NAME = re.compile(r"^mask\d*$")


def load_mat_variables(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All numeric variables of a MATLAB file in MATLAB axis order.

    v7.3 files are read with h5py (dims reversed back, compound real/imag -> complex);
    v5 files with scipy.io.loadmat. Returns {name: array}.
    Raises ValueError naming the file if it is neither.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such .mat file")
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                datasets = {key: f.get(key) for key in f if not key.startswith("#")}  # None: a dangling link
                return {key: _from_hdf5(ds[()]) for key, ds in datasets.items() if isinstance(ds, h5py.Dataset)}
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as err:  # h5py's ways to fail
            raise ValueError(f"{path}: unreadable MATLAB v7.3 file ({' '.join(str(err).split())})") from err
    try:
        raw = scipy.io.loadmat(path)
    except Exception as err:  # noqa: BLE001 -- scipy fails on damaged files with many types (IndexError, ...)
        raise ValueError(f"{path}: not a MATLAB v5 or v7.3 file ({type(err).__name__}: "
                         f"{' '.join(str(err).split())})") from err
    return {k: v for k, v in raw.items() if not k.startswith("__") and isinstance(v, np.ndarray)}


def _from_hdf5(arr: np.ndarray) -> np.ndarray:
    """HDF5 array as MATLAB sees it: compound (real, imag) -> complex, axes reversed."""
    if arr.dtype.names and {"real", "imag"} <= set(arr.dtype.names):
        arr = arr["real"] + 1j * arr["imag"]
    return np.asarray(arr).transpose(tuple(range(arr.ndim))[::-1])


def _kspace_to_ours(k: np.ndarray, where: str, name: str) -> np.ndarray:
    """MATLAB-order k-space -> (S, C, T, H, W) complex64; ValueError for non-numeric data or bad dims."""
    if k.dtype.kind not in "iufc":
        raise ValueError(f"{where}: {name} is not numeric k-space (dtype {k.dtype})")
    if k.ndim == 2:  # (kx, ky)
        out = k[None, None, None]
    elif k.ndim == 4:  # (kx, ky, S, T): single-coil
        out = k.transpose(2, 3, 0, 1)[:, None]
    elif k.ndim == 5:  # (kx, ky, C, S, T)
        out = k.transpose(3, 2, 4, 0, 1)
    else:
        raise ValueError(f"{where}: {name} has {k.ndim} dims {k.shape}; expected (kx, ky), "
                         "(kx, ky, slices, frames) or (kx, ky, coils, slices, frames)")
    try:
        out = np.ascontiguousarray(out, dtype=np.complex64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {name} is not numeric k-space (dtype {k.dtype})") from err
    if not np.isfinite(out).all():
        raise ValueError(f"{where}: {name} contains NaN or Inf")
    return out


def mask_to_ours(mask: np.ndarray, where: str, num_lines: int | None = None,
                 num_frames: int | None = None) -> np.ndarray:
    """MATLAB-order Cartesian mask -> (T, W) bool (W = ky).

    mask: (kx, ky), (ky, kx), (kx, ky, T) or (ky,) with nonzero = sampled.
    num_lines: W of the k-space it belongs to, when known (decides which axis is ky);
    otherwise ky is the axis along which every line is constant (readout fully sampled).
    num_frames: repeat a 2D mask over this many frames (default 1).
    Raises ValueError if no axis matches, lines are partially sampled along kx or a frame
    samples no line (see :func:`cinemri.io.validate.check_mask`).
    """
    m = np.asarray(mask) != 0
    if m.ndim == 1:
        m = m[None, :, None]  # (1, ky, 1)
    elif m.ndim == 2:
        m = m[:, :, None]  # (a, b, 1)
        if not _ky_is_axis1(m[..., 0], num_lines):
            m = m.transpose(1, 0, 2)
    elif m.ndim != 3:
        raise ValueError(f"{where}: mask has {m.ndim} dims {mask.shape}; expected (kx, ky) or (kx, ky, frames)")
    # m: (kx, ky, T)
    if num_lines is not None and m.shape[1] != num_lines:
        raise ValueError(f"{where}: mask {mask.shape} has no axis of the k-space's {num_lines} phase encodes")
    if not (m == m[:1]).all():
        raise ValueError(f"{where}: mask {mask.shape} samples lines only partly along kx; "
                         "not a Cartesian line mask")
    lines = m[0].T  # (T, W)
    if lines.shape[0] == 1 and num_frames:
        lines = np.repeat(lines, num_frames, axis=0)
    elif num_frames and lines.shape[0] != num_frames:
        raise ValueError(f"{where}: mask has {lines.shape[0]} frames, k-space has {num_frames}")
    return np.ascontiguousarray(check_mask(lines, where))


def _ky_is_axis1(m: np.ndarray, num_lines: int | None) -> bool:
    a, b = m.shape
    if num_lines is not None and a != b:
        return b == num_lines
    const0 = bool((m == m[:1]).all())  # constant along axis 0 -> axis 0 is kx
    const1 = bool((m == m[:, :1]).all())
    if const0 != const1:
        return const0
    return a >= b  # fully sampled or ambiguous: the readout is the longer (oversampled) axis


def read_mask(path: str | os.PathLike, num_frames: int | None = None) -> np.ndarray:
    """Read a CMRxRecon mask file (v5 or v7.3) holding one ``mask`` / ``maskNN`` variable.

    num_frames: repeat a 2D mask over this many frames.
    Returns (T, W) bool, W = ky lines. Raises ValueError naming the file.
    """
    variables = load_mat_variables(path)
    names = sorted(k for k in variables if MASK_NAME.match(k))
    if len(names) != 1:
        raise ValueError(f"{path}: expected one mask variable, found {names or sorted(variables)}")
    return mask_to_ours(variables[names[0]], str(path), num_frames=num_frames)


def read_cmrxrecon(path: str | os.PathLike, mask_path: str | os.PathLike | None = None,
                   acceleration: int | None = None) -> Case:
    """Read a CMRxRecon cine k-space file into a Case.

    path: ``.mat`` holding ``kspace_full`` (fully sampled) or ``kspace_subNN`` (+ ``maskNN``);
        single-coil names ``kspace_single_*`` too.
    mask_path: separate mask file for undersampled k-space without its own mask.
    acceleration: pick ``kspace_subNN`` with NN = acceleration when a file holds several.
    Returns Case with kspace (S, C, T, H=kx, W=ky) complex64; mask (T, W) bool for
    undersampled k-space (taken from the file, else mask_path, else the nonzero ky lines),
    None for fully sampled. spacing = DEFAULT_SPACING_MM with spacing_assumed=True.
    Raises ValueError naming the file for missing variables, bad dims, NaN/Inf or k-space
    that holds no picture (all zero, a frame without samples; see :mod:`cinemri.io.validate`).
    """
    path = Path(path)
    variables = load_mat_variables(path)
    kspace_names = sorted(k for k in variables if KSPACE_NAME.match(k))
    full = [k for k in kspace_names if k.endswith("_full")]
    subs = [k for k in kspace_names if not k.endswith("_full")]
    if acceleration is not None:
        subs = [k for k in subs if int(k.rsplit("sub", 1)[1]) == acceleration]
    if full:
        name = full[0]
    elif len(subs) == 1:
        name = subs[0]
    else:
        raise ValueError(f"{path}: expected one 'kspace_full' or 'kspace_subNN' variable "
                         f"(acceleration={acceleration}), found {kspace_names or sorted(variables)}")
    kspace = _kspace_to_ours(variables[name], str(path), name)
    mask = None
    if name in subs:
        mask = _find_mask(variables, name, path, mask_path, kspace)
        kspace = kspace * mask[None, None, :, None, :]  # zeros where not sampled, as documented
    return check_case(Case(
        name=path.stem if path.stem not in ("cine_sax", "cine_lax") else f"{path.parent.name}_{path.stem}",
        spacing=DEFAULT_SPACING_MM, kspace=kspace, mask=mask, source=str(path), spacing_assumed=True))


def _find_mask(variables: dict[str, np.ndarray], name: str, path: Path,
               mask_path: str | os.PathLike | None, kspace: np.ndarray) -> np.ndarray:
    _, _, t, _, w = kspace.shape
    number = name.rsplit("sub", 1)[1]
    for key in (f"mask{number}", "mask"):
        if key in variables:
            return mask_to_ours(variables[key], f"{path}:{key}", num_lines=w, num_frames=t)
    if mask_path is not None:
        mask = read_mask(mask_path, num_frames=t)
        if mask.shape != (t, w):
            raise ValueError(f"{mask_path}: mask is {mask.shape} as (T, W), k-space {path} needs {(t, w)}")
        return mask
    return np.abs(kspace).sum(axis=(0, 1, 3)) > 0  # (T, W): the lines that hold data


# ----------------------------------------------------------------------------- writing

MAT73_USERBLOCK = 512  # bytes before the HDF5 data: MATLAB's file header, then zeros


def _mat73_header() -> bytes:
    """MATLAB's 128-byte v7.3 header: descriptive text (116 bytes), subsystem offset (8),
    version 0x0200 and the endian indicator "IM" (little-endian). No date, so the same
    k-space always gives the same file."""
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: cinemri {__version__} HDF5 schema 1.00 ."
    return text.encode("ascii")[:116].ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM"


def write_cmrxrecon(kspace: np.ndarray, path: str | os.PathLike, name: str = "kspace_full") -> Path:
    """Write multi-coil k-space as a CMRxRecon cine ``.mat`` (MATLAB v7.3), atomically.

    kspace: (S, C, T, H, W) complex (H = kx readout, W = ky phase encode), fully sampled.
    The variable ``name`` (``kspace_full``, or ``kspace_subNN`` for data that is already
    zero where not sampled) holds MATLAB dims (kx, ky, coils, slices, frames), i.e. an HDF5
    dataset of shape (T, S, C, W, H) with a compound (real, imag) float32 type and
    ``MATLAB_class = "single"``, after MATLAB's 512-byte v7.3 header: what
    :func:`read_cmrxrecon` reads back to the same ``kspace`` (as complex64).
    Built in memory and written with :func:`cinemri.files.atomic_write_bytes` (never
    half-written; a full disk is an OSError naming ``path``).
    Returns ``path``. Raises ValueError for another shape, non-finite values or a bad name.
    """
    path = Path(path)
    if not KSPACE_NAME.match(name):
        raise ValueError(f"{path}: variable name {name!r} is not a CMRxRecon k-space name "
                         "(kspace_full, kspace_subNN, kspace_single_full, ...)")
    kspace = np.asarray(kspace)
    if kspace.ndim != 5 or kspace.dtype.kind not in "iufc":
        raise ValueError(f"{path}: k-space must be (S, C, T, H, W) numbers, got shape {kspace.shape} "
                         f"dtype {kspace.dtype}")
    kspace = kspace.astype(np.complex64)
    if not np.isfinite(kspace).all():
        raise ValueError(f"{path}: k-space contains NaN or Inf")
    pair = np.dtype([("real", "<f4"), ("imag", "<f4")])
    stored = np.empty(kspace.shape, dtype=pair)  # (S, C, T, H, W)
    stored["real"], stored["imag"] = kspace.real, kspace.imag
    stored = np.ascontiguousarray(stored.transpose(2, 0, 1, 4, 3))  # (T, S, C, W, H): MATLAB dims reversed
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", userblock_size=MAT73_USERBLOCK, track_order=False) as f:
        dataset = f.create_dataset(name, data=stored, track_times=False)
        dataset.attrs["MATLAB_class"] = np.bytes_("single")
    data = bytearray(buffer.getbuffer())
    header = _mat73_header()
    data[:len(header)] = header
    return atomic_write_bytes(path, data)
