"""Reconstruction comparison: reference vs methods at ED and ES (PNG), side-by-side cine (GIF).

Magnitudes are windowed to [0, 99.5th percentile of the reference cine] for every method
alike; error maps show |method| - |reference| magnitudes' absolute difference, scaled to
``error_gain`` times that window (stated in the figure).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from cinemri.files import atomic_write
from cinemri.report._display import STYLE

_DPI = 120
_PANEL_IN = 2.0


def _magnitude(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{name} must be a (T, H, W) cine, got shape {x.shape}")
    return np.abs(x).astype(np.float64)


def _checked(reference: np.ndarray, methods: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    ref = _magnitude(reference, "reference")
    if not methods:
        raise ValueError("methods must hold at least one reconstruction")
    mags = {}
    for name, image in methods.items():
        mags[name] = _magnitude(image, f"methods[{name!r}]")
        if mags[name].shape != ref.shape:
            raise ValueError(f"methods[{name!r}] has shape {mags[name].shape}, reference {ref.shape}")
    return ref, mags


def _window(ref: np.ndarray) -> float:
    top = float(np.percentile(ref, STYLE.window_percentile))
    return top if top > 0 else float(ref.max()) or 1.0


def recon_comparison_figure(reference: np.ndarray, methods: Mapping[str, np.ndarray], frames: Mapping[str, int],
                            out_path: str | os.PathLike, *, title: str = "", error_gain: float = 5.0,
                            scores: Mapping[str, str] | None = None) -> Path:
    """PNG grid: per frame of ``frames`` one row of images and one row of error maps.

    reference: (T, H, W) complex or real; methods: name -> (T, H, W) like reference;
    frames: row label -> frame index, e.g. {"ED": 0, "ES": 5}; scores: name -> text shown
    under the method's name (e.g. "PSNR 31.2 dB"); error maps show ||x| - |ref|| x error_gain.
    returns ``out_path`` (written atomically).

    Raises:
        ValueError: shapes differ, no methods, or a frame index out of range.
    """
    ref, mags = _checked(reference, methods)
    t = ref.shape[0]
    for label, index in frames.items():
        if not 0 <= index < t:
            raise ValueError(f"frames[{label!r}] = {index} is outside the {t} frames")
    top = _window(ref)
    cols = 1 + len(mags)
    rows = 2 * len(frames)
    fig = Figure(figsize=(_PANEL_IN * cols, _PANEL_IN * rows + 0.5), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, (label, index) in enumerate(frames.items()):
        image_row, error_row = axes[2 * r], axes[2 * r + 1]
        image_row[0].imshow(ref[index], cmap="gray", vmin=0, vmax=top)
        image_row[0].set_title(f"reference\n{label} (frame {index})", fontsize=8)
        error_row[0].text(0.5, 0.5, f"|error| x {error_gain:g}", ha="center", va="center", fontsize=8)
        for c, (name, mag) in enumerate(mags.items(), start=1):
            image_row[c].imshow(mag[index], cmap="gray", vmin=0, vmax=top)
            extra = f"\n{scores[name]}" if scores and name in scores else ""
            image_row[c].set_title(f"{name}{extra}", fontsize=8)
            error_row[c].imshow(np.abs(mag[index] - ref[index]) * error_gain, cmap="inferno", vmin=0, vmax=top)
        for ax in (*image_row, *error_row):
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png"))


def recon_comparison_gif(reference: np.ndarray, methods: Mapping[str, np.ndarray], out_path: str | os.PathLike,
                         *, fps: float | None = None, scale: int = 2) -> Path:
    """Looping GIF: reference and each method side by side over the cardiac cycle.

    reference: (T, H, W) complex or real; methods: name -> (T, H, W); every panel windowed
    to [0, 99.5th percentile of the reference]; pixels enlarged ``scale`` times (nearest);
    fps default T / STYLE.cycle_seconds (one cycle a second). returns ``out_path``.

    Raises:
        ValueError: shapes differ, no methods, scale < 1 or fps not positive.
    """
    ref, mags = _checked(reference, methods)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    t, h, w = ref.shape
    fps = t / STYLE.cycle_seconds if fps is None else fps
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    top = _window(ref)
    panels = {"reference": ref, **mags}
    label_h = 14
    font = ImageFont.load_default()
    frames = []
    for index in range(t):
        canvas = Image.new("L", (len(panels) * w * scale, h * scale + label_h), 0)
        draw = ImageDraw.Draw(canvas)
        for c, (name, mag) in enumerate(panels.items()):
            grey = np.clip(mag[index] / top, 0, 1) * 255  # (H, W)
            tile = Image.fromarray(grey.round().astype(np.uint8), mode="L").resize((w * scale, h * scale),
                                                                                   Image.NEAREST)
            canvas.paste(tile, (c * w * scale, label_h))
            draw.text((c * w * scale + 2, 1), name, fill=255, font=font)
        draw.text((2, label_h + 2), f"t={index}", fill=255, font=font)
        frames.append(canvas)

    def write(tmp: Path) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=int(round(1000.0 / fps)), loop=0)

    return atomic_write(out_path, write)
