"""Image formation for the end-to-end analysis: k-space (or images) -> cine images.

One function, :func:`reconstruct_case`, turns whatever a case holds into the (S, T, H, W)
cine that segmentation sees:

- undersampled k-space (a mask in the file, CMRxRecon): reconstructed as acquired;
- fully sampled k-space, or image + coil maps (phantom): undersampled first with a mask
  seeded from (seed, case name, slice) -- so the reconstruction is really tested -- unless
  ``undersample`` is False, in which case the fully sampled image is used as it is. The
  mask's acceleration, pattern and centre lines are the reconstruction checkpoint's own
  (its ``data`` section: the masks the model was trained on), each replaced only when given;
  without a checkpoint, those of :class:`~cinemri.recon.config.ReconDataSection`'s
  defaults (:func:`~cinemri.recon.inference.acquisition_options`, the one rule that
  ``recon predict`` follows too);
- images only (ACDC, M&Ms, NIfTI): used as they are (nothing to reconstruct).

``method`` picks the reconstruction: "model" (a trained cascade), "cs" (temporal TV, the
classical baseline) or "zero_filled". The reference (the fully sampled coil-combined
image, noise included) comes back when it exists, so image quality can be scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from cinemri.case import Case
from cinemri.masks import achieved_acceleration
from cinemri.recon import CSOptions
from cinemri.recon.config import ReconDataSection
from cinemri.recon.inference import (LoadedReconstructor, acquisition_options, inference_samples, is_undersampled,
                                     reconstruct_samples)

METHODS = ("model", "cs", "zero_filled")
Method = Literal["model", "cs", "zero_filled"]


@dataclass
class Reconstruction:
    """What :func:`reconstruct_case` produced.

    image: (S, T, H, W) complex64 in the input's units; reference: (S, T, H, W) complex64
    fully sampled image, or None; zero_filled: (S, T, H, W) complex64 or None (images-only
    input); masks: (S, T, W) bool sampling masks or None; method: what made ``image``
    ("model", "cs", "zero_filled", "fully_sampled" or "images"); acceleration: achieved R
    (mean over slices) or None; seconds: reconstruction wall time; mask: how a fully sampled
    input was undersampled ({"acceleration" (nominal), "pattern", "center_lines", "seed",
    "from": "checkpoint" or "defaults", "given": the settings the caller chose}) or None.
    """

    image: np.ndarray
    reference: np.ndarray | None
    zero_filled: np.ndarray | None
    masks: np.ndarray | None
    method: str
    acceleration: float | None
    seconds: float
    mask: dict | None = None


def _has_kspace_or_maps(case: Case) -> bool:
    return case.kspace is not None or (case.image is not None and case.coil_maps is not None)


def image_source(case: Case, method: Method = "model", undersample: bool = True) -> str:
    """What :func:`reconstruct_case` with these arguments makes the image from, known before it
    runs (its result's ``method``): ``method`` for k-space it reconstructs (acquired
    undersampled, or undersampled first), "fully_sampled" for k-space it is told not to
    undersample, "images" for an input that holds images only. The caller picks the
    segmenter from it before the (long) reconstruction."""
    if is_undersampled(case):
        return method
    if not _has_kspace_or_maps(case):
        return "images"
    return method if undersample else "fully_sampled"


def reconstruct_case(case: Case, method: Method = "model", *, recon: LoadedReconstructor | None = None,
                     acceleration: float | None = None, undersample: bool = True, seed: int = 0,
                     pattern: str | None = None, center_lines: int | None = None,
                     cs_iters: int = CSOptions.num_iters,
                     progress: Callable[[str], None] | None = None) -> Reconstruction:
    """The cine images of ``case`` (see the module docstring).

    acceleration, pattern, center_lines: the undersampling of a fully sampled input; None
    (the default) takes the value from ``recon``'s checkpoint (its ``data`` section), or
    from :class:`~cinemri.recon.config.ReconDataSection`'s defaults without ``recon``.
    seed: seed of the masks (with the case name and slice).

    progress: called with one line before each slice is reconstructed ("reconstructing
    slice 3/10 (cs)"), so long reconstructions show that they move; None: silent.

    Raises:
        ValueError: unknown ``method``, "model" without ``recon``, a case with nothing to
            reconstruct from (no image, no k-space), or an image without coil maps asked to
            be undersampled.
    """
    if method not in METHODS:
        raise ValueError(f"reconstruction method must be one of {METHODS}, got {method!r}")
    start = time.perf_counter()
    where = case.source or case.name
    source = image_source(case, method, undersample)
    if source == "images":
        if case.image is None:
            raise ValueError(f"{where}: holds neither images nor k-space")
        return Reconstruction(image=case.image, reference=None, zero_filled=None, masks=None, method="images",
                              acceleration=None, seconds=0.0)
    if source == "model" and recon is None:
        raise ValueError("reconstruction method 'model' needs a reconstruction checkpoint")
    reference = None
    mask = None
    if is_undersampled(case):
        samples = inference_samples(case, None)  # as acquired
        masks = np.repeat(np.asarray(case.mask, bool)[None], case.num_slices, axis=0)  # (S, T, W)
    else:
        data = recon.config.data if recon is not None else ReconDataSection()
        options = acquisition_options(data, acceleration if undersample else 1.0, pattern=pattern,
                                      center_lines=center_lines, seed=seed)
        given = {k: v for k, v in (("acceleration", acceleration), ("pattern", pattern),
                                   ("center_lines", center_lines)) if v is not None}
        mask = {"acceleration": options.acceleration, "pattern": options.pattern,
                "center_lines": options.center_lines, "seed": options.seed,
                "from": "checkpoint" if recon is not None else "defaults", "given": given}
        samples = inference_samples(case, options)
        masks = np.stack([s.mask[0, :, 0, :].numpy() for s in samples])  # (S, T, W)
        reference = np.stack([(s.target / s.scale).numpy() for s in samples]).astype(np.complex64)
        if source == "fully_sampled":
            return Reconstruction(image=reference, reference=reference, zero_filled=reference, masks=None,
                                  method="fully_sampled", acceleration=1.0, seconds=time.perf_counter() - start)
    image, zf = reconstruct_samples(samples, method, recon.model if method == "model" else None,
                                    cs_iters=cs_iters, autocast=recon.autocast if method == "model" else None,
                                    progress=progress)
    achieved = float(np.mean([achieved_acceleration(torch.from_numpy(m)) for m in masks]))
    return Reconstruction(image=image, reference=reference, zero_filled=zf, masks=masks, method=method,
                          acceleration=achieved, seconds=time.perf_counter() - start, mask=mask)


def with_image(case: Case, image: np.ndarray) -> Case:
    """``case`` holding ``image`` (S, T, H, W) and no k-space (what segmentation reads)."""
    return replace(case, image=image.astype(np.complex64), kspace=None, mask=None, coil_maps=None)
