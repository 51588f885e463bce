"""DICOM short-axis cine series: one folder, one file per image (e.g. Sunnybrook).

Geometry comes from the patient coordinates, never from ``SliceLocation`` (often oblique
or plainly wrong): the slice normal is n = row x col of ``ImageOrientationPatient`` and an
image's position along it is ``ImagePositionPatient . n`` (mm). Images within
``POSITION_TOLERANCE_MM`` of each other form one slice; slices are sorted by ascending
position along n, frames within a slice by ``TriggerTime``. Pixels are stored (Rows,
Columns) = our (H, W) with no flips or transposes; ``PixelSpacing`` = (row spacing, column
spacing) = (dy, dx) and dz is the median distance between neighbouring slice positions.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.config import disable_value_validation
from pydicom.errors import InvalidDicomError

from cinemri.case import Case
from cinemri.io.validate import check_case

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
POSITION_TOLERANCE_MM = 0.1  # images closer than this along the normal belong to one slice
ORIENTATION_TOLERANCE = 1e-3  # max difference of ImageOrientationPatient cosines within a series
SPACING_TOLERANCE = 0.1  # neighbouring slice distances may differ from their median by this fraction
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class _Image:
    """Header of one image file, as far as the reader needs it."""

    path: Path
    dataset: pydicom.Dataset
    series_uid: str
    orientation: np.ndarray  # (6,) row cosines then column cosines
    position: np.ndarray  # (3,) ImagePositionPatient, mm (DICOM LPS)
    trigger_ms: float
    size: tuple[int, int]  # (Rows, Columns) = (H, W)
    pixel_spacing: tuple[float, float]  # (dy, dx) mm


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a file named ``*.dcm``/``*.dicom``/``*.ima`` or holding the ``DICM`` preamble."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def is_dicom_folder(path: str | os.PathLike, max_probe: int = 8) -> bool:
    """True for a folder with a DICOM-named file, or a DICOM preamble in one of its first files.

    max_probe: how many other files have their first 132 bytes read (keeps detection cheap).
    """
    path = Path(path)
    if not path.is_dir():
        return False
    files = sorted(p for p in path.iterdir() if p.is_file())
    if any(p.suffix.lower() in DICOM_SUFFIXES for p in files):
        return True
    return any(is_dicom_file(p) for p in files[:max_probe])


def read_dicom(path: str | os.PathLike) -> Case:
    """Read one DICOM cine series from a folder (or the folder of one of its files).

    path: a folder with one file per image; sub-folders and files that are not DICOM are
        skipped. Given a file, only the images of that file's series in its folder are read.
    Returns Case with image (S, T, H, W) complex64 (the rescaled magnitude,
    ``value * RescaleSlope + RescaleIntercept`` as float32, zero imaginary part), spacing
    (dz, dy, dx) mm, affine (4, 4) NIfTI (RAS) voxel-to-world of voxel axes (H, W, S),
    name = the folder's name, and no labels or ED/ES (a cine carries none).
    Raises ValueError (one line, naming the folder or file) for: no DICOM images, a DICOM
    file without pixel data or with unreadable pixels, multi-frame or colour images,
    more than one series, missing ImageOrientationPatient / ImagePositionPatient /
    PixelSpacing / TriggerTime, mixed orientations, image sizes or pixel spacings, two
    images at one trigger time of a slice, unequal frame counts between slices, fewer
    frames than CardiacNumberOfImages, uneven slice distances (a missing slice), NaN/Inf
    values, and whatever :func:`cinemri.io.validate.check_case` refuses (implausible
    PixelSpacing or slice distance, a blank, constant or contrast-free image), like every
    other reader.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such DICOM file or folder")
    folder = path if path.is_dir() else path.parent
    with warnings.catch_warnings(), disable_value_validation():
        warnings.simplefilter("ignore")  # pydicom warns on non-standard values; the checks below decide
        images = _read_headers(folder)
        if not images:
            raise ValueError(f"{folder}: no DICOM images (no file with pixel data that reads as DICOM)")
        images = _one_series(images, folder, path if path.is_file() else None)
        orientation, normal = _common_orientation(images, folder)
        _check_same(images, folder, "image size (Rows, Columns)", lambda im: im.size)
        _check_same(images, folder, "PixelSpacing", lambda im: tuple(round(v, 3) for v in im.pixel_spacing))
        slices = _group_slices(images, normal)
        _check_frames(slices, folder)
        positions = np.array([float(s[0].position @ normal) for s in slices])  # (S,)
        dz = _slice_distance(slices, positions, folder)
        image = np.stack([np.stack([_pixels(im) for im in frames]) for frames in slices])  # (S, T, H, W)
    dy, dx = images[0].pixel_spacing
    affine = _affine(orientation, [s[0].position for s in slices], normal, (dz, dy, dx))
    return check_case(Case(name=folder.name, spacing=(dz, dy, dx), image=image.astype(np.complex64),
                           source=str(folder), affine=affine))


def _read_headers(folder: Path) -> list[_Image]:
    images = []
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(file)
        except InvalidDicomError:
            continue  # not DICOM (contours, CSV, notes): skipped
        except Exception as err:  # pydicom raises many types for damaged files
            raise ValueError(f"{file}: unreadable DICOM file ({type(err).__name__}: {err})") from err
        sop_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
        if sop_class == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
            continue  # a DICOMDIR index, not an image
        if not any(k in ds for k in _PIXEL_KEYWORDS):
            raise ValueError(f"{file}: DICOM file without pixel data (not an image, or truncated; SOP class "
                             f"{ds.get('SOPClassUID', '?')}); remove it from the series folder")
        images.append(_header(file, ds))
    return images


def _header(file: Path, ds: pydicom.Dataset) -> _Image:
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise ValueError(f"{file}: multi-frame (enhanced) DICOM with {ds.NumberOfFrames} frames is not supported; "
                         "expected one file per image")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise ValueError(f"{file}: {ds.SamplesPerPixel} samples per pixel; expected a greyscale image")
    values = {}
    for keyword, length in (("ImageOrientationPatient", 6), ("ImagePositionPatient", 3), ("PixelSpacing", 2),
                            ("TriggerTime", 1)):
        raw = ds.get(keyword)
        try:
            numbers = np.atleast_1d(np.asarray([] if raw is None or raw == "" else raw, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{file}: {keyword} is not numeric ({raw!r})") from err
        if numbers.shape != (length,) or not np.isfinite(numbers).all():
            what = "missing" if numbers.size == 0 else f"has {numbers.tolist()}, expected {length} finite numbers"
            raise ValueError(f"{file}: {keyword} {what}" + ("; a cine needs it to order frames"
                                                            if keyword == "TriggerTime" else ""))
        values[keyword] = numbers
    spacing = tuple(float(v) for v in values["PixelSpacing"])
    if min(spacing) <= 0:
        raise ValueError(f"{file}: PixelSpacing {list(spacing)} must be positive mm")
    return _Image(path=file, dataset=ds, series_uid=str(ds.get("SeriesInstanceUID", "")),
                  orientation=values["ImageOrientationPatient"], position=values["ImagePositionPatient"],
                  trigger_ms=float(values["TriggerTime"][0]), size=(int(ds.Rows), int(ds.Columns)),
                  pixel_spacing=spacing)


def _one_series(images: list[_Image], folder: Path, chosen: Path | None) -> list[_Image]:
    if chosen is not None:
        match = next((im for im in images if im.path.resolve() == chosen.resolve()), None)
        if match is None:
            raise ValueError(f"{chosen}: not a DICOM image with pixel data")
        return [im for im in images if im.series_uid == match.series_uid]
    series = sorted({im.series_uid for im in images})
    if len(series) > 1:
        raise ValueError(f"{folder}: holds {len(series)} series (SeriesInstanceUID differs); keep one series per "
                         "folder or pass one file of the series to read")
    return images


def _common_orientation(images: list[_Image], folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(orientation (6,), unit slice normal (3,)) shared by all images."""
    orientation = images[0].orientation
    distinct = {tuple(np.round(im.orientation, 3)) for im in images
                if np.abs(im.orientation - orientation).max() > ORIENTATION_TOLERANCE}
    if distinct:
        raise ValueError(f"{folder}: mixed image orientations ({len(distinct) + 1} different "
                         "ImageOrientationPatient values); expected one short-axis stack")
    row, col = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(col) - 1) > 0.01 or abs(row @ col) > 0.01:
        raise ValueError(f"{images[0].path}: ImageOrientationPatient {orientation.tolist()} is not two "
                         "orthogonal unit vectors")
    normal = np.cross(row, col)
    return orientation, normal / np.linalg.norm(normal)


def _check_same(images: list[_Image], folder: Path, what: str, key) -> None:
    counts: dict = {}
    for im in images:
        counts[key(im)] = counts.get(key(im), 0) + 1
    if len(counts) > 1:
        listing = ", ".join(f"{k} in {n} files" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        raise ValueError(f"{folder}: mixed {what}: {listing}")


def _group_slices(images: list[_Image], normal: np.ndarray) -> list[list[_Image]]:
    """Images grouped into slices by position along ``normal`` (ascending), frames by TriggerTime."""
    ordered = sorted(images, key=lambda im: float(im.position @ normal))
    slices: list[list[_Image]] = []
    for im in ordered:
        if slices and float(im.position @ normal) - float(slices[-1][0].position @ normal) <= POSITION_TOLERANCE_MM:
            slices[-1].append(im)
        else:
            slices.append([im])
    return [sorted(frames, key=lambda im: (im.trigger_ms, im.path.name)) for frames in slices]


def _check_frames(slices: list[list[_Image]], folder: Path) -> None:
    for s, frames in enumerate(slices):
        for a, b in zip(frames, frames[1:]):
            if abs(a.trigger_ms - b.trigger_ms) < 1e-3:
                raise ValueError(f"{folder}: {a.path.name} and {b.path.name} are both at TriggerTime "
                                 f"{a.trigger_ms} ms in slice {s} (duplicate images?)")
    counts = [len(frames) for frames in slices]
    if len(set(counts)) > 1:
        raise ValueError(f"{folder}: slices have unequal numbers of frames {counts} (missing frames?)")
    declared = {int(v) for frames in slices for im in frames
                if (v := im.dataset.get("CardiacNumberOfImages")) not in (None, "") and int(v) > 0}
    if len(declared) == 1 and counts[0] != (expected := declared.pop()):
        raise ValueError(f"{folder}: each slice has {counts[0]} frames but CardiacNumberOfImages is {expected} "
                         + ("(missing frames?)" if counts[0] < expected else "(several slices at one position?)"))


def _slice_distance(slices: list[list[_Image]], positions: np.ndarray, folder: Path) -> float:
    """dz (mm): median distance between neighbouring slices; one slice: the header's spacing."""
    if len(slices) == 1:
        ds = slices[0][0].dataset
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = ds.get(keyword)
            if value not in (None, "") and float(value) > 0:
                return float(value)
        raise ValueError(f"{folder}: a single slice without SpacingBetweenSlices or SliceThickness; "
                         "the slice distance is unknown")
    steps = np.diff(positions)  # (S-1,)
    dz = round(float(np.median(steps)), 4)  # 0.1 um: drops float noise of the header values
    if np.abs(steps - dz).max() > max(SPACING_TOLERANCE * dz, POSITION_TOLERANCE_MM):
        raise ValueError(f"{folder}: uneven slice distances {np.round(steps, 2).tolist()} mm along the slice "
                         "normal (a missing slice?)")
    return dz


def _pixels(im: _Image) -> np.ndarray:
    """(H, W) float32 rescaled image of one file."""
    ds = im.dataset
    try:
        raw = ds.pixel_array
    except Exception as err:  # missing decoder plugins, truncated data, ...
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "?")
        raise ValueError(f"{im.path}: cannot decode pixel data ({type(err).__name__}: {err}; "
                         f"transfer syntax {syntax})") from err
    if raw.shape != im.size:
        raise ValueError(f"{im.path}: pixel data of shape {raw.shape}, expected (Rows, Columns) {im.size}")
    slope = float(ds.get("RescaleSlope", 1) if ds.get("RescaleSlope", "") != "" else 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope == 0 or not np.isfinite(slope):
        raise ValueError(f"{im.path}: RescaleSlope {slope:g} (every pixel would be {intercept:g})")
    image = (raw.astype(np.float64) * slope + intercept).astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError(f"{im.path}: image contains NaN or Inf")
    return image


def _affine(orientation: np.ndarray, positions: list[np.ndarray], normal: np.ndarray,
            spacing: tuple[float, float, float]) -> np.ndarray:
    """(4, 4) NIfTI (RAS) voxel-to-world matrix of voxel axes (H, W, S) from DICOM (LPS) geometry."""
    dz, dy, dx = spacing
    row, col = orientation[:3], orientation[3:]  # row: along W (columns), col: along H (rows)
    step = (positions[-1] - positions[0]) / (len(positions) - 1) if len(positions) > 1 else normal * dz
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = col * dy, row * dx, step, positions[0]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS -> RAS
