"""Labelled cines as a reconstruction from undersampled k-space shows them: training data for a
segmenter that reads reconstructed images, and the slice-level loop the real-anatomy benchmarks
reconstruct with.

A segmenter trained on fully sampled magnitudes reads 5x reconstructions differently (measured on
21 real ACDC cines, docs/benchmarks.md: the cascade's temporal blur enlarges the end-systolic
cavity, CS-TV's flat images lose it). :func:`reconstructed_case` takes a labelled magnitude cine
through the benchmarks' acquisition (:func:`cinemri.data.simulate.undersampled_slice`, every
frame, seeded per case and slice) and a reconstruction (the cascade, CS-TV or zero filling), and
keeps the labelled frames with their ground truth. :func:`write_reconstructed_set` writes such
cases as the project's HDF5 with a ``split.json`` that names them all "train", so
``seg train --data ACDC/training <this folder>`` adds them to training without touching the ACDC
split (leave out the patients you validate on when you make the set).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cinemri.case import Case
from cinemri.data.cases import stable_seed
from cinemri.data.recon import normalisation_scale
from cinemri.data.simulate import undersampled_slice
from cinemri.files import write_json
from cinemri.io import write_case
from cinemri.physics import sense_adjoint
from cinemri.pipeline.reconstruct import METHODS
from cinemri.recon.baselines import CSOptions, cs_tv, zero_filled
from cinemri.recon.inference import LoadedReconstructor, inference_precision

# (kspace (1, C, T, H, W), mask (1, 1, T, 1, W), maps (1, C, H, W)) -> image (1, T, H, W) complex64
SliceMethod = Callable[[Tensor, Tensor, Tensor], Tensor]


def cascade_slice_method(model: nn.Module, autocast: torch.dtype | None = None) -> SliceMethod:
    """A trained cascade as a :data:`SliceMethod`: the k-space divided by the 99th percentile of
    the zero-filled magnitude as in training, the denoisers under ``autocast`` (None: fp32; DC and
    FFTs stay complex64), the image back in the input's units."""
    device = next(model.parameters()).device

    @torch.inference_mode()
    def run(kspace: Tensor, mask: Tensor, maps: Tensor) -> Tensor:
        scale = normalisation_scale(sense_adjoint(kspace, maps, mask))
        with inference_precision(device, autocast):
            return model(kspace * scale, mask, maps).to(torch.complex64) / scale

    return run


def slice_method(method: str, recon: LoadedReconstructor | None = None,
                 cs_iters: int = CSOptions.num_iters) -> SliceMethod:
    """``method`` of :data:`METHODS` as a :data:`SliceMethod`: "model" (``recon``'s cascade in its
    inference precision), "cs" (temporal TV, ``cs_iters`` iterations; scale-free) or "zero_filled".

    Raises:
        ValueError: an unknown method, or "model" without ``recon``.
    """
    if method not in METHODS:
        raise ValueError(f"reconstruction method must be one of {METHODS}, got {method!r}")
    if method == "model":
        if recon is None:
            raise ValueError("method 'model' needs a reconstruction checkpoint")
        return cascade_slice_method(recon.model, recon.autocast)
    return partial(cs_tv, num_iters=cs_iters) if method == "cs" else zero_filled


def reconstruct_slices(magnitude: np.ndarray, method: SliceMethod, acceleration: float, seeds: Sequence[int],
                       coils: int = 1) -> tuple[np.ndarray, float]:
    """Every slice of a magnitude cine through :func:`undersampled_slice` (slice s with mask seed
    ``seeds[s]``) and ``method``.

    magnitude: (S, T, H, W) float -> (reconstructed magnitudes (S, T, H, W) float32, seconds per slice).
    """
    out, seconds = [], []
    for s in range(magnitude.shape[0]):
        kspace, mask, maps = undersampled_slice(magnitude[s], acceleration, seed=seeds[s], coils=coils)
        start = time.perf_counter()
        image = method(kspace, mask, maps)  # (1, T, H, W) complex64
        seconds.append(time.perf_counter() - start)
        out.append(image[0].abs().float().numpy())
    return np.stack(out), float(np.mean(seconds))


def reconstructed_name(name: str, method: str, acceleration: float) -> str:
    """The name of ``name``'s reconstructed case, e.g. ``patient001_r5_model``."""
    return f"{name}_r{acceleration:g}_{method}"


def reconstructed_case(case: Case, method: str, *, recon: LoadedReconstructor | None = None,
                       acceleration: float = 5.0, seed: int = 0, cs_iters: int = CSOptions.num_iters) -> Case:
    """The labelled frames of ``case`` reconstructed from simulated undersampled single-coil k-space.

    case: a labelled magnitude cine, image (S, T, H, W) with ``labelled_frames`` (e.g. ACDC with its
    4D file: every frame is reconstructed, so temporal methods see the whole cycle). Returns a
    case named by :func:`reconstructed_name` with image (S, L, H, W) complex64 (the
    reconstruction's magnitude) and labels (S, L, H, W) of the L labelled frames, ED/ES
    re-indexed into them. Slice s's mask is seeded from (``seed``, the case name, s).

    Raises:
        ValueError: naming the case when it has no image, no labelled frame, or an ED/ES frame
            without labels; an unknown method, or "model" without ``recon``.
    """
    where = case.source or case.name
    if case.image is None or case.labels is None or not case.labelled_frames:
        raise ValueError(f"{where}: needs an image and labelled frames to make a reconstructed training case")
    frames = list(case.labelled_frames)
    for role, frame in (("ED", case.ed_frame), ("ES", case.es_frame)):
        if frame is not None and frame not in frames:
            raise ValueError(f"{where}: the {role} frame {frame} has no labels (labelled: {frames})")
    run = slice_method(method, recon, cs_iters)
    seeds = [stable_seed(seed, case.name, s) for s in range(case.image.shape[0])]
    magnitude, _ = reconstruct_slices(np.abs(case.image), run, acceleration, seeds)  # (S, T, H, W)
    index = {frame: i for i, frame in enumerate(frames)}
    source_frames = tuple(case.source_frames[f] for f in frames) if case.source_frames else tuple(frames)
    return replace(case, name=reconstructed_name(case.name, method, acceleration),
                   image=magnitude[:, frames].astype(np.complex64), labels=case.labels[:, frames],
                   coil_maps=None, kspace=None, mask=None, labelled_frames=tuple(range(len(frames))),
                   ed_frame=None if case.ed_frame is None else index[case.ed_frame],
                   es_frame=None if case.es_frame is None else index[case.es_frame],
                   source_frames=source_frames, indices={}, noise_std=0.0)


def write_reconstructed_set(cases: Sequence[Callable[[], Case]], out: str | os.PathLike, methods: Sequence[str], *,
                            recon: LoadedReconstructor | None = None, acceleration: float = 5.0, seed: int = 0,
                            cs_iters: int = CSOptions.num_iters,
                            progress: Callable[[str], None] | None = None) -> list[Path]:
    """Write :func:`reconstructed_case` of every case and method to ``out/<name>.h5`` (atomic) and
    ``out/split.json`` = ``{"train": [every name]}``; returns the case files.

    cases: loaders, each called when its turn comes (one cine in memory at a time). A case file
    already in ``out`` is kept, so a rerun finishes an interrupted set.

    Raises:
        ValueError: no or an unknown method, "model" without ``recon``, or what a case raises.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be some of {METHODS}, got {list(methods)}")
    if "model" in methods and recon is None:
        raise ValueError("method 'model' needs a reconstruction checkpoint")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for number, load in enumerate(cases, 1):
        case = load()
        for method in methods:
            path = out / f"{reconstructed_name(case.name, method, acceleration)}.h5"
            if not path.is_file():
                if progress is not None:
                    progress(f"[{number}/{len(cases)}] {case.name}: {method}")
                write_case(reconstructed_case(case, method, recon=recon, acceleration=acceleration, seed=seed,
                                              cs_iters=cs_iters), path)
            files.append(path)
    write_json({"train": [f.stem for f in files]}, out / "split.json")
    return files
