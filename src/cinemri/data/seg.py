"""Segmentation dataset: one sample = one labelled 2D image (one slice of one labelled frame).

Per sample (see docs/data.md): magnitude of the cine at (slice, frame) -> [resampling to a
common spacing: not yet, see ``_resample``] -> per-image intensity normalisation ->
optional centre crop/pad to a fixed size (image padded with 0 after normalisation,
labels with background).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cinemri.case import Case
from cinemri.data.cases import CaseSource, center_crop_or_pad

NORMALIZATIONS = ("zscore", "percentile", "none")


@dataclass(frozen=True)
class SegOptions:
    """Options of :class:`SegDataset`; every default lives here."""

    normalization: str = "zscore"  # "zscore": (x - mean) / std; "percentile": [p_low, p_high] -> [0, 1]
    percentiles: tuple[float, float] = (1.0, 99.0)  # used by "percentile"
    size: tuple[int, int] | None = None  # (H, W) centre crop/pad, or None to keep each image's size
    skip_empty: bool = False  # drop images without any foreground label
    cache_cases: int = 2  # whole non-.h5 cases kept in memory per worker

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles!r}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"size must be (H, W) positive, got {self.size!r}")


@dataclass
class SegSample:
    """image: (1, H, W) float32; labels: (H, W) int64 in {0, 1, 2, 3}; spacing: (2,) float32
    (dy, dx) mm; name, slice_index, frame: origin (frame 0-based in the case)."""

    image: Tensor
    labels: Tensor
    spacing: Tensor
    name: str
    slice_index: int
    frame: int


@dataclass
class SegBatch:
    """image: (B, 1, H, W) float32; labels: (B, H, W) int64; spacing: (B, 2) float32 mm."""

    image: Tensor
    labels: Tensor
    spacing: Tensor
    names: list[str]
    slice_indices: list[int]
    frames: list[int]

    def to(self, device: torch.device | str) -> SegBatch:
        return SegBatch(self.image.to(device), self.labels.to(device), self.spacing.to(device),
                        self.names, self.slice_indices, self.frames)


def collate_seg(samples: list[SegSample]) -> SegBatch:
    """Stack samples of equal size into a :class:`SegBatch`; ValueError if sizes differ."""
    shapes = {tuple(s.image.shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"samples have different image shapes {sorted(shapes)}; set SegOptions.size")
    return SegBatch(
        image=torch.stack([s.image for s in samples]), labels=torch.stack([s.labels for s in samples]),
        spacing=torch.stack([s.spacing for s in samples]), names=[s.name for s in samples],
        slice_indices=[s.slice_index for s in samples], frames=[s.frame for s in samples],
    )


def normalize_intensity(image: np.ndarray, method: str, percentiles: tuple[float, float] = (1.0, 99.0)
                        ) -> np.ndarray:
    """Per-image intensity normalisation.

    image: (H, W) float32 magnitude. method: "zscore" (mean 0, std 1; std 0 -> divide by 1),
    "percentile" (clip to the percentiles, map to [0, 1]), or "none".
    Returns (H, W) float32.
    """
    image = image.astype(np.float32)
    if method == "zscore":
        std = float(image.std())
        return (image - image.mean()) / (std if std > 0 else 1.0)
    if method == "percentile":
        low, high = np.percentile(image, percentiles)
        span = float(high - low)
        return (np.clip(image, low, high) - low) / (span if span > 0 else 1.0)
    if method == "none":
        return image
    raise ValueError(f"method must be one of {NORMALIZATIONS}, got {method!r}")


class SegDataset(Dataset):
    """Labelled 2D images of cine cases (labelled frames only).

    cases: paths (any format cinemri.io reads) or Cases with image and labels.
    options: :class:`SegOptions`.
    """

    def __init__(self, cases: list[str | os.PathLike | Case], options: SegOptions = SegOptions()) -> None:
        self.options = options
        self.source = CaseSource(cases, cache_cases=options.cache_cases)
        self.index: list[tuple[int, int, int]] = []  # (case, slice, frame)
        for i in range(len(self.source)):
            frames = self.source.labelled_frames(i)
            if not frames:
                raise ValueError(f"case {self.source.name(i)!r} has no labelled frames")
            slices = range(self.source.shape(i)[0])
            keep = [(s, t) for s in slices for t in frames]
            if options.skip_empty:
                keep = [(s, t) for s, t in keep if self._has_foreground(i, s, t)]
            self.index.extend((i, s, t) for s, t in keep)

    def _has_foreground(self, i: int, s: int, t: int) -> bool:
        labels = self.source.slice(i, s).labels  # (1, T, H, W) or None
        return labels is not None and bool(labels[0, t].any())

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> SegSample:
        i, s, t = self.index[item]
        case = self.source.slice(i, s)
        if case.image is None or case.labels is None:
            raise ValueError(f"{case.source or case.name}: a segmentation case needs image and labels")
        image = np.abs(case.image[0, t]).astype(np.float32)  # (H, W)
        labels = case.labels[0, t]  # (H, W) uint8
        spacing = case.spacing[1:]  # (dy, dx) mm
        image, labels, spacing = _resample(image, labels, spacing)
        image = normalize_intensity(image, self.options.normalization, self.options.percentiles)
        if self.options.size is not None:
            image = center_crop_or_pad(image, self.options.size)  # (h, w)
            labels = center_crop_or_pad(labels, self.options.size)  # (h, w)
        return SegSample(image=torch.from_numpy(np.ascontiguousarray(image))[None],
                         labels=torch.from_numpy(labels.astype(np.int64)),
                         spacing=torch.tensor(spacing, dtype=torch.float32),
                         name=self.source.name(i), slice_index=s, frame=t)


def _resample(image: np.ndarray, labels: np.ndarray, spacing: tuple[float, float]
              ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Resampling to a common in-plane spacing goes here (planned: a ``SegOptions.spacing``
    field; image linear, labels nearest). Today: identity.

    image: (H, W) float32; labels: (H, W) uint8; spacing: (dy, dx) mm.
    """
    return image, labels, spacing
