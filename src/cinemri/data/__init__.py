"""Torch datasets: reconstruction (k-space -> target) and segmentation (image -> labels).

Samples are typed dataclasses; use :func:`collate_recon` / :func:`collate_seg` as the
DataLoader's ``collate_fn``. See docs/data.md for every field's shape and dtype.
"""

from cinemri.data.cases import CaseSource, center_crop_or_pad, stable_seed
from cinemri.data.recon import (MASK_MODES, ReconBatch, ReconDataset, ReconOptions, ReconSample, collate_recon,
                                normalisation_scale)
from cinemri.data.seg import (NORMALIZATIONS, SegBatch, SegDataset, SegOptions, SegSample, collate_seg,
                              normalize_intensity)
from cinemri.data.splits import split_cases

__all__ = [
    "MASK_MODES", "NORMALIZATIONS", "CaseSource", "ReconBatch", "ReconDataset", "ReconOptions", "ReconSample",
    "SegBatch", "SegDataset", "SegOptions", "SegSample", "center_crop_or_pad", "collate_recon", "collate_seg",
    "normalisation_scale", "normalize_intensity", "split_cases", "stable_seed",
]
