"""Static figures: slice montage with contours and volume-over-time curves (PNG).

Rendered with matplotlib's object API (``Figure`` + Agg canvas), so importing this
module never changes the user's pyplot backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from cinemri.case import Case
from cinemri.files import atomic_write
from cinemri.labels import LV, MYO, RV
from cinemri.report._display import (
    LABEL_NAMES,
    STYLE,
    check_case,
    choose_frames,
    display_orientation,
    heart_box,
    labelled_frames,
    magnitude,
    structure_mask,
    window,
)

_DPI = 150
_MAX_FIG_WIDTH_IN = 12.0
_PANEL_WIDTH_IN = 2.2
_TITLE_IN = 0.22  # height reserved above each panel for its title
_LINE_IN = 0.17  # height of one line of the figure title
_LEGEND_IN = 0.2  # height of the legend row under the figure title
_TARGET_ASPECT = 4.0 / 3.0  # montage grid is arranged to be about this wide / tall
_CHAR_IN = 0.075  # width of one character of the 8 pt figure title (generous, so it never clips)


def _rgb01(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255.0 for c in rgb)  # type: ignore[return-value]


def _grid(num_slices: int, num_frames: int, panel_aspect: float) -> tuple[int, int]:
    """(rows, slice groups per row) for a montage of ``num_slices`` groups of ``num_frames`` panels.

    panel_aspect: physical width / height of one panel. Groups per row are chosen so the
    whole grid is closest to 4:3 landscape.
    """
    best, best_cost = (num_slices, 1), math.inf
    for per_row in range(1, num_slices + 1):
        rows = math.ceil(num_slices / per_row)
        if per_row > 1 and rows * per_row - num_slices >= per_row:
            continue  # an empty last row
        aspect = per_row * num_frames * panel_aspect / rows
        cost = abs(math.log(aspect / _TARGET_ASPECT))
        if cost < best_cost - 1e-9:
            best, best_cost = (rows, per_row), cost
    return best


def _save_png(fig: Figure, out_path: str | os.PathLike) -> Path:
    FigureCanvasAgg(fig)
    return atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI, facecolor="white"))


def slice_montage(case: Case, out_path: str | os.PathLike, frames: Sequence[int] | None = None, *,
                  crop_to_heart: bool = False, contours: str = "ground truth") -> Path:
    """PNG montage of every slice (grid, in slice order) x ED and ES (side by side).

    Magnitude images (from ``case.image``, or the RSS of the zero-filled k-space) in grey,
    windowed to [0, 99.5th percentile of the shown images]; label borders drawn as thin
    contours (RV, MYO epicardium, LV endocardium) wherever the shown frame has labels.
    Pixels are drawn with their physical aspect (dy, dx), in the radiological short-axis
    view (RV on the viewer's left, see :func:`~cinemri.report._display.display_orientation`;
    the figure says how it was decided). Each panel is titled with its slice index, ED/ES
    and frame number in the input's own numbering (:meth:`Case.frame_number`, named in the
    figure title); the figure title says how the frames were chosen when
    ``case.ed_frame``/``case.es_frame`` are unknown, and whose contours are drawn.

    case: :class:`~cinemri.case.Case` with image (S, T, H, W) complex64 or kspace
        (S, C, T, H, W) complex64; labels (S, T, H, W) uint8 or None
    out_path: PNG file, written atomically (parent folders are created)
    frames: frame indices to show as columns instead of ED/ES
    crop_to_heart: show only a square box around the labels of the shown frames
        (20 mm margin, the same box in every panel); without labels there the figure says
        it is not cropped
    contours: whose labels ``case.labels`` are, named in the title and legend ("ground
        truth", "predicted")
    returns ``out_path``

    Raises ValueError when the case has neither image nor k-space, shapes disagree,
    or a frame index is out of range.
    """
    s_count, _, h, w = check_case(case)
    shown, names, note = choose_frames(case, frames)
    slices = list(range(s_count))
    with_labels = set(labelled_frames(case))
    box = heart_box(case, shown) if crop_to_heart else None
    y0, y1, x0, x1 = box if box is not None else (0, h, 0, w)
    orient = display_orientation(case, [f for f in shown if f in with_labels])
    images = orient.apply(window(magnitude(case, slices, shown)[..., y0:y1, x0:x1]))  # (S, F, h, w) in [0, 1]
    h, w = images.shape[-2:]
    dz = case.spacing[0]
    dy, dx = orient.spacing(*case.spacing[1:])

    source = "image" if case.image is not None else "zero-filled k-space, RSS of coils"
    show_legend = case.labels is not None and any(f in with_labels for f in shown)
    lines = [f"{case.name} ({source})" + (f"; contours: {contours}" if show_legend else ""),
             f"{s_count} slices, {dy:.3g}×{dx:.3g} mm pixels, {dz:.3g} mm apart"
             + (f", cropped to the heart ({w * dx:.0f}×{h * dy:.0f} mm)" if box is not None else "")
             + (", not cropped: no labels to find the heart" if crop_to_heart and box is None else ""),
             f"{orient.how}; frames: {case.numbering()}"]
    if note:
        lines.append(note)
    header_in = 0.08 + _LINE_IN * len(lines) + (_LEGEND_IN if show_legend else 0.0)

    panel_aspect = (w * dx) / (h * dy)
    nf = len(shown)
    rows, per_row = _grid(s_count, nf, panel_aspect)
    cols = per_row * nf
    panel_w = min(_PANEL_WIDTH_IN, _MAX_FIG_WIDTH_IN / cols)
    panel_h = panel_w / panel_aspect
    gap_in = 0.06  # extra space between slice groups
    fig_w = max(cols * panel_w + (per_row - 1) * gap_in,  # a narrow montage keeps its whole title:
                _CHAR_IN * max(len(line) for line in lines) + 0.2)  # the figure is at least as wide
    fig_h = rows * (panel_h + _TITLE_IN) + header_in
    fig = Figure(figsize=(fig_w, fig_h))
    outer = fig.add_gridspec(rows, per_row, left=0.004, right=0.996, bottom=0.004,
                             top=1.0 - (header_in + _TITLE_IN) / fig_h,
                             hspace=_TITLE_IN / panel_h, wspace=gap_in / (nf * panel_w))
    axes = np.empty((rows, cols), dtype=object)
    for r in range(rows):
        for g in range(per_row):
            inner = outer[r, g].subgridspec(1, nf, wspace=0.02)
            for fi in range(nf):
                axes[r, g * nf + fi] = fig.add_subplot(inner[0, fi])
    extent = (0.0, w * dx, h * dy, 0.0)
    x = (np.arange(w) + 0.5) * dx
    y = (np.arange(h) + 0.5) * dy
    shown_labels = (orient.apply(case.labels[np.ix_(slices, shown)][..., y0:y1, x0:x1])
                    if case.labels is not None else None)  # (S, F, h, w) as displayed
    for ax in axes.flat:
        ax.set_axis_off()
    for si, s in enumerate(slices):
        for fi, (f, name) in enumerate(zip(shown, names)):
            ax = axes[si // per_row, (si % per_row) * nf + fi]
            ax.imshow(images[si, fi], cmap="gray", vmin=0.0, vmax=1.0, extent=extent,
                      interpolation="nearest")
            number = case.frame_number(f)
            label = f"frame {number}" if name.startswith("t=") else f"{name} frame {number}"
            ax.set_title(f"slice {s} · {label}", fontsize=7, pad=2)
            if shown_labels is None or f not in with_labels:
                continue
            for k, rgb in STYLE.label_colours().items():
                mask = structure_mask(shown_labels[si, fi], k)
                if mask.any():
                    ax.contour(x, y, mask.astype(np.float32), levels=[0.5], colors=[_rgb01(rgb)],
                               linewidths=STYLE.contour_linewidth_pt)
    fig.text(0.5, 1.0 - 0.05 / fig_h, "\n".join(lines), ha="center", va="top", fontsize=8,
             linespacing=1.3)
    if show_legend:
        handles = [Line2D([], [], color=_rgb01(rgb), lw=1.5, label=f"{LABEL_NAMES[k]}, {contours}")
                   for k, rgb in STYLE.label_colours().items()]
        fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=7, frameon=False,
                   bbox_to_anchor=(0.5, 1.0 - (0.06 + _LINE_IN * len(lines)) / fig_h),
                   handlelength=1.5, borderaxespad=0.0, borderpad=0.0)
    return _save_png(fig, out_path)


_CURVE_KEYS = {"RV": RV, "MYO": MYO, "LV": LV}
_CURVE_NAMES = {RV: "RV", MYO: "MYO", LV: "LV"}


def _curves(volumes: Mapping, argname: str) -> dict[int, np.ndarray]:
    """{label: (T,) float64} from keys 1/2/3 or 'RV'/'MYO'/'LV'."""
    if not volumes:
        raise ValueError(f"{argname} must hold at least one curve, got {volumes!r}")
    out: dict[int, np.ndarray] = {}
    for key, values in volumes.items():
        label = _CURVE_KEYS.get(key.upper()) if isinstance(key, str) else key
        if label not in _CURVE_NAMES:
            raise ValueError(f"{argname}: unknown structure {key!r}; use 1/2/3 or 'RV'/'MYO'/'LV'")
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"{argname}[{key!r}] must be a non-empty (T,) curve, got shape {values.shape}")
        out[int(label)] = values
    lengths = {v.size for v in out.values()}
    if len(lengths) != 1:
        raise ValueError(f"{argname}: curves have different lengths {sorted(lengths)}")
    return out


def volume_curves_figure(volumes_ml: Mapping, ed_frame: int | None, es_frame: int | None,
                         out_path: str | os.PathLike, reference: Mapping | None = None,
                         title: str | None = None, frame_number: Callable[[int], int] | None = None,
                         numbering: str | None = None) -> Path:
    """PNG of LV / RV / MYO volume over the cardiac cycle, with ED and ES marked.

    volumes_ml: {structure: (T,) volumes in ml}, structure as label 1/2/3 (the keys of
        :func:`cinemri.clinical.volume_curves_ml`) or 'RV'/'MYO'/'LV'
    ed_frame, es_frame: 0-based frames marked by vertical lines (None: not marked)
    reference: optional curves in the same form, drawn dashed in the same colours
        (e.g. ground truth beside a prediction); must have the same T
    title: figure title
    frame_number: the input's own number of a 0-based frame index (e.g.
        :meth:`Case.frame_number`), used for the frame axis and the ED/ES marks; default the index
    numbering: how those numbers count, shown in the axis label (e.g. "Info.cfg numbering, 1-based")
    returns ``out_path`` (written atomically)

    Raises ValueError on unknown structures, curves of different lengths or frames out of range.
    """
    curves = _curves(volumes_ml, "volumes_ml")
    t = next(iter(curves.values())).size
    refs = _curves(reference, "reference") if reference is not None else {}
    if refs and next(iter(refs.values())).size != t:
        raise ValueError(f"reference curves have {next(iter(refs.values())).size} frames, volumes_ml has {t}")
    for name, f in (("ed_frame", ed_frame), ("es_frame", es_frame)):
        if f is not None and not 0 <= f < t:
            raise ValueError(f"{name}={f} is outside the {t} frames")

    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.subplots()
    number = frame_number or (lambda index: index)
    frames = np.array([number(i) for i in range(t)])  # (T,) in the input's numbering
    colours = STYLE.curve_colours()
    for label in (LV, RV, MYO):
        if label in curves:
            ax.plot(frames, curves[label], color=_rgb01(colours[label]), lw=1.8, marker="o", ms=2.5,
                    label=_CURVE_NAMES[label])
        if label in refs:
            ax.plot(frames, refs[label], color=_rgb01(colours[label]), lw=1.2, ls="--",
                    label=f"{_CURVE_NAMES[label]} (reference)")
    for name, f in (("ED", ed_frame), ("ES", es_frame)):
        if f is not None:
            f = number(f)
            ax.axvline(f, color="0.35", lw=0.9, ls=":")
            ax.annotate(f"{name} ({f})", xy=(f, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -2), textcoords="offset points", ha="left", va="top", fontsize=8,
                        color="0.25")
    ax.set_xlim(frames.min() - 0.5, frames.max() + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # frames are whole numbers
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(f"frame ({numbering})" if numbering else "frame")
    ax.set_ylabel("volume (ml)")
    ax.grid(True, color="0.9", lw=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save_png(fig, out_path)
