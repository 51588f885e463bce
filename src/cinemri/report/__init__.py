"""Figures and animations a person looks at: slice montages, cine GIFs, volume curves, and the
self-contained HTML report of ``cinemri analyze``.

All writers take a :class:`~cinemri.case.Case` (or curves) and an output path, write the
file atomically and return its path. Rendering uses matplotlib's Agg canvas and Pillow
directly, so the user's pyplot backend is never touched.
"""

from cinemri.report._display import LABEL_NAMES, STYLE, ReportStyle, labelled_frames, mid_ventricular_slice
from cinemri.report.animation import cine_gif, gif_size
from cinemri.report.figures import slice_montage, volume_curves_figure
from cinemri.report.html import write_report
from cinemri.report.show import show_case

__all__ = [
    "LABEL_NAMES",
    "STYLE",
    "ReportStyle",
    "cine_gif",
    "gif_size",
    "labelled_frames",
    "mid_ventricular_slice",
    "show_case",
    "slice_montage",
    "volume_curves_figure",
    "write_report",
]
