"""``show_case``: every picture of one case in a folder (backs ``cinemri show CASE --out DIR``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from cinemri.case import Case
from cinemri.clinical import compute_indices, detect_ed_es, volume_curves_ml
from cinemri.files import check_output_dir
from cinemri.labels import LV
from cinemri.report._display import check_case, labelled_frames
from cinemri.report.animation import cine_gif
from cinemri.report.figures import slice_montage, volume_curves_figure


def _file_stem(name: str) -> str:
    """Case name made safe as a file name (path separators and odd characters -> '_')."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return stem or "case"


def show_case(case: Case, out_dir: str | os.PathLike, *, crop_to_heart: bool = False) -> list[Path]:
    """Write ``<name>_montage.png``, ``<name>_cine.gif`` and, when every frame of a cine of
    three or more frames is labelled, ``<name>_volumes.png`` into ``out_dir`` (created if needed).

    case: :class:`~cinemri.case.Case` with image (S, T, H, W) complex64 or kspace
        (S, C, T, H, W) complex64; labels (S, T, H, W) uint8 or None
    crop_to_heart: crop the montage to the labelled region (see :func:`slice_montage`; the
        montage says when there is nothing labelled to crop to)
    returns the written paths in that order

    The volume figure marks ``case.ed_frame``/``case.es_frame`` or, when unknown, the
    frames of largest/smallest LV volume, and gives LV EF in its title.
    Raises ValueError when the case has neither image nor k-space or its arrays disagree.
    """
    _, t_count, _, _ = check_case(case)
    out_dir = check_output_dir(out_dir, "out_dir")
    stem = _file_stem(case.name)
    paths = [slice_montage(case, out_dir / f"{stem}_montage.png", crop_to_heart=crop_to_heart),
             cine_gif(case, out_dir / f"{stem}_cine.gif")]
    if case.labels is not None and len(labelled_frames(case)) == t_count and t_count >= 3:
        curves = volume_curves_ml(case.labels, case.spacing)
        if curves[LV].max() > 0:
            ed, es = case.ed_frame, case.es_frame
            if ed is None or es is None:
                ed_auto, es_auto = detect_ed_es(curves[LV])
                ed = ed_auto if ed is None else ed
                es = es_auto if es is None else es
            idx = compute_indices(case.labels, case.spacing, ed, es)
            title = (f"{case.name}: LV EDV {idx.lv_edv_ml:.0f} ml, ESV {idx.lv_esv_ml:.0f} ml, "
                     f"EF {idx.lv_ef_pct:.1f} %; RV EF {idx.rv_ef_pct:.1f} %")
            paths.append(volume_curves_figure(curves, ed, es, out_dir / f"{stem}_volumes.png", title=title,
                                              frame_number=case.frame_number, numbering=case.numbering()))
    return paths
