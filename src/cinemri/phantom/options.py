"""Every default of the digital phantom, held once in :class:`PhantomOptions`."""

from __future__ import annotations

from dataclasses import dataclass, fields

GROUPS: tuple[str, ...] = ("NOR", "DCM", "HCM", "MINF", "RV")
"""ACDC's diagnostic groups: normal, dilated cardiomyopathy, hypertrophic cardiomyopathy,
myocardial infarction with regional hypokinesia, abnormal (dilated, hypokinetic) right ventricle."""

SLICE_RANGE = (8, 10)  # slice counts drawn when ``slices`` is None (inclusive)
# Blood SNR drawn when ``snr`` is None: multi-coil, coil-combined cine references reach
# ~60-150 in blood; the noise in the recon target caps every method's PSNR near
# 20 log10(max / noise_std), so a too-noisy phantom would make reconstruction meaningless.
SNR_RANGE = (60.0, 120.0)


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
        square, so the in-plane spacing is fov / height.
    slice_distance_mm: range (low, high) of the slice-to-slice distance in mm, drawn per case.
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
        for name, low in (("height", 32), ("width", 32), ("frames", 4), ("coils", 1), ("supersample", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PhantomOptions.{name} must be an int >= {low}, got {value!r}")
        if self.slices is not None and (not isinstance(self.slices, int) or not 3 <= self.slices <= 20):
            raise ValueError(f"PhantomOptions.slices must be None or an int in [3, 20], got {self.slices!r}")
        if self.group is not None and self.group not in GROUPS:
            raise ValueError(f"PhantomOptions.group must be None or one of {GROUPS}, got {self.group!r}")
        if self.snr is not None and not (isinstance(self.snr, (int, float)) and self.snr > 0):
            raise ValueError(f"PhantomOptions.snr must be None or a positive number, got {self.snr!r}")
        for name, low, high in (("fov_mm", 100.0, 600.0), ("slice_distance_mm", 2.0, 20.0)):
            value = getattr(self, name)
            if (len(value) != 2 or not all(isinstance(v, (int, float)) for v in value)
                    or not low <= value[0] <= value[1] <= high):
                raise ValueError(f"PhantomOptions.{name} must be (low, high) within [{low}, {high}], got {value!r}")


def make_options(options: dict) -> PhantomOptions:
    """PhantomOptions from keyword options; an unknown name raises ValueError naming it."""
    known = {f.name for f in fields(PhantomOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown phantom option(s) {unknown}; known: {sorted(known)}")
    if "fov_mm" in options:
        options = {**options, "fov_mm": tuple(options["fov_mm"])}
    if "slice_distance_mm" in options:
        options = {**options, "slice_distance_mm": tuple(options["slice_distance_mm"])}
    return PhantomOptions(**options)
