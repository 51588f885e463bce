"""Cine animations: one slice over the cardiac cycle as a looping GIF, drawn with Pillow.

Frames are paletted images with a fixed palette: grey levels for the image and exact
Okabe-Ito colours for the contours (see :class:`~cinemri.report._display.ReportStyle`),
so a contour pixel in the GIF has exactly its structure's colour.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cinemri.case import Case
from cinemri.files import atomic_write
from cinemri.labels import LV, MYO, RV
from cinemri.report._display import (
    STYLE,
    check_case,
    choose_frames,
    display_orientation,
    labelled_frames,
    magnitude,
    mid_ventricular_slice,
    structure_mask,
    window,
)

_GREY_LEVELS = 250  # palette entries 0..249: black..white
_WHITE = _GREY_LEVELS - 1
_LABEL_INDEX = {RV: 250, MYO: 251, LV: 252}  # palette entries of the contour colours
_LEGEND = ((RV, "RV"), (MYO, "MYO"), (LV, "LV"))
_MAX_FPS = 50.0  # GIF frame delays are in 1/100 s; browsers slow down faster ones


def _palette() -> list[int]:
    grey = np.linspace(0, 255, _GREY_LEVELS).round().astype(int)
    pal = np.zeros((256, 3), dtype=int)
    pal[:_GREY_LEVELS] = grey[:, None]
    for label, index in _LABEL_INDEX.items():
        pal[index] = STYLE.label_colours()[label]
    return pal.ravel().tolist()


def gif_size(h: int, w: int, dy: float, dx: float) -> tuple[int, int]:
    """(height, width) in pixels of the GIF frames of an (H, W) image with spacing (dy, dx) mm.

    Square display pixels at the finest native spacing, then scaled so the shorter side is
    at least ``STYLE.gif_min_px`` and, where that allows, the longer side at most ``STYLE.gif_max_px``.
    """
    ph, pw = h * dy, w * dx  # physical size in mm
    px_per_mm = 1.0 / min(dy, dx)
    px_per_mm = max(px_per_mm, STYLE.gif_min_px / min(ph, pw))
    if max(ph, pw) * px_per_mm > STYLE.gif_max_px:
        px_per_mm = max(STYLE.gif_max_px / max(ph, pw), STYLE.gif_min_px / min(ph, pw))
    return max(1, math.ceil(ph * px_per_mm - 1e-6)), max(1, math.ceil(pw * px_per_mm - 1e-6))


def _resize(plane: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (H, W) float image to ``size_hw``; returns float32."""
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(img.resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """4-neighbour binary erosion; pixels outside the image count as background."""
    out = mask.copy()
    for _ in range(iterations):
        padded = np.pad(out, 1, constant_values=False)
        out = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
               & padded[1:-1, :-2] & padded[1:-1, 2:])
    return out


def _border(mask: np.ndarray, size_hw: tuple[int, int], thickness: int) -> np.ndarray:
    """Inner border of a label mask after smooth (bilinear, threshold 0.5) upsampling.

    mask: (H, W) bool  ->  (H', W') bool, ``thickness`` pixels wide
    """
    up = _resize(mask.astype(np.float32), size_hw) >= 0.5
    return up & ~_erode(up, thickness)


def _font(size_px: int):
    """Pillow's built-in font at ``size_px`` (scalable since Pillow 10.1; bitmap before)."""
    try:
        return ImageFont.load_default(size=size_px)
    except TypeError:
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, fill: int, font, align: str) -> int:
    """Write ``text`` with a black outline; ``xy`` is its top-left ('tl'), top-right ('tr')
    or bottom-left ('bl') corner. Returns the text width in pixels."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=1)
    x = xy[0] - x1 if align == "tr" else xy[0] - x0
    y = xy[1] - y1 if align == "bl" else xy[1] - y0
    draw.text((x, y), text, fill=fill, font=font, stroke_width=1, stroke_fill=0)
    return x1 - x0


def cine_gif(case: Case, out_path: str | os.PathLike, slice_index: int | None = None,
             contours: bool = True, fps: float | None = None) -> Path:
    """Looping animated GIF of one slice over the cardiac cycle.

    Magnitude (from ``case.image``, or the RSS of the zero-filled k-space) windowed to
    [0, 99.5th percentile of the slice's cine], upsampled bilinearly to square pixels of
    the size given by :func:`gif_size` (shorter side >= 256 px). On frames with labels the
    borders of RV, MYO (epicardium) and LV (endocardium) are drawn in their exact palette
    colours with a small legend; every frame shows its number in the input's own numbering
    (:meth:`Case.frame_number`) over the last one, ED/ES when known, and the slice index.
    Shown in the radiological short-axis view (RV on the viewer's left, see
    :func:`~cinemri.report._display.display_orientation`).

    case: :class:`~cinemri.case.Case` with image (S, T, H, W) complex64 or kspace
        (S, C, T, H, W) complex64; labels (S, T, H, W) uint8 or None
    out_path: GIF file, written atomically (parent folders are created)
    slice_index: slice to show; default the mid-ventricular slice (middle of the slices
        with LV in a labelled frame, else S // 2)
    contours: draw label borders where labels exist
    fps: frames per second; default T / ``STYLE.cycle_seconds`` (one cycle a second), at most 50
    returns ``out_path``; the GIF has T frames of (height, width) = ``gif_size(H, W, dy, dx)``

    Raises ValueError when the case has neither image nor k-space, shapes disagree,
    ``slice_index`` is out of range or ``fps`` is not positive.
    """
    s_count, t_count, h, w = check_case(case)
    if slice_index is None:
        slice_index = mid_ventricular_slice(case)
    if not 0 <= slice_index < s_count:
        raise ValueError(f"slice_index={slice_index} is outside the {s_count} slices of case {case.name!r}")
    if fps is None:
        fps = min(_MAX_FPS, t_count / STYLE.cycle_seconds)
    if not (np.isfinite(fps) and 0 < fps <= _MAX_FPS):
        raise ValueError(f"fps must be in (0, {_MAX_FPS:g}], got {fps!r}")

    orient = display_orientation(case)
    dy, dx = orient.spacing(*case.spacing[1:])
    cine = orient.apply(window(magnitude(case, [slice_index], range(t_count))[0]))  # (T, H', W') in [0, 1]
    planes = orient.apply(case.labels[slice_index]) if case.labels is not None else None  # (T, H', W')
    size_hw = gif_size(*cine.shape[-2:], dy, dx)
    thickness = max(1, round(min(size_hw) / 320))
    font_px = max(10, min(size_hw) // 22)
    font = _font(font_px)
    margin = max(3, font_px // 3)
    shown_labels = set(labelled_frames(case)) if contours and case.labels is not None else set()
    ed_es, names, _ = choose_frames(case, None)
    tags = {f: f"  {n}" for f, n in zip(ed_es, names) if n in ("ED", "ES")}
    palette = _palette()
    last = case.frame_number(t_count - 1)

    frames = []
    for t in range(t_count):
        grey = np.clip(_resize(cine[t], size_hw), 0.0, 1.0)
        index = np.rint(grey * (_GREY_LEVELS - 1)).astype(np.uint8)  # (H', W') palette indices
        drawn = False
        if t in shown_labels:
            for label, pal_index in _LABEL_INDEX.items():
                mask = structure_mask(planes[t], label)
                if mask.any():
                    index[_border(mask, size_hw, thickness)] = pal_index
                    drawn = True
        frame = Image.fromarray(index, mode="P")
        frame.putpalette(palette)
        draw = ImageDraw.Draw(frame)
        _text(draw, (margin, margin), f"frame {case.frame_number(t)}/{last}{tags.get(t, '')}", _WHITE, font, "tl")
        _text(draw, (size_hw[1] - margin, margin), f"slice {slice_index}", _WHITE, font, "tr")
        if drawn:
            x = margin
            for label, name in _LEGEND:
                x += _text(draw, (x, size_hw[0] - margin), name, _LABEL_INDEX[label], font, "bl") + margin
        frames.append(frame)

    delay_ms = int(round(1000.0 / fps))

    def write(tmp: Path) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=delay_ms,
                       loop=0, optimize=False, disposal=1)

    return atomic_write(out_path, write)
