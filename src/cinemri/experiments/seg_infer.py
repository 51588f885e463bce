"""Segmentation inference: a trained checkpoint -> label maps on each case's original grid.

Each slice is resampled to the training spacing (no crop: the whole field of view), run
through the network (optionally with flip test-time augmentation: the mean softmax of the
image and its H, W and H+W mirrors), and its class probabilities are mapped back to the
original (H, W) grid (:meth:`cinemri.data.seg.SliceGrid.restore_probabilities`) before the
argmax, so outputs keep the input's shape and affine exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from cinemri.case import Case
from cinemri.data.seg import SliceGrid
from cinemri.experiments.seg_config import SegExperiment, experiment_from_dict
from cinemri.seg.models import build_segmenter
from cinemri.seg.postprocess import postprocess_frames
from cinemri.train import check_model, load_checkpoint, load_model_state


def load_segmenter(checkpoint: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, SegExperiment]:
    """(model in eval mode on ``device``, the experiment it was trained with) from a checkpoint.

    Raises:
        ValueError: unreadable checkpoint, not a segmentation checkpoint, weights that do not fit.
    """
    state = load_checkpoint(checkpoint, map_location=device)
    try:
        cfg = experiment_from_dict(state["config"])
    except ValueError as err:
        raise ValueError(f"checkpoint {checkpoint}: not a segmentation experiment ({err})") from err
    check_model(state, checkpoint, cfg.model.name, cfg.model.args)
    model = build_segmenter(cfg.model.name, cfg.model.args)
    load_model_state(model, state, checkpoint)
    return model.to(device).eval(), cfg


@torch.no_grad()
def _probabilities(model: nn.Module, images: torch.Tensor, flip_tta: bool) -> torch.Tensor:
    """images: (B, 1, h, w) float32 -> softmax (B, K, h, w) float32 (mean over flips with TTA)."""
    flips: list[tuple[int, ...]] = [()] + ([(-1,), (-2,), (-2, -1)] if flip_tta else [])
    total = None
    for dims in flips:
        x = images.flip(dims) if dims else images
        out = model(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        probs = torch.softmax(out.float(), dim=1)  # (B, K, h, w)
        probs = probs.flip(dims) if dims else probs
        total = probs if total is None else total + probs
    return total / len(flips)


def largest_components(labels: np.ndarray, structures: tuple[int, ...] = (1, 2, 3)) -> np.ndarray:
    """Keep only the largest face-connected component of each structure (others -> background).

    labels: (S, H, W) integer -> same shape and dtype.
    """
    out = labels.copy()
    for value in structures:
        mask = labels == value
        components, count = ndimage.label(mask)
        if count > 1:
            sizes = ndimage.sum_labels(mask, components, index=np.arange(1, count + 1))
            out[mask & (components != 1 + int(np.argmax(sizes)))] = 0
    return out


def predict_case(model: nn.Module, case: Case, cfg: SegExperiment, frames: list[int] | None = None,
                 *, flip_tta: bool | None = None, largest_component: bool | None = None,
                 postprocess: bool | None = None, device: str = "cpu") -> np.ndarray:
    """Label maps of a case on its own grid.

    case: needs ``image`` (S, T, H, W) complex64 and ``spacing``; frames: frames to segment
    (default all); flip_tta / largest_component / postprocess: default ``cfg.eval``'s.
    returns labels (S, T, H, W) uint8, zero in frames not segmented.
    """
    return segment_case(model, case, cfg, frames, flip_tta=flip_tta, largest_component=largest_component,
                        postprocess=postprocess, device=device).labels


@dataclass
class Segmentation:
    """labels: (S, T, H, W) uint8 (zero in frames not segmented); confidence: mean of the
    winning class probability over the pixels labelled foreground (before post-processing),
    NaN when nothing is foreground -- low values mean the input looks unlike the training data."""

    labels: np.ndarray
    confidence: float


def segment_case(model: nn.Module, case: Case, cfg: SegExperiment, frames: list[int] | None = None,
                 *, flip_tta: bool | None = None, largest_component: bool | None = None,
                 postprocess: bool | None = None, device: str = "cpu") -> Segmentation:
    """:func:`predict_case` with the network's mean foreground confidence (:class:`Segmentation`)."""
    if case.image is None:
        raise ValueError(f"case {case.name!r} has no image to segment")
    flip_tta = cfg.eval.flip_tta if flip_tta is None else flip_tta
    largest_component = cfg.eval.largest_component if largest_component is None else largest_component
    postprocess = cfg.eval.postprocess if postprocess is None else postprocess
    slices, num_frames, height, width = case.image.shape
    frames = list(range(num_frames)) if frames is None else list(frames)
    options = replace(cfg.data.preprocess, size=None)  # whole resampled field of view
    grid = SliceGrid.plan((height, width), case.spacing, options)
    out = np.zeros((slices, num_frames, height, width), np.uint8)
    planes = [(s, t) for t in frames for s in range(slices)]
    confidence_sum, foreground = 0.0, 0
    for start in range(0, len(planes), cfg.eval.batch_size):
        chunk = planes[start:start + cfg.eval.batch_size]
        images = np.stack([grid.prepare_image(np.abs(case.image[s, t]), options) for s, t in chunk])  # (b, h, w)
        probs = _probabilities(model, torch.from_numpy(images)[:, None].to(device), flip_tta).cpu().numpy()
        for (s, t), p in zip(chunk, probs):
            restored = grid.restore_probabilities(p)  # (K, H, W)
            out[s, t] = restored.argmax(axis=0)  # (H, W)
            winner = restored.max(axis=0)[out[s, t] > 0]  # (N,) probabilities of the labelled pixels
            confidence_sum, foreground = confidence_sum + float(winner.sum()), foreground + winner.size
    if postprocess:
        out = postprocess_frames(out, frames)
    elif largest_component:
        for t in frames:
            out[:, t] = largest_components(out[:, t])
    return Segmentation(out, confidence_sum / foreground if foreground else float("nan"))


def read_input(path: str | os.PathLike) -> Case:
    """A case from any cinemri-readable input, plain NIfTI cines included (format "nifti" of
    :func:`cinemri.io.detect_format`): the same reader as ``cinemri info`` and ``show``.

    Raises:
        ValueError: an unreadable or unsupported input (named).
    """
    from cinemri.io import read_any

    return read_any(Path(path))
