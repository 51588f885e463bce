"""The one in-memory record of a cine case, shared by the phantom, readers and reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Plausible voxel spacing of a cardiac cine in mm, (low, high) inclusive: readers refuse
# spacing outside these (see cinemri.io.validate), and the phantom never draws it.
IN_PLANE_SPACING_MM = (0.3, 20.0)
SLICE_SPACING_MM = (0.5, 30.0)


@dataclass
class Case:
    """A short-axis cine stack and whatever is known about it.

    Arrays are NumPy (the I/O boundary); models convert to torch themselves.

    image: (S, T, H, W) complex64 coil-combined cine, or None when only k-space is known
    labels: (S, T, H, W) uint8 in {0 bg, 1 RV, 2 MYO, 3 LV}; frames without ground truth
        are all zero and not listed in ``labelled_frames``
    coil_maps: (S, C, H, W) complex64, sum_c |S_c|^2 = 1 inside the body, or None
    kspace: (S, C, T, H, W) complex64 measured k-space (zeros where not sampled), or None
    mask: (T, W) bool sampling mask of ``kspace``, or None (fully sampled)
    spacing: (dz, dy, dx) in mm (dz = slice-to-slice distance)
    ed_frame, es_frame: 0-based frame indices, or None when unknown
    affine: (4, 4) float64 NIfTI voxel-to-world matrix of the source volume, whose voxel
        axes (i, j, k) are our (H, W, S); None when the source had none (see docs/data.md)
    spacing_assumed: True when the file carried no spacing and ``spacing`` holds the
        reader's documented default
    source_frames: when a reader loaded only some frames of a cine (ACDC without its 4D
        file: ED and ES), the 0-based source frame of each T index; () = all frames
    source_num_frames: frames of the source cine when known (ACDC's NbFrame), else None
    frame_base: the number the input gives its first frame (ACDC's Info.cfg counts from 1,
        everything else here from 0); indices stay 0-based, :meth:`frame_number` converts
    frame_numbering: how messages and figures name that numbering (see :meth:`numbering`)
    """

    name: str
    spacing: tuple[float, float, float]
    image: np.ndarray | None = None
    labels: np.ndarray | None = None
    coil_maps: np.ndarray | None = None
    kspace: np.ndarray | None = None
    mask: np.ndarray | None = None
    ed_frame: int | None = None
    es_frame: int | None = None
    group: str | None = None
    labelled_frames: tuple[int, ...] = ()
    noise_std: float = 0.0  # std of complex k-space noise per coil sample (phantom)
    indices: dict[str, float] = field(default_factory=dict)
    source: str = ""  # file or folder it was read from, for error messages
    affine: np.ndarray | None = None
    spacing_assumed: bool = False
    source_frames: tuple[int, ...] = ()
    source_num_frames: int | None = None
    frame_base: int = 0
    frame_numbering: str = ""

    def frame_number(self, t: int) -> int:
        """The input's own number of frame index ``t`` (0-based index into the T axis): the
        source cine's frame when only some frames were loaded, counted from ``frame_base``."""
        source = self.source_frames[t] if self.source_frames else t
        return int(source) + self.frame_base

    def numbering(self) -> str:
        """How frame numbers of this case are counted, for labels: "Info.cfg numbering,
        1-based", or "0-based"."""
        return self.frame_numbering or f"{self.frame_base}-based"

    @property
    def num_slices(self) -> int:
        return self.shape[0]

    @property
    def num_frames(self) -> int:
        return self.shape[1]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(S, T, H, W) of the cine, from whichever array is present (image, k-space, labels).

        Raises ValueError naming the case when it holds none of them.
        """
        if self.image is not None:
            return tuple(self.image.shape)  # type: ignore[return-value]
        if self.kspace is not None:
            s, _, t, h, w = self.kspace.shape
            return (s, t, h, w)
        if self.labels is not None:
            return tuple(self.labels.shape)  # type: ignore[return-value]
        raise ValueError(f"case {self.name!r} holds no image, k-space or labels")
