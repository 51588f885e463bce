"""A sweep of generated bad inputs through every reader: each is refused with one clear line.

Every input is a tiny file or folder written into a temporary folder: truncated and corrupted
files, wrong dtypes, shapes and dimensions, NaN/Inf, blank and constant images, bad spacing,
bad ACDC ``Info.cfg`` (binary content included), empty files and folders, links. Each goes
through ``detect_format``, ``read_any``, ``describe`` and ``cinemri info``:

- an input marked ``bad`` must be refused by ``read_any`` and ``describe`` with a ValueError
  naming the input, and by ``cinemri info`` with exit status 2 and one line on stderr;
- an input marked ``maybe`` (a random byte flip may hit unused bytes) must read or be refused
  that way; no other exception type is ever allowed.

Run ``PYTHONPATH=tests python tests/io/test_io_fuzz_inputs.py`` for the table of docs/reliability.md
(tests/ holds the shared input builders).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from io_builders import ACDC_AFFINE, MNMS_AFFINE, make_case, matlab_kspace, write_acdc, write_mat5, write_mat73
from test_io_dicom import NORMAL as DICOM_NORMAL
from test_io_dicom import ORIGIN as DICOM_ORIGIN
from test_io_dicom import S as DICOM_S
from test_io_dicom import T as DICOM_T
from test_io_dicom import write_series

from cinemri.cli import main
from cinemri.io import describe, detect_format, read_any, write_case


@dataclass(frozen=True)
class Input:
    kind: str  # family, for the table: "case .h5", "CMRxRecon .mat", "NIfTI", "ACDC", "DICOM", "other"
    what: str  # what is wrong with it
    path: Path
    bad: bool = True  # False: may also read (a byte flip can hit unused bytes)


class Sweep:
    """Writes the inputs, numbered so that names never collide."""

    def __init__(self, root: Path) -> None:
        self.root, self.inputs, self._n = root, [], 0
        self.rng = np.random.default_rng(2024)

    def path(self, name: str) -> Path:
        self._n += 1
        folder = self.root / f"{self._n:04d}"
        folder.mkdir()
        return folder / name

    def add(self, kind: str, what: str, path: Path, bad: bool = True) -> None:
        self.inputs.append(Input(kind, what, path, bad))

    def add_damaged(self, kind: str, name: str, data: bytes, fractions: tuple[float, ...], flips: int,
                    nbytes: int, prefix: str = "") -> None:
        """Copies of a good file's bytes ``data`` as ``name``: cut to each of ``fractions`` (must be
        refused), then ``flips`` copies with ``nbytes`` random bytes inverted (may still read)."""
        for frac in fractions:
            path = self.path(name)
            path.write_bytes(data[:int(len(data) * frac)])
            self.add(kind, f"{prefix}truncated to {frac:.0%}", path)
        for i in range(flips):
            corrupt = bytearray(data)
            for offset in self.rng.integers(0, len(data), size=nbytes):
                corrupt[offset] ^= 0xFF
            path = self.path(name)
            path.write_bytes(bytes(corrupt))
            self.add(kind, f"{prefix}{nbytes} bytes flipped (#{i})", path, bad=False)


# ----------------------------------------------------------------------------- the inputs


def _case_h5(sweep: Sweep) -> None:
    good = write_case(make_case(s=2, t=3, h=15, w=12, c=2), sweep.path("good.h5"))
    sweep.add_damaged("case .h5", "cut.h5", good.read_bytes(), (0.0, 0.001, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25,
                      0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99), flips=20, nbytes=8)

    case = make_case(s=2, t=3, h=15, w=12, c=2)
    arrays = {
        "image float32": ("image", case.image.real.astype(np.float32)),
        "image int16": ("image", (case.image.real * 100).astype(np.int16)),
        "image 3-D": ("image", case.image[0]),
        "image 5-D": ("image", case.image[None]),
        "image wrong W": ("image", case.image[..., :5]),
        "image zero slices": ("image", case.image[:0]),
        "image zero frames": ("image", case.image[:, :0]),
        "image NaN": ("image", np.where(case.labels > 0, np.complex64(np.nan), case.image)),
        "image Inf": ("image", np.where(case.labels > 1, np.complex64(np.inf), case.image)),
        "image all zero": ("image", np.zeros_like(case.image)),
        "image constant": ("image", np.full_like(case.image, 3 + 4j)),
        "image 1e30": ("image", case.image * np.complex64(1e30)),
        "image 1e-30": ("image", case.image * np.complex64(1e-30)),
        "image one frame zero": ("image", case.image * np.array([1, 0, 1], np.complex64)[None, :, None, None]),
        "image string": ("image", np.array([b"abc"] * 4)),
        "image complex128": ("image", case.image.astype(np.complex128)),
        "image bool": ("image", case.labels > 0),
        "image one pixel wide": ("image", case.image[..., :1]),
        "image scalar": ("image", np.complex64(1)),
        "labels int8": ("labels", case.labels.astype(np.int8)),
        "labels 5-D": ("labels", case.labels[None]),
        "coil maps float": ("coil_maps", case.coil_maps.real.copy()),
        "labels float": ("labels", case.labels.astype(np.float32)),
        "labels value 7": ("labels", np.where(case.labels == 3, 7, case.labels).astype(np.uint8)),
        "labels wrong H": ("labels", case.labels[:, :, :9]),
        "coil maps NaN": ("coil_maps", np.where(np.ones(case.coil_maps.shape, bool), np.complex64(np.nan), 0)),
        "coil maps wrong S": ("coil_maps", case.coil_maps[:1]),
        "kspace 4-D": ("kspace", case.coil_maps),
        "mask int": ("mask", np.ones((3, 12), np.int32)),
        "mask wrong T": ("mask", np.ones((5, 12), bool)),
        "affine 3x3": ("affine", np.eye(3)),
    }
    for what, (key, value) in arrays.items():
        path = write_case(case, sweep.path("case.h5"))
        with h5py.File(path, "r+") as f:
            if key in f:
                del f[key]
            f.create_dataset(key, data=value)
        sweep.add("case .h5", what, path)
    k_only = replace(case, image=None, labels=None, kspace=np.zeros((2, 2, 3, 15, 12), np.complex64))
    sweep.add("case .h5", "k-space all zero, no image", write_case(k_only, sweep.path("k.h5")))

    def edit(what: str, change) -> None:
        path = write_case(case, sweep.path("case.h5"))
        with h5py.File(path, "r+") as f:
            change(f)
        sweep.add("case .h5", what, path)

    for name, value in (("spacing 0", [0.0, 1.0, 1.0]), ("spacing negative", [8.0, -1.0, 1.0]),
                        ("spacing NaN", [8.0, np.nan, 1.0]), ("spacing Inf", [np.inf, 1.0, 1.0]),
                        ("spacing 1e6 mm", [1e6, 1.0, 1.0]), ("spacing 0.01 mm", [8.0, 0.01, 0.01]),
                        ("spacing two values", [1.0, 1.0]), ("spacing text", "8 1 1"),
                        ("spacing 100 mm in-plane", [8.0, 100.0, 100.0])):
        edit(name, lambda f, v=value: f.attrs.__setitem__("spacing_mm", v))
    for attr in ("format", "format_version", "name", "spacing_mm", "ed_frame", "indices", "labelled_frames"):
        edit(f"attribute {attr} missing", lambda f, a=attr: f.attrs.__delitem__(a))
    for what, attr, value in (("format other", "format", "not-cinemri"), ("format_version 99", "format_version", 99),
                              ("format_version text", "format_version", "one"), ("ED frame 50 of 3", "ed_frame", 50),
                              ("ES frame 3 of 3", "es_frame", 3), ("ED frame text", "ed_frame", "x"),
                              ("ED frame array", "ed_frame", [0, 1]), ("noise_std text", "noise_std", "loud"),
                              ("noise_std array", "noise_std", [1.0, 2.0]), ("indices not JSON", "indices", "{nope"),
                              ("indices a list", "indices", "[1, 2]"), ("indices text values", "indices", '{"a": "b"}'),
                              ("labelled frame 9 of 3", "labelled_frames", [0, 9]),
                              ("labelled frames text", "labelled_frames", "0,1")):
        edit(what, lambda f, a=attr, v=value: f.attrs.__setitem__(a, v))
    edit("image is a group", lambda f: (f.__delitem__("image"), f.create_group("image")))
    edit("image is a dangling link", lambda f: (f.__delitem__("image"), f.__setitem__("image", h5py.SoftLink("/gone"))))
    edit("image links outside the file", lambda f: (f.__delitem__("image"),
                                                    f.__setitem__("image", h5py.ExternalLink("absent.h5", "/x"))))
    edit("no image, labels or k-space", lambda f: [f.__delitem__(k) for k in ("image", "labels")])

    path = sweep.path("plain.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.ones((2, 2)))
    sweep.add("case .h5", "HDF5 without cinemri attributes", path)


def _cmrxrecon(sweep: Sweep) -> None:
    k = matlab_kspace(c=2, s=1, t=3, kx=10, ky=7)  # (kx, ky, C, S, T)
    for writer, version in ((write_mat73, "v7.3"), (write_mat5, "v5")):
        good = writer(sweep.path("cine_sax.mat"), {"kspace_full": k})
        sweep.add_damaged("CMRxRecon .mat", "cine_sax.mat", good.read_bytes(), (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3,
                          0.4, 0.5, 0.65, 0.8, 0.9, 0.95, 0.99), flips=8, nbytes=6, prefix=f"{version} ")
        variables = {
            "k-space all zero": {"kspace_full": np.zeros_like(k)},
            "k-space NaN": {"kspace_full": np.where(np.abs(k) > 1, np.complex64(np.nan), k)},
            "k-space Inf": {"kspace_full": np.where(np.abs(k) > 1, np.complex64(np.inf), k)},
            "k-space 1e30": {"kspace_full": k * np.complex64(1e30)},
            "k-space frame 1 empty": {"kspace_full": k * np.array([1, 0, 1], np.complex64)},
            "k-space 1-D": {"kspace_full": k[:, 0, 0, 0, 0]},
            "k-space 3-D": {"kspace_full": k[..., 0, 0]},
            "k-space 6-D": {"kspace_full": k[..., None]},
            "k-space empty": {"kspace_full": np.zeros((0, 7), np.complex64)},
            "k-space text": {"kspace_full": np.array(["abc", "def"])},
            "no k-space variable": {"other": np.ones(3)},
            "undersampled, mask empty": {"kspace_sub04": k, "mask04": np.zeros((10, 7))},
            "undersampled, mask wrong size": {"kspace_sub04": k, "mask04": np.ones((10, 5))},
            "undersampled, mask 4-D": {"kspace_sub04": k, "mask04": np.ones((10, 7, 3, 2))},
            "two undersampled k-spaces": {"kspace_sub04": k, "kspace_sub08": k},
            "k-space int8 zeros": {"kspace_full": np.zeros((10, 7), np.int8)},
            "k-space bool": {"kspace_full": np.ones((10, 7), bool)},
            "k-space 1e-30": {"kspace_full": k * np.complex64(1e-30)},
            "k-space 2 x 2": {"kspace_full": k[:2, :2, 0, 0, 0]},
            "mask text": {"kspace_sub04": k, "mask04": np.array(["a", "b"])},
        }
        for what, content in variables.items():
            try:
                path = writer(sweep.path("cine_sax.mat"), content)
            except (TypeError, ValueError):  # a writer that cannot store it at all
                continue
            sweep.add("CMRxRecon .mat", f"{version} {what}", path)
    path = write_mat73(sweep.path("cine_sax.mat"), {})
    with h5py.File(path, "r+") as f:
        f.create_group("kspace_full")
    sweep.add("CMRxRecon .mat", "v7.3 k-space is a struct", path)
    path = sweep.path("cine_sax.mat")
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("kspace_full", data=np.zeros((3, 4), dtype=[("re", "<f4"), ("im", "<f4")]))
    sweep.add("CMRxRecon .mat", "v7.3 compound without real/imag", path)
    path = sweep.path("cine_sax.mat")
    path.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    sweep.add("CMRxRecon .mat", "v5 header then zeros", path)


def _nifti_file(path: Path, data, affine=ACDC_AFFINE, dtype=np.float32, pixdim=None) -> Path:
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.set_data_dtype(dtype)
    if pixdim is not None:
        img.header["pixdim"][1:4] = pixdim
    nib.save(img, str(path))
    return path


def _nifti(sweep: Sweep) -> None:
    rng = sweep.rng
    image = rng.integers(0, 250, size=(13, 11, 3, 5)).astype(np.float32)
    good = _nifti_file(sweep.path("X01_sa.nii.gz"), image, MNMS_AFFINE)
    data = good.read_bytes()
    for frac in (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97):
        path = sweep.path("X01_sa.nii.gz")
        path.write_bytes(data[:int(len(data) * frac)])
        sweep.add("NIfTI", f"gzip truncated to {frac:.0%}", path)
    raw = nib.Nifti1Image(image, MNMS_AFFINE).to_bytes()
    for frac in (0.0, 0.01, 0.03, 0.1, 0.3, 0.6, 0.9, 0.99):
        path = sweep.path("X01_sa.nii")
        path.write_bytes(raw[:int(len(raw) * frac)])
        sweep.add("NIfTI", f".nii truncated to {frac:.0%}", path)
    for i in range(10):
        corrupt = bytearray(raw)
        for offset in rng.integers(0, 348, size=4):  # the header
            corrupt[offset] ^= 0xFF
        path = sweep.path("X01_sa.nii")
        path.write_bytes(bytes(corrupt))
        sweep.add("NIfTI", f"4 header bytes flipped (#{i})", path, bad=False)
    for i in range(10):
        corrupt = bytearray(data)
        for offset in rng.integers(0, len(data), size=4):  # anywhere in the gzip stream
            corrupt[offset] ^= 0xFF
        path = sweep.path("X01_sa.nii.gz")
        path.write_bytes(bytes(corrupt))
        sweep.add("NIfTI", f"4 gzip bytes flipped (#{i})", path, bad=False)
    cases = {
        "all zero": dict(data=np.zeros_like(image)),
        "constant": dict(data=np.full_like(image, 17.0)),
        "NaN": dict(data=np.where(image > 200, np.nan, image)),
        "Inf": dict(data=np.where(image > 200, np.inf, image)),
        "1e30-scaled": dict(data=image * 1e30),
        "one frame zero": dict(data=image * np.array([1, 1, 0, 1, 1], np.float32)),
        "one bright voxel": dict(data=np.where(np.arange(image.size).reshape(image.shape) == 7, 100.0, 0.0)),
        "2-D": dict(data=image[:, :, 0, 0]),
        "5-D": dict(data=image[..., None]),
        "pixdim 0 in-plane": dict(data=image, pixdim=(0.0, 1.4, 7.0)),
        "pixdim 0 between slices": dict(data=image, pixdim=(1.6, 1.4, 0.0)),
        "pixdim negative": dict(data=image, pixdim=(-1.6, 1.4, 7.0)),
        "pixdim NaN": dict(data=image, pixdim=(np.nan, 1.4, 7.0)),
        "pixdim Inf": dict(data=image, pixdim=(1.6, np.inf, 7.0)),
        "pixdim 100 mm": dict(data=image, pixdim=(100.0, 1.4, 7.0)),
        "pixdim 0.01 mm": dict(data=image, pixdim=(0.01, 0.01, 7.0)),
        "slices 0.1 mm apart": dict(data=image, pixdim=(1.6, 1.4, 0.1)),
        "complex dtype": dict(data=image, dtype=np.complex64),  # read as its magnitude (bad=False below)
        "int8 all zero": dict(data=np.zeros_like(image), dtype=np.int8),
        "uint8 constant": dict(data=np.full_like(image, 9), dtype=np.uint8),
        "float64 NaN everywhere": dict(data=np.full_like(image, np.nan), dtype=np.float64),
        "int16 overflowing values": dict(data=image * 1000, dtype=np.int16),  # wraps, still a picture: may read
        "3 x 2 pixels": dict(data=image[:3, :2]),
    }
    for what, kwargs in cases.items():
        try:
            path = _nifti_file(sweep.path("X01_sa.nii.gz"), **kwargs)
        except Exception:  # nibabel cannot even write it
            continue
        sweep.add("NIfTI", what, path, bad=what not in ("complex dtype", "int16 overflowing values"))
    labels = np.zeros(image.shape, np.float32)
    labels[2:5, 3:6] = 1
    for what, gt in (("labels value 7", np.where(labels > 0, 7.0, 0.0)), ("labels 2.5", labels * 2.5),
                     ("labels NaN", np.where(labels > 0, np.nan, 0.0)), ("labels wrong shape", labels[:5])):
        path = _nifti_file(sweep.path("X01_sa.nii.gz"), image, MNMS_AFFINE)
        _nifti_file(path.with_name("X01_sa_gt.nii.gz"), gt, MNMS_AFFINE)
        sweep.add("NIfTI", f"M&Ms-1 {what}", path)
    folder = sweep.path("042")
    folder.mkdir()
    _nifti_file(folder / "042_SA_ED.nii.gz", image[..., 0], MNMS_AFFINE)
    sweep.add("NIfTI", "M&Ms-2 without its ES image", folder)
    folder = sweep.path("043")
    folder.mkdir()
    _nifti_file(folder / "043_SA_ED.nii.gz", image[..., 0], MNMS_AFFINE)
    _nifti_file(folder / "043_SA_ES.nii.gz", image[:5, :, :, 1], MNMS_AFFINE)
    sweep.add("NIfTI", "M&Ms-2 ED and ES grids differ", folder)


def _acdc(sweep: Sweep) -> None:
    infos = {
        "Info.cfg empty": b"",
        "Info.cfg binary": bytes(range(256)),
        "Info.cfg UTF-16": "ED: 1\nES: 4\n".encode("utf-16"),
        "Info.cfg NUL bytes": b"ED: 1\x00\nES: 4\n",
        "Info.cfg without ED": b"ES: 4\n",
        "Info.cfg ED text": b"ED: one\nES: 4\n",
        "Info.cfg ED 0": b"ED: 0\nES: 4\n",
        "Info.cfg ED 99": b"ED: 99\nES: 4\n",
        "Info.cfg ES -1": b"ED: 1\nES: -1\n",
        "Info.cfg ED 1e400": b"ED: 1e400\nES: 4\n",
        "Info.cfg ED huge": b"ED: 99999999999999999999999\nES: 4\n",
        "Info.cfg line without colon": b"ED 1\nES: 4\n",
        "Info.cfg NbFrame inf": b"ED: 1\nES: 4\nNbFrame: inf\n",
        "Info.cfg NbFrame nan": b"ED: 1\nES: 4\nNbFrame: nan\n",
        "Info.cfg NbFrame text": b"ED: 1\nES: 4\nNbFrame: many\n",
        "Info.cfg is a folder": None,
        "Info.cfg binary after good lines": b"ED: 1\nES: 4\n" + bytes(range(128, 256)),
        "Info.cfg Latin-1": "ED: 1\nES: 4\nGroup: d\xe9j\xe0\n".encode("latin-1"),
        "Info.cfg only blanks": b"   \n\n\t\n",
        "Info.cfg ED float": b"ED: 1.5\nES: 4\n",
        "Info.cfg ED = ES outside": b"ED: 7\nES: 7\n",
        "Info.cfg random bytes": np.random.default_rng(5).integers(0, 256, 300, dtype=np.uint8).tobytes(),
    }
    for what, content in infos.items():
        root = sweep.path("acdc")
        folder, _, _ = write_acdc(root, pid="patient001")
        cfg = folder / "Info.cfg"
        cfg.unlink()
        if content is None:
            cfg.mkdir()
        else:
            cfg.write_bytes(content)
        sweep.add("ACDC", what, folder)
    for what in ("4D file truncated", "ED label file truncated", "ES image missing, no 4D", "label value 9",
                 "4D all zero", "4D pixdim 0", "frame file of another grid"):
        root = sweep.path("acdc")
        folder, image, labels = write_acdc(root, pid="patient002", with_4d=what.startswith("4D"))
        if what == "4D file truncated":
            p = folder / "patient002_4d.nii.gz"
            p.write_bytes(p.read_bytes()[:200])
        elif what == "ED label file truncated":
            p = folder / "patient002_frame01_gt.nii.gz"
            p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2])
        elif what == "ES image missing, no 4D":
            (folder / "patient002_frame04.nii.gz").unlink()
        elif what == "label value 9":
            _nifti_file(folder / "patient002_frame01_gt.nii.gz", np.where(labels[..., 0] > 0, 9, 0), dtype=np.uint8)
        elif what == "4D all zero":
            _nifti_file(folder / "patient002_4d.nii.gz", np.zeros_like(image), dtype=np.int16)
        elif what == "4D pixdim 0":
            _nifti_file(folder / "patient002_4d.nii.gz", image, dtype=np.int16, pixdim=(1.6, 0.0, 7.0))
        else:
            _nifti_file(folder / "patient002_frame04.nii.gz", image[:7, :, :, 3], dtype=np.int16)
        sweep.add("ACDC", what, folder)


def _dicom(sweep: Sweep) -> None:
    good = write_series(sweep.path("cine"))
    files = sorted(good.iterdir())
    data = files[0].read_bytes()
    for frac in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.97, 0.995):
        folder = write_series(sweep.path("cine"))
        (folder / files[0].name).write_bytes(data[:int(len(data) * frac)])
        sweep.add("DICOM", f"one file truncated to {frac:.1%}", folder)
    for i in range(6):
        folder = write_series(sweep.path("cine"))
        corrupt = bytearray(data)
        for offset in sweep.rng.integers(0, len(data), size=4):
            corrupt[offset] ^= 0xFF
        (folder / files[0].name).write_bytes(bytes(corrupt))
        sweep.add("DICOM", f"4 bytes of one file flipped (#{i})", folder, bad=False)
    every = {(s, t) for s in range(DICOM_S) for t in range(DICOM_T)}
    nan = float("nan")
    variants = {
        "PixelSpacing 0": dict(spacing=(0.0, 1.25)),
        "PixelSpacing negative": dict(spacing=(-1.5, 1.25)),
        "PixelSpacing 0.01 mm": dict(spacing=(0.01, 0.01)),
        "PixelSpacing 100 mm": dict(spacing=(100.0, 100.0)),
        "PixelSpacing NaN": dict(spacing=(nan, 1.25)),
        "RescaleSlope NaN (NaN pixels)": dict(slope=nan),
        "RescaleSlope 1e30": dict(slope=1e30),
        "RescaleSlope 0 (blank image)": dict(slope=0.0, intercept=0.0),
        "RescaleSlope 0, intercept 7 (constant image)": dict(slope=0.0, intercept=7.0),
        "no TriggerTime": dict(trigger=None),
        "no pixel data": dict(pixel_data=False),
    }
    for what, change in variants.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns while writing a NaN
                folder = write_series(sweep.path("cine"), overrides={key: change for key in every})
        except Exception:  # pydicom cannot even write it
            continue
        sweep.add("DICOM", what, folder)
    one = {(0, 1): dict(spacing=(1.4, 1.25))}
    for what, overrides, skip in (
            ("one file with another PixelSpacing", one, set()),
            ("one file with another orientation", {(1, 2): dict(orientation=[1, 0, 0, 0, 1, 0])}, set()),
            ("one file of another series", {(2, 0): dict(series="1.2.3.4")}, set()),
            ("two images at one trigger time", {(0, 1): dict(trigger=7.0)}, set()),
            ("orientation not orthogonal", {k: dict(orientation=[1, 0, 0, 1, 0, 0]) for k in every}, set()),
            ("a frame missing", {}, {(1, 2)}),
            ("slices 0.01 mm apart", {k: dict(position=DICOM_ORIGIN + 0.01 * k[0] * DICOM_NORMAL) for k in every},
             set())):
        folder = write_series(sweep.path("cine"), overrides=overrides, skip=skip)
        sweep.add("DICOM", what, folder)


def _other(sweep: Sweep) -> None:
    for name in ("empty.h5", "empty.mat", "empty.nii", "empty.nii.gz", "patient001_frame01.nii.gz"):
        path = sweep.path(name)
        path.write_bytes(b"")
        sweep.add("other", f"empty file {name}", path)
    for name, content in (("text.h5", b"hello"), ("text.mat", b"hello world"), ("noise.nii.gz", None),
                          ("noise.h5", None), ("noise.mat", None), ("json.h5", json.dumps({"a": 1}).encode()),
                          ("noise.nii", None), ("X_sa.nii.gz", None), ("Y_SA_ED.nii.gz", None),
                          ("hdf5sig.h5", b"\x89HDF\r\n\x1a\n" + bytes(100)),
                          ("gzip.nii.gz", b"\x1f\x8b\x08" + bytes(50))):
        path = sweep.path(name)
        path.write_bytes(content if content is not None else sweep.rng.bytes(1000))
        sweep.add("other", f"{name} holding other bytes", path)
    folder = sweep.path("empty_folder")
    folder.mkdir()
    sweep.add("other", "empty folder", folder)
    folder = sweep.path("case.h5")
    folder.mkdir()
    sweep.add("other", "folder named like a case file", folder)
    link = sweep.path("dangling.h5")
    link.symlink_to(link.parent / "absent.h5")
    sweep.add("other", "dangling symlink", link)
    loop = sweep.path("loop.h5")
    loop.symlink_to(loop)
    sweep.add("other", "symlink to itself", loop)
    sweep.add("other", "path that does not exist", sweep.root / "nothing" / "here.h5")
    path = sweep.path("notes.txt")
    path.write_text("a text file")
    sweep.add("other", "unsupported suffix", path)


def build_inputs(root: Path) -> list[Input]:
    sweep = Sweep(root)
    for family in (_case_h5, _cmrxrecon, _nifti, _acdc, _dicom, _other):
        family(sweep)
    return sweep.inputs


# ----------------------------------------------------------------------------- the checks


def _names_input(message: str, item: Input) -> bool:
    return item.path.name in message or item.path.parent.name in message


def check(item: Input) -> str | None:
    """None when ``item`` is handled as documented, else what went wrong (one line)."""
    try:
        detect_format(item.path)
    except ValueError:
        pass
    except Exception as err:  # noqa: BLE001 -- the point: no other type may escape
        return f"detect_format raised {type(err).__name__}: {err}"
    for name, reader in (("read_any", read_any), ("describe", describe)):
        try:
            reader(item.path)
        except ValueError as err:
            if "\n" in str(err).strip() or not _names_input(str(err), item):
                return f"{name}: message not one line naming the input: {str(err)[:200]!r}"
            continue
        except Exception as err:  # noqa: BLE001
            return f"{name} raised {type(err).__name__}: {str(err)[:200]}"
        if item.bad:
            return f"{name} accepted it"
    stderr, stdout = io.StringIO(), io.StringIO()
    try:
        with redirect_stderr(stderr), redirect_stdout(stdout):
            status = main(["info", str(item.path)])
    except BaseException as err:  # noqa: BLE001
        return f"cinemri info raised {type(err).__name__}: {str(err)[:200]}"
    lines = stderr.getvalue().strip().splitlines()
    if item.bad and (status != 2 or len(lines) != 1 or not lines[0].startswith("cinemri: error:")):
        return f"cinemri info: status {status}, stderr {stderr.getvalue()[:300]!r}"
    return None


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Input]:
    return build_inputs(tmp_path_factory.mktemp("fuzz"))


def test_sweep_is_a_few_hundred_inputs_from_every_family(inputs):
    counts = Counter(item.kind for item in inputs)
    assert len(inputs) >= 250, counts
    assert all(counts[k] >= 20 for k in ("case .h5", "CMRxRecon .mat", "NIfTI", "ACDC", "DICOM")), counts


def test_every_bad_input_is_refused_with_one_clear_line(inputs):
    failures = [f"{item.kind} / {item.what} ({item.path}): {problem}"
                for item in inputs if (problem := check(item)) is not None]
    assert not failures, f"{len(failures)} of {len(inputs)} inputs mishandled:\n" + "\n".join(failures)


if __name__ == "__main__":  # the table of docs/reliability.md
    import tempfile
    import time

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        items = build_inputs(Path(tmp))
        results = [(item, check(item)) for item in items]
    seconds = time.perf_counter() - start
    print("| family | inputs | handled | must be refused | may read |\n| --- | --- | --- | --- | --- |")
    for kind in dict.fromkeys(item.kind for item in items):
        rows = [(i, r) for i, r in results if i.kind == kind]
        print(f"| {kind} | {len(rows)} | {sum(r is None for _, r in rows)} | {sum(i.bad for i, _ in rows)} | "
              f"{sum(not i.bad for i, _ in rows)} |")
    print(f"| all | {len(results)} | {sum(r is None for _, r in results)} | {sum(i.bad for i, _ in results)} | "
          f"{sum(not i.bad for i, _ in results)} |")
    for item, problem in results:
        if problem is not None:
            print(f"MISHANDLED {item.kind} / {item.what}: {problem}")
    print(f"{len(results)} inputs in {seconds:.1f} s")
    os._exit(0)
