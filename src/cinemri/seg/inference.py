"""Segmentation inference: a trained checkpoint -> label maps on each case's original grid.

Each slice is resampled to the training spacing (no crop: the whole field of view), run
through the network (optionally with flip test-time augmentation: the mean softmax of the
image and its H, W and H+W mirrors), and its class probabilities are mapped back to the
original (H, W) grid (:meth:`cinemri.data.seg.SliceGrid.restore_probabilities`) before the
argmax, so outputs keep the input's shape and affine exactly. Every test-time option defaults
to the checkpoint's ``eval`` section (:func:`test_time_options`). ``cinemri analyze``, the
acceleration study, ``seg predict`` and ``seg eval`` all segment through :func:`segment_case`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import nn

from cinemri.case import Case
from cinemri.data.seg import SliceGrid, check_frame_context, context_planes
from cinemri.labels import LV, MYO
from cinemri.seg.config import SegEvalSection, SegExperiment, experiment_from_dict
from cinemri.seg.models import build_segmenter
from cinemri.seg.postprocess import largest_components, postprocess_frames
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
    """images: (B, C, h, w) float32 -> softmax (B, K, h, w) float32 (mean over flips with TTA)."""
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


def test_time_options(cfg: SegExperiment, **given: bool | None) -> SegEvalSection:
    """The checkpoint's ``eval`` section with the options the caller gave (None: keep the
    checkpoint's), e.g. ``test_time_options(cfg, flip_tta=True, postprocess=None)``.

    Raises:
        ValueError: a name that is not a field of :class:`SegEvalSection`.
    """
    known = {f.name for f in fields(SegEvalSection)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown test-time option(s) {unknown}; known: {sorted(known)}")
    return replace(cfg.eval, **{k: v for k, v in given.items() if v is not None})


def predict_case(model: nn.Module, case: Case, cfg: SegExperiment, frames: list[int] | None = None,
                 *, test_time: SegEvalSection | None = None, device: str = "cpu") -> np.ndarray:
    """Label maps of a case on its own grid.

    case: needs ``image`` (S, T, H, W) complex64 and ``spacing``; frames: frames to segment
    (default all); test_time: flip TTA, heart crop and post-processing (default ``cfg.eval``;
    see :func:`test_time_options`).
    returns labels (S, T, H, W) uint8, zero in frames not segmented.
    """
    return segment_case(model, case, cfg, frames, test_time=test_time, device=device).labels


@dataclass
class Segmentation:
    """labels: (S, T, H, W) uint8 (zero in frames not segmented); confidence: mean of the
    winning class probability over the pixels labelled foreground (before post-processing),
    NaN when nothing is foreground -- low values mean the input looks unlike the training data."""

    labels: np.ndarray
    confidence: float


def _network_labels(model: nn.Module, case: Case, grid: SliceGrid, options, planes: list[tuple[int, int]],
                    batch_size: int, flip_tta: bool, device: str):
    """Yield ((slice, frame), softmax (K, h, w) on the network grid) for every plane; the network's
    input is the plane and its context (``options.offsets``), each prepared once per call."""
    prepared: dict[tuple[int, int], np.ndarray] = {}

    def plane(s: int, t: int) -> np.ndarray:  # (h, w) float32
        if (s, t) not in prepared:
            prepared[(s, t)] = grid.prepare_image(np.abs(case.image[s, t]), options)
        return prepared[(s, t)]

    shape = case.image.shape[:2]  # (S, T)
    for start in range(0, len(planes), batch_size):
        chunk = planes[start:start + batch_size]
        images = np.stack([np.stack([plane(*p) for p in context_planes(s, t, shape, options.offsets, case.ed_frame)])
                           for s, t in chunk])  # (b, C, h, w)
        probs = _probabilities(model, torch.from_numpy(images).to(device), flip_tta).cpu().numpy()
        yield from zip(chunk, probs)


def _heart_centre(model: nn.Module, case: Case, options, frames: list[int], batch_size: int,
                  device: str) -> tuple[int, int] | None:
    """The heart's centre on the resampled grid: centroid of the LV and myocardium found in a
    whole-field-of-view pass over every slice of (at most) two frames; None when none is found."""
    height, width = case.image.shape[-2:]
    grid = SliceGrid.plan((height, width), case.spacing, options)  # no crop: the whole field of view
    looks = sorted({frames[0], frames[len(frames) // 2]})
    planes = [(s, t) for t in looks for s in range(case.image.shape[0])]
    total, rows, cols = 0, 0.0, 0.0
    for _, probs in _network_labels(model, case, grid, options, planes, batch_size, False, device):
        heart = np.isin(probs.argmax(axis=0), (MYO, LV))  # (h, w)
        ys, xs = np.nonzero(heart)
        total, rows, cols = total + ys.size, rows + float(ys.sum()), cols + float(xs.sum())
    return None if total == 0 else (round(rows / total), round(cols / total))


def _magnified(grid: SliceGrid, options, zoom: float, spacing) -> tuple[SliceGrid, object]:
    """(grid, options) over the same anatomy as ``grid``/``options`` on a grid ``zoom`` times
    finer: spacing / zoom, window size and centre times zoom (``eval.scale_tta``)."""
    if zoom == 1.0:
        return grid, options
    if options.spacing_mm is None:
        raise ValueError("eval.scale_tta other than 1.0 needs a training spacing (data.preprocess.spacing_mm)")
    size = None if options.size is None else tuple(round(v * zoom) for v in options.size)
    magnified = replace(options, spacing_mm=options.spacing_mm / zoom, size=size)
    centre = None if grid.centre is None else (round(grid.centre[0] * zoom), round(grid.centre[1] * zoom))
    return SliceGrid.plan(grid.original, spacing, magnified, centre), magnified


def segment_case(model: nn.Module, case: Case, cfg: SegExperiment, frames: list[int] | None = None,
                 *, test_time: SegEvalSection | None = None, device: str = "cpu") -> Segmentation:
    """:func:`predict_case` with the network's mean foreground confidence (:class:`Segmentation`).

    With ``crop_to_heart`` (and a training crop ``cfg.data.preprocess.size``), a first pass on
    the whole field of view finds the heart and the second segments a window of the training
    size around it: what the network saw in training, instead of a larger field of view whose
    other content shifts its instance-normalisation statistics.
    """
    if case.image is None:
        raise ValueError(f"case {case.name!r} has no image to segment")
    opts = cfg.eval if test_time is None else test_time
    slices, num_frames, height, width = case.image.shape
    frames = list(range(num_frames)) if frames is None else list(frames)
    try:  # a model with frame context needs a whole cine, not only the ED and ES volumes
        check_frame_context(num_frames, cfg.data.preprocess.offsets)
    except ValueError as err:
        raise ValueError(f"case {case.name!r}: {err}") from err
    whole = replace(cfg.data.preprocess, size=None)  # whole resampled field of view
    grid, options = SliceGrid.plan((height, width), case.spacing, whole), whole
    if opts.crop_to_heart and cfg.data.preprocess.size is not None and frames:
        centre = _heart_centre(model, case, whole, frames, opts.batch_size, device)
        options = cfg.data.preprocess
        grid = SliceGrid.plan((height, width), case.spacing, options, centre)
    out = np.zeros((slices, num_frames, height, width), np.uint8)
    planes = [(s, t) for t in frames for s in range(slices)]
    views = [_magnified(grid, options, zoom, case.spacing) for zoom in opts.scale_tta]
    streams = [_network_labels(model, case, g, o, planes, opts.batch_size, opts.flip_tta, device) for g, o in views]
    confidence_sum, foreground = 0.0, 0
    for outputs in zip(*streams):  # each stream yields the planes in the same order
        s, t = outputs[0][0]
        restored = np.mean([g.restore_probabilities(p) for (g, _), (_, p) in zip(views, outputs)], axis=0)  # (K, H, W)
        out[s, t] = restored.argmax(axis=0)  # (H, W)
        winner = restored.max(axis=0)[out[s, t] > 0]  # (N,) probabilities of the labelled pixels
        confidence_sum, foreground = confidence_sum + float(winner.sum()), foreground + winner.size
    if opts.postprocess:
        out = postprocess_frames(out, frames)
    elif opts.largest_component:
        for t in frames:
            out[:, t] = largest_components(out[:, t])
    return Segmentation(out, confidence_sum / foreground if foreground else float("nan"))
