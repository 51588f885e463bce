"""Format detection, ``read_any`` and :func:`describe`, what a reader finds in an input
(the facts behind ``cinemri info PATH``; the clinical indices it also prints come from
:func:`cinemri.clinical.label_indices`, not from here: io knows files, not cardiology)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cinemri.case import Case
from cinemri.io.acdc import is_acdc_folder, read_acdc
from cinemri.io.case_h5 import case_header, is_case_file, read_case
from cinemri.io.cmrxrecon import KSPACE_NAME, MASK_NAME, load_mat_variables, mask_to_ours, read_cmrxrecon
from cinemri.io.dicom import is_dicom_file, is_dicom_folder, read_dicom
from cinemri.io.mnms import mnms_layout, read_mnms
from cinemri.io.nifti import read_nifti_cine

FORMATS = ("cinemri-case", "cmrxrecon", "cmrxrecon-mask", "acdc", "mnms1", "mnms2", "dicom", "nifti")


def detect_format(path: str | os.PathLike) -> str:
    """One of :data:`FORMATS` for ``path``; ValueError naming the path when none fits."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() in (".h5", ".hdf5"):
        if is_case_file(path):
            return "cinemri-case"
        case_header(path)  # raises naming what is wrong: truncated or damaged HDF5, or another HDF5 file
    if path.is_file() and path.suffix.lower() == ".mat":
        names = list(load_mat_variables(path))
        if any(KSPACE_NAME.match(n) for n in names):
            return "cmrxrecon"
        if any(MASK_NAME.match(n) for n in names):
            return "cmrxrecon-mask"
        raise ValueError(f"{path}: .mat file without kspace_full/kspace_subNN/mask variables (has {names})")
    if path.is_dir() and is_acdc_folder(path):
        return "acdc"
    if path.is_file() and path.name.startswith("patient") and is_acdc_folder(path.parent):
        return "acdc"
    layout = mnms_layout(path) if (path.is_dir() or path.name.endswith((".nii", ".nii.gz"))) else None
    if layout is not None:
        return layout[0]
    if is_dicom_folder(path) or is_dicom_file(path):
        return "dicom"
    if path.is_file() and path.name.lower().endswith((".nii", ".nii.gz")):
        return "nifti"  # a plain NIfTI cine (3D or 4D), no labels
    raise ValueError(f"{path}: unknown format (expected a cinemri .h5 case, a CMRxRecon .mat, "
                     "an ACDC patient folder, an M&Ms case, a DICOM cine folder or a NIfTI cine)")


def is_case_path(path: str | os.PathLike) -> bool:
    """True when :func:`detect_format` recognises ``path`` as a case."""
    try:
        detect_format(path)
    except ValueError:
        return False
    return True


def read_any(path: str | os.PathLike) -> Case:
    """Read a case in any supported format (see :func:`detect_format`).

    Returns a :class:`~cinemri.case.Case`. Raises ValueError naming the path for an
    unknown format or a mask-only ``.mat`` (use :func:`cinemri.io.read_mask`).
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "cinemri-case":
        return read_case(path)
    if fmt == "cmrxrecon":
        return read_cmrxrecon(path)
    if fmt == "cmrxrecon-mask":
        raise ValueError(f"{path}: holds only a sampling mask, not a case; read it with read_mask")
    if fmt == "acdc":
        return read_acdc(path if path.is_dir() else path.parent)
    if fmt == "dicom":
        return read_dicom(path)
    if fmt == "nifti":
        return read_nifti_cine(path)
    return read_mnms(path)


def describe(path: str | os.PathLike) -> dict:
    """What the reader of ``path`` finds in it (read with :func:`read_any`; see :func:`describe_case`).

    A mask-only CMRxRecon ``.mat`` gives format, path, frames, phase_encodes and acceleration.
    Raises ValueError naming the path for unknown formats or unreadable inputs.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "cmrxrecon-mask":
        variables = load_mat_variables(path)
        name = next(n for n in variables if MASK_NAME.match(n))
        mask = mask_to_ours(variables[name], str(path))
        return {"format": fmt, "path": str(path), "frames": int(mask.shape[0]),
                "phase_encodes": int(mask.shape[1]), "acceleration": _acceleration(mask)}
    return describe_case(read_any(path), fmt, path)


def describe_case(case: Case, fmt: str, path: str | os.PathLike) -> dict:
    """Summary of a case read from ``path`` in format ``fmt``, for ``cinemri info``.

    Returns a JSON-serialisable dict with, where they apply: format, name, slices, frames,
    coils, readout (H), phase_encodes (W), spacing_mm [dz, dy, dx], spacing_assumed,
    ed_frame, es_frame (0-based indices), ed_frame_number, es_frame_number (the same frames
    in the input's own numbering, e.g. Info.cfg's 1-based ED 1, ES 12) and frame_numbering
    (how that numbering counts), labelled_frames, labels (values present), acceleration
    (W / mean sampled lines per frame, when a mask is present), reference_indices (the
    indices the file records, e.g. a phantom's exact ones). When only some frames of a longer cine were loaded (ACDC
    without its 4D file), frames / ed_frame / es_frame / labelled_frames are in the cine's
    numbering and frames_loaded lists the cine frames present.
    """
    s, t, h, w = case.shape
    info: dict = {"format": fmt, "path": str(path), "name": case.name, "slices": s, "frames": t,
                  "readout": h, "phase_encodes": w,
                  "spacing_mm": [float(v) for v in case.spacing], "spacing_assumed": case.spacing_assumed}
    if case.kspace is not None or case.coil_maps is not None:
        info["coils"] = int((case.kspace if case.kspace is not None else case.coil_maps).shape[1])
    if case.group:
        info["group"] = case.group
    info["ed_frame"], info["es_frame"] = case.ed_frame, case.es_frame
    if case.mask is not None:
        info["acceleration"] = _acceleration(case.mask)
    if case.labels is not None:
        info["labelled_frames"] = list(case.labelled_frames)
        info["labels"] = [int(v) for v in np.unique(case.labels)]
    if case.source_frames:  # a subset of a longer cine: report frames in the cine's numbering
        to_source = list(case.source_frames)
        info["frames"] = case.source_num_frames or t
        info["frames_loaded"] = to_source
        for key in ("ed_frame", "es_frame"):
            if info[key] is not None:
                info[key] = to_source[info[key]]
        if "labelled_frames" in info:
            info["labelled_frames"] = [to_source[f] for f in info["labelled_frames"]]
    info["frame_numbering"] = case.numbering()
    for key in ("ed_frame", "es_frame"):
        index = getattr(case, key)
        info[f"{key}_number"] = None if index is None else case.frame_number(index)
    if case.indices:
        info["reference_indices"] = {k: _json_float(v) for k, v in case.indices.items()}
    return info


def _acceleration(mask: np.ndarray) -> float:
    """W / mean number of sampled lines per frame; mask (T, W) bool."""
    lines = float(np.asarray(mask).sum(axis=1).mean())
    return float("inf") if lines == 0 else round(mask.shape[1] / lines, 4)


def _json_float(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 4)
