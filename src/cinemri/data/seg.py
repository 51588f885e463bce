"""Segmentation dataset: one sample = one labelled 2D image (one slice of one labelled frame).

Per sample (see docs/data.md): magnitude of the cine at (slice, frame) -> optional in-plane
resampling to a common spacing (:class:`SliceGrid`: bilinear image, nearest labels) ->
per-image intensity normalisation -> optional centre crop/pad to a fixed size (image padded
with 0 after normalisation, labels with background).

Context (2.5D input): with ``context_slices`` k or ``context_frames`` m, the sample's image has
more channels than the one plane: the neighbouring slices s-k..s+k and frames t-m..t+m of the
same cine (:func:`context_offsets` gives the channel order, centre first), each prepared like the
centre plane. Beyond the stack's first and last slice the edge slice repeats; frames wrap around
(a cine is one periodic heart cycle). With ``reference_frame``, the last channel is the same slice
at end diastole (the case's ``ed_frame``; frame 0 when unknown, the ECG-triggered convention), so an
end-systolic plane is seen beside the same plane at its largest -- which works on ACDC-style cases
that hold only the ED and ES volumes, where frame context cannot. The labels stay those of the
centre plane.

:class:`SliceGrid` also maps network outputs back to the original grid exactly (same shape;
the case's affine is untouched), which is what ``cinemri seg predict/eval`` write and score.

Resampling geometry: an (H, W) image of spacing (dy, dx) covers H*dy x W*dx mm. It is
resampled to (h, w) = (round(H dy / s), round(W dx / s)) pixels covering the same field of
view (``F.interpolate`` with ``align_corners=False``: pixel centres at (i + 1/2) H/h - 1/2),
so the effective spacing is (H dy / h, W dx / w), within half a pixel of s over the field.
The inverse uses the same map the other way and returns exactly (H, W).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from cinemri.case import Case
from cinemri.data.cases import CaseSource, crop_window, paste_window

NORMALIZATIONS = ("zscore", "percentile", "none")
MAX_CONTEXT = 4  # neighbours per side; short-axis stacks have ~10 slices
# the frame "offset" of the reference channel: not an offset but the cine's end-diastolic frame
ED_REFERENCE = "ed"


def context_offsets(context_slices: int = 0, context_frames: int = 0, reference_frame: bool = False
                    ) -> tuple[tuple[int, int | str], ...]:
    """The input channels of a network with this much context, as (slice, frame) offsets from
    the plane being segmented: the plane itself first, then slices -k..k, then frames -m..m,
    then (0, :data:`ED_REFERENCE`) -- the same slice at end diastole -- with ``reference_frame``.

    A network with less context takes a subset of a larger network's channels (the ensemble of
    a 2D and a 2.5D segmenter picks each member's channels by these offsets).
    """
    slices = [(d, 0) for d in range(-context_slices, context_slices + 1) if d != 0]
    frames = [(0, d) for d in range(-context_frames, context_frames + 1) if d != 0]
    reference = [(0, ED_REFERENCE)] if reference_frame else []
    return ((0, 0), *slices, *frames, *reference)


def check_frame_context(frames: int, offsets: tuple[tuple[int, int | str], ...]) -> None:
    """Raise ValueError when frame context of m frames per side meets a cine of fewer than
    2m + 1 frames (e.g. only the ED and ES volumes): its "neighbours" would be other phases."""
    reach = max(abs(dt) for _, dt in offsets if dt != ED_REFERENCE)
    if frames < 2 * reach + 1:
        raise ValueError(f"frame context of {reach} frame(s) per side needs a cine of at least {2 * reach + 1} "
                         f"frames, got {frames}")


def context_planes(s: int, t: int, shape: tuple[int, int], offsets: tuple[tuple[int, int | str], ...],
                   ed_frame: int | None = None) -> list[tuple[int, int]]:
    """The (slice, frame) of each input channel of plane (s, t) in a cine of ``shape`` (S, T):
    slices clamped to the stack (the edge slice repeats), frames taken modulo T (the cycle wraps),
    the reference channel at ``ed_frame`` (None: frame 0). Cines too short for the frame context
    are refused (:func:`check_frame_context`)."""
    slices, frames = shape
    check_frame_context(frames, offsets)
    reference = 0 if ed_frame is None else int(ed_frame)
    if not 0 <= reference < frames:
        raise ValueError(f"end-diastolic frame {reference} is outside the cine's {frames} frames")
    return [(min(max(s + ds, 0), slices - 1), reference if dt == ED_REFERENCE else (t + dt) % frames)
            for ds, dt in offsets]


@dataclass(frozen=True)
class SegOptions:
    """Options of :class:`SegDataset`; every default lives here."""

    normalization: str = "zscore"  # "zscore": (x - mean) / std; "percentile": [p_low, p_high] -> [0, 1]
    percentiles: tuple[float, float] = (1.0, 99.0)  # used by "percentile"
    size: tuple[int, int] | None = None  # (H, W) centre crop/pad, or None to keep each image's size
    spacing_mm: float | None = None  # in-plane target spacing (mm), or None to keep the native grid
    skip_empty: bool = False  # drop images without any foreground label
    cache_cases: int = 2  # whole non-.h5 cases kept in memory per worker
    context_slices: int = 0  # neighbouring slices on each side given as extra input channels
    context_frames: int = 0  # neighbouring frames on each side given as extra input channels
    reference_frame: bool = False  # the same slice at end diastole as the last input channel

    def __post_init__(self) -> None:
        for name in ("context_slices", "context_frames"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 <= value <= MAX_CONTEXT):
                raise ValueError(f"{name} must be an integer in [0, {MAX_CONTEXT}], got {value!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles!r}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"size must be (H, W) positive, got {self.size!r}")
        if self.spacing_mm is not None and not (np.isfinite(self.spacing_mm) and self.spacing_mm > 0):
            raise ValueError(f"spacing_mm must be a positive number of mm or None, got {self.spacing_mm!r}")

    @property
    def offsets(self) -> tuple[tuple[int, int], ...]:
        """(slice, frame) offsets of the input channels (:func:`context_offsets`)."""
        return context_offsets(self.context_slices, self.context_frames, self.reference_frame)

    @property
    def channels(self) -> int:
        """Input channels of a network trained on these samples."""
        return len(self.offsets)


@dataclass
class SegSample:
    """image: (C, H, W) float32 (C = :attr:`SegOptions.channels`: the plane, then its context);
    labels: (H, W) int64 in {0, 1, 2, 3}; spacing: (2,) float32 (dy, dx) mm; name, slice_index,
    frame: origin (frame 0-based in the case)."""

    image: Tensor
    labels: Tensor
    spacing: Tensor
    name: str
    slice_index: int
    frame: int


@dataclass
class SegBatch:
    """image: (B, C, H, W) float32; labels: (B, H, W) int64; spacing: (B, 2) float32 mm."""

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
        labels = case.labels[0, t]  # (H, W) uint8
        grid = SliceGrid.plan(labels.shape, case.spacing[1:], self.options)
        slices, frames = self.source.shape(i)[:2]
        neighbours = {s: case}
        planes = []
        try:
            where = context_planes(s, t, (slices, frames), self.options.offsets, case.ed_frame)
        except ValueError as err:
            raise ValueError(f"{case.source or case.name}: {err}") from err
        for s2, t2 in where:
            if s2 not in neighbours:
                neighbours[s2] = self.source.slice(i, s2)
            plane = np.abs(neighbours[s2].image[0, t2]).astype(np.float32)  # (H, W)
            planes.append(grid.prepare_image(plane, self.options))  # (h, w)
        return SegSample(image=torch.from_numpy(np.stack(planes)),  # (C, h, w)
                         labels=torch.from_numpy(grid.prepare_labels(labels)),  # (h, w) int64
                         spacing=torch.tensor(grid.spacing, dtype=torch.float32),
                         name=self.source.name(i), slice_index=s, frame=t)


def _interpolate(x: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """x: (..., H, W) -> (..., size[0], size[1]) by ``F.interpolate`` (align_corners=False for
    bilinear); float32 out for bilinear, x's dtype for nearest."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.copy()
    lead = x.shape[:-2]
    flat = torch.from_numpy(np.ascontiguousarray(x.reshape(-1, 1, *x.shape[-2:])))  # (N, 1, H, W)
    if mode == "bilinear":
        out = F.interpolate(flat.float(), size=size, mode="bilinear", align_corners=False)
        return out.numpy().reshape(*lead, *size)
    out = F.interpolate(flat.float(), size=size, mode="nearest-exact")  # exact for integer values
    return out.numpy().reshape(*lead, *size).round().astype(x.dtype)


@dataclass(frozen=True)
class SliceGrid:
    """The map between an original (H, W) slice grid and the network's (h, w) grid.

    original: (H, W); native_spacing: (dy, dx) mm; resampled: (H', W') after resampling to
    the target spacing (= original when not resampling); size: (h, w) after the crop/pad
    (= resampled when no size is set); centre: the pixel of the resampled grid at the
    window's centre (None: (H' // 2, W' // 2), a centre crop). Build with :meth:`plan`.
    """

    original: tuple[int, int]
    native_spacing: tuple[float, float]
    resampled: tuple[int, int]
    size: tuple[int, int]
    centre: tuple[int, int] | None = None

    @classmethod
    def plan(cls, shape: tuple[int, ...], spacing, options: SegOptions,
             centre: tuple[int, int] | None = None) -> SliceGrid:
        """shape: (..., H, W); spacing: (dy, dx) mm (or (dz, dy, dx): the last two are used);
        centre: window centre on the resampled grid (None: its centre pixel)."""
        height, width = int(shape[-2]), int(shape[-1])
        dy, dx = (float(v) for v in tuple(spacing)[-2:])
        if not (dy > 0 and dx > 0 and np.isfinite(dy) and np.isfinite(dx)):
            raise ValueError(f"spacing must be positive mm values, got {spacing!r}")
        resampled = (height, width)
        if options.spacing_mm is not None:
            resampled = (max(1, round(height * dy / options.spacing_mm)),
                         max(1, round(width * dx / options.spacing_mm)))
        size = resampled if options.size is None else tuple(int(v) for v in options.size)
        centre = None if centre is None else (int(centre[0]), int(centre[1]))
        return cls((height, width), (dy, dx), resampled, size, centre)  # type: ignore[arg-type]

    @property
    def window_centre(self) -> tuple[int, int]:
        """The resampled-grid pixel at the centre of the network's window."""
        return self.centre if self.centre is not None else (self.resampled[0] // 2, self.resampled[1] // 2)

    @property
    def spacing(self) -> tuple[float, float]:
        """(dy, dx) mm of the network grid (cropping keeps the spacing)."""
        return (self.original[0] * self.native_spacing[0] / self.resampled[0],
                self.original[1] * self.native_spacing[1] / self.resampled[1])

    def prepare_image(self, image: np.ndarray, options: SegOptions) -> np.ndarray:
        """image: (H, W) magnitude -> (h, w) float32: resample (bilinear), normalise, crop/pad."""
        self._check(image, "image")
        image = _interpolate(image.astype(np.float32), self.resampled, "bilinear")  # (H', W')
        image = normalize_intensity(image, options.normalization, options.percentiles)
        return np.ascontiguousarray(crop_window(image, self.size, self.window_centre), dtype=np.float32)  # (h, w)

    def prepare_labels(self, labels: np.ndarray) -> np.ndarray:
        """labels: (H, W) integer -> (h, w) int64: resample (nearest), crop/pad with background."""
        self._check(labels, "labels")
        labels = _interpolate(labels.astype(np.int64), self.resampled, "nearest")  # (H', W')
        return np.ascontiguousarray(crop_window(labels, self.size, self.window_centre))  # (h, w)

    def restore_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """Class probabilities back on the original grid: the exact inverse geometry.

        probs: (K, h, w) float (softmax output, class 0 = background) -> (K, H, W) float32.
        The area removed by the crop is background (probability 1 for class 0); the area
        added by padding is dropped; then bilinear resampling back to (H, W).
        """
        probs = np.asarray(probs, dtype=np.float32)
        if probs.ndim != 3 or tuple(probs.shape[1:]) != self.size:
            raise ValueError(f"probs must be (K, {self.size[0]}, {self.size[1]}), got {probs.shape}")
        full = paste_window(probs, self.resampled, self.window_centre)  # (K, H', W'); outside the window 0
        outside = paste_window(np.ones(self.size, np.float32), self.resampled, self.window_centre) == 0  # (H', W')
        full[0][outside] = 1.0
        return _interpolate(full, self.original, "bilinear")  # (K, H, W)

    def restore_labels(self, labels: np.ndarray) -> np.ndarray:
        """labels: (h, w) integer -> (H, W) same dtype (nearest; removed area = background)."""
        labels = np.asarray(labels)
        if tuple(labels.shape) != self.size:
            raise ValueError(f"labels must be {self.size}, got {labels.shape}")
        return _interpolate(paste_window(labels, self.resampled, self.window_centre), self.original,
                            "nearest")  # (H, W)

    def _check(self, x: np.ndarray, name: str) -> None:
        if tuple(x.shape) != self.original:
            raise ValueError(f"{name} must be {self.original} (the planned grid), got {x.shape}")


class InMemorySegDataset(Dataset):
    """Every sample of ``dataset`` (a :class:`SegDataset`) read and preprocessed once, then
    served from memory (samples as :class:`SegSample`: image (C, h, w) float32, labels (h, w) int64).

    For training on few thousand slices (ACDC: ~1,900 labelled slices, ~200 MB at 160 x 160
    float32): reading compressed NIfTI per sample would dominate the step time.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.samples: list[SegSample] = [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int) -> SegSample:
        return self.samples[item]
