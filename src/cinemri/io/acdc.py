"""ACDC patient folders (Bernard et al., IEEE TMI 2018).

A folder ``patientXXX/`` holds ``Info.cfg`` (``key: value`` lines; ED/ES are 1-based),
optionally ``patientXXX_4d.nii.gz`` (X, Y, Z, T), and ``patientXXX_frameYY.nii.gz`` with
``patientXXX_frameYY_gt.nii.gz`` for YY = ED and ES. Axes follow :mod:`cinemri.io.nifti`:
(X, Y, Z, T) -> (S=Z, T, H=X, W=Y). Labels are ACDC's own (0 bg, 1 RV, 2 MYO, 3 LV).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from cinemri.case import Case
from cinemri.io.nifti import read_label_volume, read_volume
from cinemri.io.validate import check_case

_FRAME_RE = re.compile(r"^(?P<pid>patient\d+)_frame(?P<num>\d+)\.nii(\.gz)?$")


def read_info_cfg(path: str | os.PathLike) -> dict[str, str]:
    """Parse an ACDC ``Info.cfg`` into {key: value} strings.

    Raises ValueError naming the file when it cannot be read, is not UTF-8 text, or has a
    line that is not ``key: value``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file (byte {err.start} is not UTF-8)") from err
    except OSError as err:
        raise ValueError(f"{path}: unreadable ({err.strerror or err})") from err
    if "\x00" in text:
        raise ValueError(f"{path}: not a text file (holds NUL bytes)")
    info: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if ":" not in line:
            raise ValueError(f"{path}: line {number} is not 'key: value': {line!r}")
        key, value = line.split(":", 1)
        info[key.strip()] = value.strip()
    return info


def is_acdc_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding ``Info.cfg`` or ``patientXXX_frameYY.nii.gz`` files."""
    path = Path(path)
    return path.is_dir() and ((path / "Info.cfg").is_file()
                              or any(_FRAME_RE.match(p.name) for p in path.iterdir()))


def read_acdc(folder: str | os.PathLike) -> Case:
    """Read one ACDC patient folder.

    With the 4D file: image (S, T, H, W) from it, labels (S, T, H, W) uint8 filled at the
    ED and ES frames (other frames zero). Without it: T = the frames that have files
    (normally ED and ES, in frame order) and ed_frame/es_frame index into those.
    image is complex64 (the magnitude, zero imaginary part). spacing (dz, dy, dx) mm and
    the affine come from the NIfTI header. labelled_frames lists frames with a _gt file.
    Raises ValueError naming the folder or file for a missing Info.cfg/ED/ES, missing
    frame files, mismatched shapes, label values outside {0, 1, 2, 3}, implausible spacing
    or an unusable image (NaN/Inf, blank, constant; see :mod:`cinemri.io.validate`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not an ACDC patient folder")
    cfg = folder / "Info.cfg"
    if not cfg.is_file():
        raise ValueError(f"{folder}: missing Info.cfg")
    info = read_info_cfg(cfg)
    try:
        ed_number, es_number = int(info["ED"]), int(info["ES"])  # 1-based
    except (KeyError, ValueError) as err:
        raise ValueError(f"{cfg}: needs integer 'ED' and 'ES' entries, got {info}") from err
    frame_files = {int(m["num"]): folder / p.name for p in folder.iterdir() if (m := _FRAME_RE.match(p.name))}
    pid = folder.name
    four_d = next((p for p in (folder / f"{pid}_4d.nii.gz", folder / f"{pid}_4d.nii") if p.is_file()), None)
    if four_d is not None:
        image, affine, spacing = read_volume(four_d)
        numbers = list(range(1, image.shape[1] + 1))  # frame number of each T index
    else:
        numbers = sorted(set(frame_files) | {ed_number, es_number})
        missing = [n for n in numbers if n not in frame_files]
        if missing:
            raise ValueError(f"{folder}: no 4D file and no image for frame(s) {missing} (ED={ed_number}, "
                             f"ES={es_number} in Info.cfg)")
        volumes = [read_volume(frame_files[n]) for n in numbers]
        _check_same_grid([(str(frame_files[n]), v[0].shape) for n, v in zip(numbers, volumes)], folder)
        image = np.concatenate([v[0] for v in volumes], axis=1)  # (S, T, H, W)
        affine, spacing = volumes[0][1], volumes[0][2]
    for label, number in (("ED", ed_number), ("ES", es_number)):
        if number not in numbers:
            raise ValueError(f"{cfg}: {label}={number} is outside the {len(numbers)} frames")
    labels, labelled = _read_labels(folder, pid, numbers, image.shape)
    subset = four_d is None  # only the frames with files were loaded
    try:
        nb_frames = int(float(info["NbFrame"])) if info.get("NbFrame", "").strip() else None
    except (ValueError, OverflowError) as err:  # int(float("inf")) overflows
        raise ValueError(f"{cfg}: NbFrame must be a number, got {info['NbFrame']!r}") from err
    return check_case(Case(
        name=pid, spacing=spacing, image=image.astype(np.complex64), labels=labels,
        ed_frame=numbers.index(ed_number), es_frame=numbers.index(es_number),
        group=info.get("Group"), labelled_frames=labelled, source=str(folder), affine=affine,
        source_frames=tuple(n - 1 for n in numbers) if subset else (),
        source_num_frames=nb_frames, frame_base=1, frame_numbering="Info.cfg numbering, 1-based",
    ), content=False)  # the images were checked file by file in read_volume


def _read_labels(folder: Path, pid: str, numbers: list[int], shape: tuple[int, ...]
                 ) -> tuple[np.ndarray | None, tuple[int, ...]]:
    gt_re = re.compile(rf"^{re.escape(pid)}_frame(?P<num>\d+)_gt\.nii(\.gz)?$")
    gts = {int(m["num"]): p for p in folder.iterdir() if (m := gt_re.match(p.name))}
    if not gts:
        return None, ()
    labels = np.zeros(shape, dtype=np.uint8)  # (S, T, H, W)
    labelled = []
    for number in sorted(gts):
        if number not in numbers:
            raise ValueError(f"{gts[number]}: frame {number} is outside the {len(numbers)} frames of the case")
        gt, _ = read_label_volume(gts[number])  # (S, 1, H, W)
        if gt.shape[0] != shape[0] or gt.shape[2:] != shape[2:]:
            raise ValueError(f"{gts[number]}: label volume {gt.shape[::2]} does not match image (S, H, W) "
                             f"{(shape[0],) + tuple(shape[2:])}")
        t = numbers.index(number)
        labels[:, t] = gt[:, 0]
        labelled.append(t)
    return labels, tuple(labelled)


def _check_same_grid(shapes: list[tuple[str, tuple[int, ...]]], folder: Path) -> None:
    first = shapes[0][1]
    for name, shape in shapes[1:]:
        if shape[0] != first[0] or shape[2:] != first[2:]:
            raise ValueError(f"{folder}: {name} has grid {shape} but {shapes[0][0]} has {first}")
