"""Builders of tiny files in every format cinemri.io reads (imported by the io/data tests).

Each builder writes the format the way its real producer does (MATLAB v7.3 = HDF5 with a
512-byte header and compound real/imag with reversed dims; v5 through scipy.io.savemat;
ACDC/M&Ms NIfTI through nibabel), with odd sizes so transposes cannot hide.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import scipy.io

from cinemri.case import Case

MAT73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def make_case(s: int = 2, t: int = 3, h: int = 15, w: int = 12, c: int = 4, seed: int = 0,
              noise_std: float = 0.01) -> Case:
    """A phantom-like case: image, labels with all four values, normalised coil maps."""
    rng = np.random.default_rng(seed)
    image = (rng.standard_normal((s, t, h, w)) + 1j * rng.standard_normal((s, t, h, w))).astype(np.complex64)
    labels = np.zeros((s, t, h, w), dtype=np.uint8)
    labels[:, :, 3:6, 2:5] = 1
    labels[:, :, 6:10, 4:9] = 2
    labels[:, :, 7:9, 5:8] = 3
    labels[:, 1] = 0  # frame 1 unlabelled
    maps = (rng.standard_normal((s, c, h, w)) + 1j * rng.standard_normal((s, c, h, w))).astype(np.complex64)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(axis=1, keepdims=True))
    return Case(name=f"tiny{seed}", spacing=(8.0, 1.25, 1.5), image=image, labels=labels, coil_maps=maps,
                ed_frame=0, es_frame=2, group="NOR", labelled_frames=(0, 2), noise_std=noise_std,
                indices={"lv_edv_ml": 1.5, "lv_ef_pct": float("nan")})


def _matlab_dataset(f: h5py.File, name: str, value: np.ndarray) -> None:
    """Store a MATLAB-order array as MATLAB v7.3 does: dims reversed, complex as compound."""
    value = np.asarray(value)
    stored = value.transpose(tuple(range(value.ndim))[::-1])
    if np.iscomplexobj(value):
        compound = np.empty(stored.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
        compound["real"], compound["imag"] = stored.real, stored.imag
        f.create_dataset(name, data=compound).attrs["MATLAB_class"] = np.bytes_(b"single")
    else:
        f.create_dataset(name, data=stored.astype(np.float64)).attrs["MATLAB_class"] = np.bytes_(b"double")


def write_mat73(path: Path, variables: dict[str, np.ndarray]) -> Path:
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            _matlab_dataset(f, name, value)
    with open(path, "r+b") as raw:  # MATLAB's text header lives in the userblock
        raw.write(MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return path


def write_mat5(path: Path, variables: dict[str, np.ndarray]) -> Path:
    scipy.io.savemat(path, variables)
    return path


def matlab_kspace(c: int = 3, s: int = 2, t: int = 4, kx: int = 10, ky: int = 7, seed: int = 0) -> np.ndarray:
    """Random MATLAB-order (kx, ky, coils, slices, frames) complex64 k-space; each entry unique."""
    rng = np.random.default_rng(seed)
    shape = (kx, ky, c, s, t)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _save_nifti(data: np.ndarray, affine: np.ndarray, path: Path, dtype) -> None:
    img = nib.Nifti1Image(data.astype(dtype), affine)
    img.set_data_dtype(dtype)
    nib.save(img, str(path))


ACDC_AFFINE = np.array([[-1.6, 0, 0, 3.0], [0, -1.4, 0, -2.0], [0, 0, 7.0, 5.0], [0, 0, 0, 1]])


def acdc_volumes(x: int = 13, y: int = 11, z: int = 3, t: int = 5, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z, T) image and labels (labels at every frame; readers keep ED/ES)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 250, size=(x, y, z, t)).astype(np.float32)
    labels = np.zeros((x, y, z, t), dtype=np.uint8)
    labels[2:5, 3:6] = 1
    labels[6:10, 4:8] = 2
    labels[7:9, 5:7] = 3
    labels[:, :, 0] = 0  # slice 0 empty (apex)
    return image, labels


def write_acdc(root: Path, pid: str = "patient007", ed: int = 1, es: int = 4, with_4d: bool = True,
               dtype=np.int16) -> tuple[Path, np.ndarray, np.ndarray]:
    """An ACDC patient folder; ED/ES 1-based as in Info.cfg. Returns (folder, image, labels)."""
    folder = root / pid
    folder.mkdir(parents=True)
    image, labels = acdc_volumes()
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: {image.shape[3]}\n"
                                     "Weight: 95.0\n")
    if with_4d:
        _save_nifti(image, ACDC_AFFINE, folder / f"{pid}_4d.nii.gz", dtype)
    for number in (ed, es):
        _save_nifti(image[..., number - 1], ACDC_AFFINE, folder / f"{pid}_frame{number:02d}.nii.gz", dtype)
        _save_nifti(labels[..., number - 1], ACDC_AFFINE, folder / f"{pid}_frame{number:02d}_gt.nii.gz", np.uint8)
    return folder, image, labels


MNMS_AFFINE = np.array([[0.5, 1.1, 5.4, -205.0], [1.2, 0.0, -5.6, -149.0], [-0.6, 1.0, -6.2, 47.0], [0, 0, 0, 1]])


def write_mnms1(root: Path, case_id: str = "A0S9V9", ed: int = 0, es: int = 3
                ) -> tuple[Path, np.ndarray, np.ndarray]:
    """An M&Ms-1 case folder; labels in M&Ms order (1 LV, 2 MYO, 3 RV) at ED and ES only."""
    folder = root / case_id
    folder.mkdir(parents=True)
    image, acdc_labels = acdc_volumes(seed=1)
    mnms_labels = np.zeros_like(acdc_labels)
    lut = np.array([0, 3, 2, 1], dtype=np.uint8)
    for frame in (ed, es):
        mnms_labels[..., frame] = lut[acdc_labels[..., frame]]
    mnms_labels[..., es][mnms_labels[..., es] == 1] = 0  # smaller LV at ES
    _save_nifti(image, MNMS_AFFINE, folder / f"{case_id}_sa.nii.gz", np.float32)
    _save_nifti(mnms_labels, MNMS_AFFINE, folder / f"{case_id}_sa_gt.nii.gz", np.float32)
    return folder, image, mnms_labels


def write_mnms2(root: Path, case_id: str = "042") -> tuple[Path, np.ndarray, np.ndarray]:
    """An M&Ms-2 folder: <ID>_SA_ED/ES[_gt].nii.gz (3D each, float64 as the real files)."""
    folder = root / case_id
    folder.mkdir(parents=True)
    image, acdc_labels = acdc_volumes(seed=2)
    lut = np.array([0, 3, 2, 1], dtype=np.uint8)
    for phase, frame in (("ED", 1), ("ES", 3)):
        _save_nifti(image[..., frame], MNMS_AFFINE, folder / f"{case_id}_SA_{phase}.nii.gz", np.float64)
        _save_nifti(lut[acdc_labels[..., frame]], MNMS_AFFINE, folder / f"{case_id}_SA_{phase}_gt.nii.gz",
                    np.float64)
    return folder, image, acdc_labels
