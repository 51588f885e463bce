"""``cinemri seg predict``: label maps of an input as NIfTI (the input's affine and shape) and
as a cinemri case ``.h5`` (image + predicted labels)."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import numpy as np

from cinemri.analysis.weights import resolve_checkpoint
from cinemri.experiments.seg_infer import load_segmenter, predict_case, read_input, test_time_options
from cinemri.files import check_output_dir
from cinemri.io import write_case, write_labels_nifti

_FRAME_RE = re.compile(r"_frame(\d+)\.nii(\.gz)?$")


def _acdc_frame_files(case_source: str, name: str) -> list[Path]:
    """ACDC frame image files of a patient folder, in frame order (the T axis without a 4D file)."""
    folder = Path(case_source)
    if not folder.is_dir() or (folder / f"{name}_4d.nii.gz").is_file():
        return []
    return sorted((p for p in folder.iterdir() if _FRAME_RE.search(p.name)),
                  key=lambda p: int(_FRAME_RE.search(p.name).group(1)))


def predict(input_path: str | os.PathLike, checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike, *,
            test_time: Mapping[str, bool | None] | None = None, device: str = "cpu") -> list[Path]:
    """Segment every frame of ``input_path`` with ``checkpoint`` (default: the bundled
    segmenter) and write the results to ``out_dir``; ``test_time`` replaces the checkpoint's
    test-time options (see :func:`cinemri.experiments.seg_infer.test_time_options`).

    Writes ``<name>_seg.nii.gz`` (uint8 labels, 0 bg 1 RV 2 MYO 3 LV; 3D (X, Y, Z) when the
    input has one frame, else 4D (X, Y, Z, T); the input's affine), for an ACDC folder without
    a 4D file one ``<name>_frameYY_seg.nii.gz`` per frame file (its shape and affine), and
    ``<name>.h5`` (a cinemri case: the magnitude image, the labels, all frames labelled).
    Returns the paths written. ``out_dir`` is checked before any work
    (:func:`cinemri.files.check_output_dir`: ValueError when it is a file, OSError when it
    cannot be written) and created only once the labels are ready.
    """
    out = check_output_dir(out_dir)
    model, cfg = load_segmenter(resolve_checkpoint(checkpoint, "seg"), device)
    case = read_input(input_path)
    labels = predict_case(model, case, cfg, test_time=test_time_options(cfg, **dict(test_time or {})),
                          device=device)  # (S, T, H, W) uint8
    out.mkdir(parents=True, exist_ok=True)
    written = []
    frame_files = _acdc_frame_files(case.source, case.name)
    if frame_files and len(frame_files) == labels.shape[1]:
        for t, frame_file in enumerate(frame_files):
            stem = frame_file.name.split(".nii")[0]
            written.append(write_labels_nifti(labels[:, t], out / f"{stem}_seg.nii.gz", reference=case))
    else:
        written.append(write_labels_nifti(labels, out / f"{case.name}_seg.nii.gz", reference=case))
    image = np.abs(case.image).astype(np.complex64)  # (S, T, H, W)
    labelled = replace(case, image=image, labels=labels, kspace=None, mask=None, coil_maps=None,
                       labelled_frames=tuple(range(labels.shape[1])))
    written.append(write_case(labelled, out / f"{case.name}.h5"))
    return written
