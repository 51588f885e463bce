"""``cinemri recon predict`` and ``cinemri seg predict``: one input file in, its reconstruction or
its label maps out, with every setting read from the checkpoint (:mod:`cinemri.recon.inference`,
:mod:`cinemri.seg.inference`).

- recon: a cinemri case ``.h5`` holding the reconstructed cine (the input's shape and spacing);
- seg: label maps as NIfTI (the input's affine and shape) and as a cinemri case ``.h5``
  (image + predicted labels).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import numpy as np

from cinemri.case import Case
from cinemri.data import center_crop_or_pad
from cinemri.files import check_output_dir
from cinemri.io import read_any, read_cmrxrecon, write_case, write_labels_nifti
from cinemri.pipeline.weights import resolve_checkpoint
from cinemri.recon.inference import (acquisition_options, inference_samples, is_undersampled, load_reconstructor,
                                     reconstruct_samples)
from cinemri.seg.inference import load_segmenter, predict_case, test_time_options

_FRAME_RE = re.compile(r"_frame(\d+)\.nii(\.gz)?$")


def _read_kspace_input(path: Path, mask_path: str | os.PathLike | None) -> Case:
    """A CMRxRecon ``.mat`` (with its mask file) or any other case :func:`read_any` reads."""
    if path.suffix.lower() == ".mat":
        return read_cmrxrecon(path, mask_path=mask_path)
    if mask_path is not None:
        raise ValueError(f"--mask is only for CMRxRecon .mat inputs, got {path}")
    return read_any(path)


def predict_recon(input_path: str | os.PathLike, checkpoint: str | os.PathLike, out_path: str | os.PathLike,
                  acceleration: float | None = None, mask_path: str | os.PathLike | None = None,
                  name: str | None = None) -> Path:
    """Reconstruct a case and write it as a cinemri ``.h5`` case (atomic, via write_case).

    input_path: a cinemri case (.h5) or CMRxRecon ``.mat``. Undersampled k-space (a mask in
    the file or ``mask_path``) is reconstructed as acquired, coil maps from the file or
    estimated from its calibration lines; a fully sampled input (k-space, or image + coil
    maps) needs ``acceleration`` and is undersampled with the checkpoint's mask settings,
    seeded per slice. The cascade runs fully convolutionally on the whole field of view at
    the input's size (the config's training ``data.crop`` is not applied), so the output has
    the input's shape and spacing. The output keeps labels, spacing, ED/ES, group and indices
    of the input, and its name unless ``name`` is given.

    Raises:
        ValueError: a bad checkpoint or input, ``acceleration`` missing for a fully sampled
            input or given for an undersampled one.
    """
    input_path, out_path = Path(input_path), Path(out_path)
    case = _read_kspace_input(input_path, mask_path)  # a bad input (or mask) is refused before the model loads
    loaded = load_reconstructor(checkpoint)
    if is_undersampled(case) and acceleration is not None:
        raise ValueError(f"{input_path} is already undersampled; drop --acceleration")
    if not is_undersampled(case) and acceleration is None:
        raise ValueError(f"{input_path} is fully sampled; give --acceleration to undersample it")
    samples = inference_samples(case, acquisition_options(loaded.config.data, acceleration))
    image, _ = reconstruct_samples(samples, "model", loaded.model, autocast=loaded.autocast)  # (S, T, H, W)
    labels = case.labels
    if labels is not None and labels.shape[-2:] != image.shape[-2:]:
        labels = center_crop_or_pad(labels, image.shape[-2:])
    result = replace(case, name=name or case.name, image=image, labels=labels, kspace=None, mask=None,
                     coil_maps=None, source=str(input_path), noise_std=0.0)
    return write_case(result, out_path)


def _acdc_frame_files(case_source: str, name: str) -> list[Path]:
    """ACDC frame image files of a patient folder, in frame order (the T axis without a 4D file)."""
    folder = Path(case_source)
    if not folder.is_dir() or (folder / f"{name}_4d.nii.gz").is_file():
        return []
    return sorted((p for p in folder.iterdir() if _FRAME_RE.search(p.name)),
                  key=lambda p: int(_FRAME_RE.search(p.name).group(1)))


def predict_seg(input_path: str | os.PathLike, checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike, *,
                test_time: Mapping[str, bool | None] | None = None, device: str = "cpu") -> list[Path]:
    """Segment every frame of ``input_path`` with ``checkpoint`` (default: the bundled
    segmenter) and write the results to ``out_dir``; ``test_time`` replaces the checkpoint's
    test-time options (see :func:`cinemri.seg.inference.test_time_options`).

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
    case = read_any(input_path)
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
