"""Every default of the digital phantom, held once in :class:`PhantomOptions`."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

from cinemri.case import IN_PLANE_SPACING_MM

GROUPS: tuple[str, ...] = ("NOR", "DCM", "HCM", "MINF", "RV")
"""ACDC's diagnostic groups: normal, dilated cardiomyopathy, hypertrophic cardiomyopathy,
myocardial infarction with regional hypokinesia, abnormal (dilated, hypokinetic) right ventricle."""

SLICE_RANGE = (8, 10)  # slice counts drawn when ``slices`` is None (inclusive)
# Blood SNR drawn when ``snr`` is None: multi-coil, coil-combined cine references reach
# ~60-150 in blood; the noise in the recon target caps every method's PSNR near
# 20 log10(max / noise_std), so a too-noisy phantom would make reconstruction meaningless.
SNR_RANGE = (60.0, 120.0)
# Size limits: a case must fit comfortably in memory (image, labels, coil maps and the
# supersampled rendering grid), so a typo such as height=100000 is refused at once.
SIZE_LIMITS = {"height": (32, 512), "width": (32, 512), "frames": (4, 100), "coils": (1, 32), "supersample": (1, 8)}
MAX_GRID = 2048  # height * supersample and width * supersample at most this
MAX_VOXELS = 1 << 26  # S * T * H * W and S * C * H * W at most this (the largest S counted)


@dataclass(frozen=True)
class PhantomOptions:
    """How one phantom case is drawn.

    height, width: image matrix; H is the readout (kx), W the phase encode (ky).
    frames: cardiac phases T over one R-R interval (ED = frame 0).
    slices: short-axis slices S from base (0) to apex (S-1); None draws S from
        ``SLICE_RANGE`` = [8, 10] with the case seed.
    coils: receive coils C.
    group: one of :data:`GROUPS`, or None to draw it with the case seed.
    snr: blood SNR of the fully sampled coil-combined image, i.e. mean LV blood magnitude /
        ``noise_std`` (the complex k-space noise std; the FFT is unitary and the coil maps are
        normalised, so the image-domain noise std is the same number). None draws it from
        ``SNR_RANGE`` = [60, 120].
    supersample: geometry is rendered on a grid ``supersample`` times finer in each
        direction and averaged down (partial volume); labels are the majority class.
    fov_mm: range (low, high) of the field of view along H in mm, drawn per case; pixels are
        square, so the in-plane spacing is fov / height. A single number (or a 1-tuple) is
        the fixed value (v, v).
    slice_distance_mm: range (low, high) of the slice-to-slice distance in mm, drawn per case;
        a single number as for fov_mm.

    Sizes are bounded (:data:`SIZE_LIMITS`, :data:`MAX_GRID`, :data:`MAX_VOXELS`) and the pixel
    size fov / height must lie within the spacing the readers accept
    (:data:`cinemri.case.IN_PLANE_SPACING_MM`). Raises ValueError naming the field and value.
    """

    height: int = 128
    width: int = 128
    frames: int = 16
    slices: int | None = None
    coils: int = 8
    group: str | None = None
    snr: float | None = None
    supersample: int = 3
    fov_mm: tuple[float, float] = (300.0, 350.0)
    slice_distance_mm: tuple[float, float] = (8.0, 10.0)

    def __post_init__(self) -> None:
        for name, (low, high) in SIZE_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"PhantomOptions.{name} must be an int in [{low}, {high}], got {value!r}")
        if self.slices is not None and (not isinstance(self.slices, int) or not 3 <= self.slices <= 20):
            raise ValueError(f"PhantomOptions.slices must be None or an int in [3, 20], got {self.slices!r}")
        if self.group is not None and self.group not in GROUPS:
            raise ValueError(f"PhantomOptions.group must be None or one of {GROUPS}, got {self.group!r}")
        if self.snr is not None and not (isinstance(self.snr, (int, float)) and self.snr > 0):
            raise ValueError(f"PhantomOptions.snr must be None or a positive number, got {self.snr!r}")
        for name, low, high in (("fov_mm", 100.0, 600.0), ("slice_distance_mm", 2.0, 20.0)):
            value = _as_range(getattr(self, name))
            if value is None or not low <= value[0] <= value[1] <= high:
                raise ValueError(f"PhantomOptions.{name} must be one value or (low, high) within [{low:g}, {high:g}], "
                                 f"got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)  # frozen: store the normalised (low, high)
        self._check_size()

    def _check_size(self) -> None:
        """Pixel size within the readers' range; memory of one case bounded."""
        low, high = IN_PLANE_SPACING_MM
        finest, coarsest = self.fov_mm[0] / self.height, self.fov_mm[1] / self.height
        if finest < low or coarsest > high:
            raise ValueError(f"PhantomOptions: fov_mm {self.fov_mm} over height {self.height} gives pixels of "
                             f"{finest:.3g}-{coarsest:.3g} mm, outside the {low:g}-{high:g} mm a reader accepts")
        for name in ("height", "width"):
            if getattr(self, name) * self.supersample > MAX_GRID:
                raise ValueError(f"PhantomOptions: {name} {getattr(self, name)} x supersample {self.supersample} "
                                 f"exceeds the {MAX_GRID}-pixel rendering grid")
        slices = self.slices if self.slices is not None else SLICE_RANGE[1]
        for label, count in (("frames", self.frames), ("coils", self.coils)):
            voxels = slices * count * self.height * self.width
            if voxels > MAX_VOXELS:
                raise ValueError(f"PhantomOptions: {slices} slices x {count} {label} x {self.height} x {self.width} "
                                 f"= {voxels} values per case, more than the {MAX_VOXELS} allowed")


def _as_range(value) -> tuple[float, float] | None:
    """(low, high) floats from a number, a 1-sequence or a 2-sequence of finite numbers; else None."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value, value)
    try:
        values = tuple(value)
    except TypeError:
        return None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in values):
        return None
    return float(values[0]), float(values[1])


def make_options(options: dict) -> PhantomOptions:
    """PhantomOptions from keyword options; an unknown name raises ValueError naming it."""
    known = {f.name for f in fields(PhantomOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown phantom option(s) {unknown}; known: {sorted(known)}")
    return PhantomOptions(**options)  # it normalises fov_mm / slice_distance_mm itself
