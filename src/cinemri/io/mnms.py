"""M&Ms-1 and M&Ms-2 short-axis NIfTI cases (Campello et al. 2021; Martin-Isla et al. 2023).

M&Ms-1: ``<ID>/<ID>_sa.nii.gz`` (X, Y, Z, T) and ``<ID>_sa_gt.nii.gz`` (labels at ED and ES
only); ED/ES (0-based) from the dataset CSV when given, else the labelled frames (ED = the
one with the larger LV volume).
M&Ms-2: ``<ID>_SA_ED.nii.gz``, ``<ID>_SA_ED_gt.nii.gz``, ``<ID>_SA_ES.nii.gz``,
``<ID>_SA_ES_gt.nii.gz`` (3D each) -> T = 2 frames (ED = 0, ES = 1).
Labels are remapped to ACDC's: file 1 LV, 2 MYO, 3 RV -> 3, 2, 1. Axes as in
:mod:`cinemri.io.nifti`: (X, Y, Z[, T]) -> (S=Z, T, H=X, W=Y).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np

from cinemri.case import Case
from cinemri.io.nifti import read_label_volume, read_volume
from cinemri.io.validate import check_case
from cinemri.labels import MNMS_TO_ACDC  # re-exported by cinemri.io

_SA_RE = re.compile(r"^(?P<id>.+)_sa\.nii(\.gz)?$")
_SA2_RE = re.compile(r"^(?P<id>.+)_SA_(?P<phase>ED|ES)\.nii(\.gz)?$")


def mnms_layout(path: str | os.PathLike) -> tuple[str, str, Path] | None:
    """Recognise an M&Ms case: ("mnms1" | "mnms2", case id, folder), or None.

    path: a case folder, an ``<ID>_sa.nii.gz`` file or an ``<ID>_SA_ED/ES.nii.gz`` file.
    """
    path = Path(path)
    candidates = sorted(path.iterdir()) if path.is_dir() else [path]
    folder = path if path.is_dir() else path.parent
    for p in candidates:
        if m := _SA_RE.match(p.name):
            return "mnms1", m["id"], folder
    for p in candidates:
        if m := _SA2_RE.match(p.name):
            return "mnms2", m["id"], folder
    return None


def read_mnms(path: str | os.PathLike, info_csv: str | os.PathLike | None = None) -> Case:
    """Read an M&Ms-1 or M&Ms-2 case (folder or image file).

    info_csv: M&Ms-1 dataset CSV with columns "External code", "ED", "ES" (0-based).
    Returns Case with image (S, T, H, W) complex64 (magnitude), labels (S, T, H, W) uint8 in
    ACDC order at the labelled frames (others zero), spacing (dz, dy, dx) mm and affine
    from the header.
    Raises ValueError naming the path for an unrecognised layout, missing files,
    mismatched grids, label values outside {0, 1, 2, 3}, implausible spacing or an unusable
    image (NaN/Inf, blank, constant; see :mod:`cinemri.io.validate`).
    """
    layout = mnms_layout(path)
    if layout is None:
        raise ValueError(f"{path}: no <ID>_sa.nii.gz or <ID>_SA_ED.nii.gz M&Ms file found")
    kind, case_id, folder = layout
    if kind == "mnms1":
        return _read_mnms1(folder, case_id, info_csv)
    return _read_mnms2(folder, case_id)


def _find(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / f"{stem}.nii.gz", folder / f"{stem}.nii") if p.is_file()), None)


def _read_mnms1(folder: Path, case_id: str, info_csv) -> Case:
    image_path = _find(folder, f"{case_id}_sa")
    image, affine, spacing = read_volume(image_path)
    labels, labelled = None, ()
    gt_path = _find(folder, f"{case_id}_sa_gt")
    if gt_path is not None:
        labels, _ = read_label_volume(gt_path, remap=MNMS_TO_ACDC)
        if labels.shape != image.shape:
            raise ValueError(f"{gt_path}: labels {labels.shape} do not match image {image.shape} as (S, T, H, W)")
        labelled = tuple(int(t) for t in np.flatnonzero(labels.any(axis=(0, 2, 3))))
    ed, es = _ed_es_from_csv(info_csv, case_id, image.shape[1]) if info_csv is not None else (None, None)
    if ed is None and len(labelled) == 2:
        lv = [(labels[:, t] == 3).sum() for t in labelled]
        ed, es = (labelled[0], labelled[1]) if lv[0] >= lv[1] else (labelled[1], labelled[0])
    case = Case(name=case_id, spacing=spacing, image=image.astype(np.complex64), labels=labels,
                ed_frame=ed, es_frame=es, labelled_frames=labelled, source=str(folder), affine=affine)
    return check_case(case, content=False)  # the image was checked in read_volume


def _ed_es_from_csv(info_csv, case_id: str, num_frames: int) -> tuple[int, int]:
    path = Path(info_csv)
    if not path.is_file():
        raise ValueError(f"{path}: no such M&Ms information CSV")
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("External code", "").strip() == case_id:
                try:
                    ed, es = int(row["ED"]), int(row["ES"])
                except (KeyError, ValueError) as err:
                    raise ValueError(f"{path}: row {case_id} needs integer ED and ES, got {row}") from err
                for name, t in (("ED", ed), ("ES", es)):
                    if not 0 <= t < num_frames:
                        raise ValueError(f"{path}: {name}={t} for {case_id} is outside its {num_frames} frames")
                return ed, es
    raise ValueError(f"{path}: no row with External code {case_id!r}")


def _read_mnms2(folder: Path, case_id: str) -> Case:
    images, labels, labelled = [], [], []
    affine, spacing = None, None
    for t, phase in enumerate(("ED", "ES")):
        image_path = _find(folder, f"{case_id}_SA_{phase}")
        if image_path is None:
            raise ValueError(f"{folder}: missing {case_id}_SA_{phase}.nii.gz")
        image, a, s = read_volume(image_path)  # (S, 1, H, W)
        if images and image.shape != images[0].shape:
            raise ValueError(f"{image_path}: grid {image.shape} differs from the ED image {images[0].shape}")
        affine, spacing = (a, s) if affine is None else (affine, spacing)
        images.append(image)
        gt_path = _find(folder, f"{case_id}_SA_{phase}_gt")
        if gt_path is not None:
            gt, _ = read_label_volume(gt_path, remap=MNMS_TO_ACDC)
            if gt.shape != image.shape:
                raise ValueError(f"{gt_path}: labels {gt.shape} do not match image {image.shape}")
            labelled.append(t)
        else:
            gt = np.zeros(image.shape, dtype=np.uint8)
        labels.append(gt)
    case = Case(name=case_id, spacing=spacing, image=np.concatenate(images, axis=1).astype(np.complex64),
                labels=np.concatenate(labels, axis=1) if labelled else None, ed_frame=0, es_frame=1,
                labelled_frames=tuple(labelled), source=str(folder), affine=affine)
    return check_case(case, content=False)  # the images were checked file by file in read_volume
