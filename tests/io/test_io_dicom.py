"""DICOM cine series: slice order from IOP x IPP, frame order, rescale, spacing, bad series."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from cinemri.cli import main
from cinemri.io import describe, detect_format, read_any, read_dicom


H, W = 12, 10  # Rows, Columns
S, T = 3, 4
DY, DX, DZ = 1.5, 1.25, 7.5  # mm
SLOPE, INTERCEPT = 2.0, -5.0
# An oblique short-axis orientation: row direction (along W) and column direction (along H).
ROW = np.array([0.6, 0.8, 0.0])
COL = np.array([-0.48, 0.36, 0.8])
NORMAL = np.cross(ROW, COL)  # unit: ROW and COL are orthonormal
ORIGIN = np.array([-40.0, 12.5, 30.0])


def stored_value(s: int, t: int) -> np.ndarray:
    """(H, W) int16 stored pixels of slice s (in true order) and frame t: unique per (s, t, pixel)."""
    return (100 * s + 10 * t + np.arange(H * W).reshape(H, W) % 7).astype(np.int16)


def write_image(path: Path, pixels: np.ndarray, *, position, trigger: float | None, slice_location: float,
                orientation=None, series: str = "1.2.826.0.1.3680043.8.498.1", spacing=(DY, DX),
                slope: float = SLOPE, intercept: float = INTERCEPT, instance: int = 1,
                cardiac_images: int | None = T, pixel_data: bool = True) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "MR", series, instance
    orientation = np.concatenate([ROW, COL]) if orientation is None else np.asarray(orientation)
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.ImagePositionPatient = [f"{v:.5f}" for v in position]
    ds.SliceLocation = f"{slice_location:.3f}"
    ds.SliceThickness, ds.SpacingBetweenSlices = "6", "10"  # deliberately not the measured 7.5 mm
    if trigger is not None:
        ds.TriggerTime = f"{trigger:.3f}"
    if cardiac_images is not None:
        ds.CardiacNumberOfImages = cardiac_images
    ds.PixelSpacing = [f"{v:.4f}" for v in spacing]
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    if pixel_data:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = pixels.astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(folder: Path, *, seed: int = 0, skip: set[tuple[int, int]] = frozenset(),
                 overrides: dict[tuple[int, int], dict] | None = None) -> Path:
    """S x T images of an oblique stack, written in shuffled order under meaningless names.

    Slice s (true order, ascending along the normal) lies at (s - 1) * DZ mm from ORIGIN; its
    SliceLocation runs the other way round with a wrong step, and frame t of slice s is at
    TriggerTime 30 t + 3 s + 7 ms. ``overrides[(s, t)]`` are extra write_image arguments.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = [(s, t) for s in range(S) for t in range(T) if (s, t) not in skip]
    names = rng.permutation(len(items)) + 1
    for (s, t), number in zip([items[i] for i in rng.permutation(len(items))], names):
        shift = 3.0 * s * ROW - 2.0 * s * COL  # in-plane offsets must not matter
        position = ORIGIN + (s - 1) * DZ * NORMAL + shift
        kwargs = dict(position=position, trigger=30.0 * t + 3 * s + 7, slice_location=[4.0, 9.0, -1.0][s],
                      instance=int(number))
        kwargs.update((overrides or {}).get((s, t), {}))
        write_image(folder / f"{number}.dcm", stored_value(s, t), **kwargs)
    return folder


@pytest.fixture
def series(tmp_path) -> Path:
    return write_series(tmp_path / "cine")


def test_reads_oblique_series_in_normal_order(series):
    case = read_dicom(series)
    assert detect_format(series) == "dicom"
    assert case.image.shape == (S, T, H, W) and case.image.dtype == np.complex64
    assert case.name == "cine" and case.labels is None
    assert case.ed_frame is None and case.es_frame is None and not case.spacing_assumed
    expected = np.stack([np.stack([stored_value(s, t) * SLOPE + INTERCEPT for t in range(T)])
                         for s in range(S)])  # (S, T, H, W)
    np.testing.assert_array_equal(case.image.real, expected)
    assert not case.image.imag.any()


def test_spacing_from_pixel_spacing_and_measured_positions(series):
    dz, dy, dx = read_dicom(series).spacing
    assert (dy, dx) == (DY, DX)
    assert dz == pytest.approx(DZ, abs=1e-3)  # not SpacingBetweenSlices (10) nor SliceThickness (6)


def test_affine_maps_voxels_to_patient_positions(series):
    case = read_dicom(series)
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for i, j, s in ((0, 0, 0), (H - 1, 2, 1), (5, W - 1, S - 1)):
        ipp = ORIGIN + (s - 1) * DZ * NORMAL + 3.0 * s * ROW - 2.0 * s * COL
        world = ipp + i * DY * COL + j * DX * ROW  # LPS, row index i runs along COL
        # in-plane offsets between slices are not in a 4x4 affine: compare along the normal and at s = 0
        got = (case.affine @ [i, j, s, 1.0])[:3] * lps_to_ras
        assert (got - world) @ NORMAL == pytest.approx(0.0, abs=1e-3)
        if s == 0:
            np.testing.assert_allclose(got, world, atol=1e-3)


def test_one_file_reads_its_series_and_others_are_skipped(series):
    (series / "contours").mkdir()
    (series / "contours" / "IM-0001-0001-icontour-manual.txt").write_text("1 2\n3 4\n")
    (series / "link.csv").write_text("a,b\n")
    (series / "notes.txt").write_text("not dicom")
    other = write_image(series / "z_other.dcm", stored_value(0, 0), position=ORIGIN, trigger=0.0,
                        slice_location=0.0, series="1.2.826.0.1.3680043.8.498.2")
    one = next(p for p in sorted(series.glob("*.dcm")) if p != other)
    case = read_any(one)
    assert case.image.shape == (S, T, H, W)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(series))}: holds 2 series"):
        read_dicom(series)


def test_single_slice_uses_header_spacing(tmp_path):
    folder = write_series(tmp_path / "one", skip={(s, t) for s in (1, 2) for t in range(T)})
    case = read_dicom(folder)
    assert case.image.shape == (1, T, H, W) and case.spacing == (10.0, DY, DX)


@pytest.mark.parametrize("what, arguments, message", [
    ("orientation", {"overrides": {(1, t): {"orientation": [1, 0, 0, 0, 1, 0]} for t in range(T)}},
     "mixed image orientations"),
    ("missing frame", {"skip": {(2, 3)}}, r"unequal numbers of frames \[4, 4, 3\]"),
    ("missing in all", {"skip": {(s, 3) for s in range(S)}}, "3 frames but CardiacNumberOfImages is 4"),
    ("duplicate", {"overrides": {(0, 1): {"trigger": 7.0}}}, "both at TriggerTime 7.0 ms in slice 0"),
    ("series", {"overrides": {(2, t): {"series": "1.2.3.9"} for t in range(T)}}, "holds 2 series"),
    ("spacing", {"overrides": {(0, t): {"spacing": (1.0, 1.0)} for t in range(T)}}, "mixed PixelSpacing"),
    ("gap", {"overrides": {(2, t): {"position": ORIGIN + 2 * DZ * NORMAL} for t in range(T)}},
     r"uneven slice distances \[7.5, 15.0\]"),
])
def test_bad_series_name_the_folder(tmp_path, what, arguments, message):
    folder = write_series(tmp_path / "bad", **arguments)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(folder))}: .*{message}") as err:
        read_dicom(folder)
    assert "\n" not in str(err.value)


def test_mixed_image_sizes(tmp_path):
    folder = write_series(tmp_path / "bad", skip={(0, 0)})
    write_image(folder / "odd.dcm", np.zeros((H + 1, W), np.int16), position=ORIGIN - DZ * NORMAL,
                trigger=7.0, slice_location=4.0)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(folder))}: mixed image size \(Rows, Columns\): "
                                         r"\(12, 10\) in 11 files, \(13, 10\) in 1 files$"):
        read_dicom(folder)


def test_bad_files_name_the_file(tmp_path):
    folder = write_series(tmp_path / "notrigger", overrides={(1, 2): {"trigger": None}})
    with pytest.raises(ValueError, match=r"notrigger/\d+\.dcm: TriggerTime missing"):
        read_dicom(folder)
    folder = write_series(tmp_path / "nopixels")
    write_image(folder / "report.dcm", None, position=ORIGIN, trigger=1.0, slice_location=0.0, pixel_data=False)
    with pytest.raises(ValueError, match=r"nopixels/report\.dcm: DICOM file without pixel data"):
        read_dicom(folder)
    folder = write_series(tmp_path / "truncated")
    victim = sorted(folder.glob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes()[:-50])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(victim))}: "):
        read_dicom(folder)


def test_folder_without_dicom_images(tmp_path):
    folder = tmp_path / "empty_cine"
    folder.mkdir()
    (folder / "1.dcm").write_text("not a DICOM file")
    (folder / "notes.txt").write_text("hello")
    assert detect_format(folder) == "dicom"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(folder))}: no DICOM images"):
        read_any(folder)


def test_cli_info_good_and_bad_series(tmp_path, capsys):
    good = write_series(tmp_path / "good")
    assert main(["info", str(good), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "dicom" and (info["slices"], info["frames"]) == (S, T)
    assert (info["readout"], info["phase_encodes"]) == (H, W)
    assert info["spacing_mm"] == pytest.approx([DZ, DY, DX], abs=1e-3)
    bad = write_series(tmp_path / "bad", skip={(1, 0)})
    assert main(["info", str(bad)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1
    assert lines[0].startswith(f"cinemri: error: {bad}: slices have unequal numbers of frames")
