"""Reconstruction inference: a checkpoint -> the cascade, and a case -> its reconstructed cine.

Everything the model needs to see new data the way it was trained is read from the
checkpoint: its model arguments and weights, and its ``data`` section (the mask distribution,
coil simulation and normalisation of :class:`~cinemri.data.ReconDataset`). ``cinemri analyze``,
the acceleration study, ``recon predict``, ``recon eval`` and the benchmarks all go through
:func:`load_reconstructor`, :func:`inference_samples` and :func:`reconstruct_samples`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from cinemri.case import Case
from cinemri.data import ReconDataset, ReconOptions, ReconSample, collate_recon, normalisation_scale
from cinemri.physics import CALIBRATION_LINES, estimate_coil_maps, sense_adjoint
from cinemri.recon.baselines import cs_tv, zero_filled
from cinemri.recon.config import MODEL_NAME, ReconDataSection, ReconExperiment
from cinemri.recon.registry import build_reconstructor
from cinemri.train import build, load_checkpoint, load_model_state, resolve_amp


@dataclass
class LoadedReconstructor:
    """A model rebuilt from a checkpoint alone: ``model`` (eval mode, CPU), its ``config``
    (a ReconExperiment), ``epoch``, the checkpoint ``path`` and ``autocast``: the low
    precision its denoisers trained in on this device (``train.amp``; None = fp32), which
    inference uses too -- on the CPU here bf16 gives the fp32 images to 0.01 dB, 2.4x faster
    (docs/benchmarks.md)."""

    model: nn.Module
    config: Any
    epoch: int
    path: Path
    autocast: torch.dtype | None = None


def load_reconstructor(path: str | os.PathLike, device: str | torch.device = "cpu", *,
                       channels_last: bool | None = None) -> LoadedReconstructor:
    """Rebuild the trained cascade from a checkpoint (``torch.load(weights_only=True)``).

    channels_last: the memory layout of the denoisers (:meth:`Cascade.set_channels_last`);
    None keeps the one they trained in. The images are the same up to rounding.

    Raises:
        ValueError: the file is missing or not a cinemri checkpoint, holds another model, or
            its arguments, config or weights do not fit; the message names the file.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location="cpu")
    if state["model_name"] != MODEL_NAME:
        raise ValueError(f"checkpoint {path} holds model {state['model_name']!r}, not a {MODEL_NAME!r}")
    try:
        config = build(ReconExperiment, state["config"], source=f"checkpoint {path}")
        model = build_reconstructor(**state["model_args"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"checkpoint {path}: cannot rebuild the model ({str(err).splitlines()[0]})") from err
    load_model_state(model, state, path)
    model.to(device).eval()
    if channels_last is not None:
        model.set_channels_last(channels_last)
    try:
        autocast = resolve_amp(config.train.amp, torch.device(device))
    except ValueError:  # e.g. trained in fp16 on CUDA, loaded on a CPU: run in fp32
        autocast = None
    return LoadedReconstructor(model=model, config=config, epoch=int(state["epoch"]), path=path, autocast=autocast)


def inference_precision(device: torch.device, autocast: torch.dtype | None) -> torch.autocast:
    """The autocast context a cascade runs in at inference: ``autocast`` (``LoadedReconstructor.autocast``)
    on ``device``, or full precision for None. The cascade keeps DC and FFTs in complex64 inside it."""
    return torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None)


def is_undersampled(case: Case) -> bool:
    """True when the case holds k-space with a mask that leaves lines out."""
    return case.kspace is not None and case.mask is not None and not bool(np.all(case.mask))


def acquisition_options(data: ReconDataSection, acceleration: float | None = None, *, pattern: str | None = None,
                        center_lines: int | None = None, seed: int | None = None) -> ReconOptions:
    """How inference undersamples a fully sampled case for a model trained with the data
    section ``data`` (a :class:`~cinemri.recon.config.ReconDataSection`, read from its
    checkpoint): fixed masks seeded from (seed, case name, slice) with the section's
    acceleration, pattern and centre lines -- the mask distribution the model was trained on
    -- each replaced only when given, the section's ``seed`` unless ``seed`` is given, its
    coil simulation for magnitude images, and the whole field of view (the training crop is
    not applied). The one place where ``cinemri analyze``, ``recon predict`` and the study
    decide a mask.
    """
    options = data.options("fixed", acceleration)
    return replace(options, crop=None, pattern=options.pattern if pattern is None else pattern,
                   center_lines=options.center_lines if center_lines is None else center_lines,
                   seed=options.seed if seed is None else seed)


def inference_samples(case: Case, options: ReconOptions | None) -> list[ReconSample]:
    """One normalised sample per slice of ``case`` for a reconstruction model: undersampled
    k-space as acquired (:func:`undersampled_samples`; ``options`` unused), anything else
    (fully sampled k-space, image + coil maps, magnitude images) undersampled with
    ``options`` (:func:`acquisition_options`) as :class:`~cinemri.data.ReconDataset` does."""
    if is_undersampled(case):
        return undersampled_samples(case)
    dataset = ReconDataset([case], options)
    return [dataset[i] for i in range(len(dataset))]


@torch.no_grad()
def reconstruct_samples(samples: Sequence[ReconSample], method: str, model: nn.Module | None = None, *,
                        cs_iters: int | None = None, autocast: torch.dtype | None = None,
                        progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image, zero-filled) of :func:`inference_samples`, each (S, T, H, W) complex64 in the
    input's units, one slice at a time: ``method`` "model" (``model``, on its own device),
    "cs" (:func:`cinemri.recon.cs_tv` with ``cs_iters`` iterations) or "zero_filled".
    ``autocast``: the model's denoisers run under autocast to this dtype (``LoadedReconstructor.autocast``;
    data consistency and FFTs stay complex64).
    ``progress("reconstructing slice s/S (method)")`` before each slice (not for zero filling).
    The one inference loop of ``cinemri analyze``, the study and ``recon predict``.

    Raises:
        ValueError: an unknown method, "model" without ``model``, "cs" without ``cs_iters``.
    """
    if method not in ("model", "cs", "zero_filled") or (method == "model" and model is None) \
            or (method == "cs" and cs_iters is None):
        raise ValueError(f"reconstruct_samples: method {method!r} needs "
                         f"{'a model' if method == 'model' else 'cs_iters' if method == 'cs' else 'a known name'}")
    images, zfs = [], []
    device = next(model.parameters()).device if method == "model" else torch.device("cpu")
    for index, sample in enumerate(samples):
        if progress is not None and method != "zero_filled":
            progress(f"reconstructing slice {index + 1}/{len(samples)} ({method})")
        batch = collate_recon([sample]).to(device)
        zf = zero_filled(batch.kspace, batch.mask, batch.maps)  # (1, T, H, W)
        if method == "model":
            with inference_precision(device, autocast):
                out = model(batch.kspace, batch.mask, batch.maps)  # (1, T, H, W)
        elif method == "cs":
            out = cs_tv(batch.kspace, batch.mask, batch.maps, num_iters=cs_iters)  # (1, T, H, W)
        else:
            out = zf
        images.append((out[0] / sample.scale).to(torch.complex64).cpu().numpy())  # (T, H, W)
        zfs.append((zf[0] / sample.scale).to(torch.complex64).cpu().numpy())
    return np.stack(images), np.stack(zfs)  # (S, T, H, W) each


def undersampled_samples(case: Case) -> list[ReconSample]:
    """Samples of an undersampled k-space case, normalised like :class:`ReconDataset`."""
    kspace = torch.from_numpy(case.kspace)  # (S, C, T, H, W)
    mask = torch.from_numpy(np.asarray(case.mask, dtype=bool))[None, :, None, :]  # (1, T, 1, W)
    samples = []
    for s in range(kspace.shape[0]):
        k = kspace[s:s + 1] * mask  # (1, C, T, H, W)
        if case.coil_maps is not None:
            maps = torch.from_numpy(case.coil_maps[s:s + 1])  # (1, C, H, W)
        else:
            maps = estimate_coil_maps(k, center_lines=_calib_lines(case.mask))  # (1, C, H, W)
        zf = sense_adjoint(k, maps).abs()  # (1, T, H, W)
        scale = normalisation_scale(zf)
        samples.append(ReconSample(kspace=(k[0] * scale).to(torch.complex64), mask=mask, maps=maps[0].to(torch.complex64),
                                   target=torch.zeros_like(zf[0], dtype=torch.complex64), scale=scale,
                                   name=case.name, slice_index=s))
    return samples


def _calib_lines(mask: np.ndarray, most: int = CALIBRATION_LINES) -> int:
    """Width (<= ``most``, >= 2) of the central ky block acquired in at least one frame; mask (T, W) bool."""
    acquired = np.asarray(mask, dtype=bool).any(axis=0)  # (W,)
    w = acquired.shape[0]
    width = 0
    for n in range(1, min(most, w) + 1):
        start = w // 2 - n // 2
        if not acquired[start:start + n].all():
            break
        width = n
    return max(width, 2)
