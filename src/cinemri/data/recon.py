"""Reconstruction dataset: one sample = one slice of one case, undersampled k-space -> target.

Per sample (see docs/data.md):

1. Fully sampled multi-coil k-space y (C, T, H, W):
   - phantom cases (image + coil maps): y = F S x + n, n complex Gaussian with
     E|n|^2 = noise_std^2 per sample, seeded from (seed, case name, slice);
   - magnitude cases (DICOM, NIfTI: image only) and, with ``simulation.replace_maps``,
     phantom cases: smooth random phase, simulated coils and noise
     (:mod:`cinemri.data.simulate`), drawn from (seed, case, slice, epoch);
   - k-space cases (CMRxRecon): the file's fully sampled k-space; coil maps from the file
     or estimated with :func:`cinemri.physics.estimate_coil_maps`.
   With ``augment`` (training), the cine (image and maps, or coil images) is flipped,
   rotated, reversed and shifted in time, windowed and cropped first, from the same seed.
2. Optional crop of the coil images to ``crop`` (H, W) (removes readout oversampling).
3. Optional single coil: y <- F(S^H F^H y) with maps of ones (C = 1).
4. Target = S^H F^H y: what a fully sampled scan gives, noise included.
5. Mask (T, W) from :func:`cinemri.masks.cartesian_mask`, seeded from (seed, case, slice)
   ("fixed", for validation/test) or also from the epoch ("per_epoch", training).
6. Optional normalisation: k-space and target multiplied by ``scale`` so that the
   zero-filled image's 99th-percentile magnitude is 1; divide outputs by ``scale`` to undo.
7. Optional readout strip (``strip_rows``): a random window of rows along the fully sampled
   readout H, exact for data consistency (:mod:`cinemri.data.strips`); the scale of step 6
   is the whole image's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cinemri.case import Case
from cinemri.data.cases import CaseSource, center_crop_or_pad, stable_seed
from cinemri.data.simulate import (AugmentOptions, SimulationOptions, apply_spatial, apply_temporal,
                                   draw_augmentation, simulate_acquisition)
from cinemri.data.strips import image_strip, readout_strip
from cinemri.masks import MaskOptions, cartesian_mask
from cinemri.physics import CALIBRATION_LINES, estimate_coil_maps, fft2c, ifft2c, sense_adjoint, sense_forward

MASK_MODES = ("fixed", "per_epoch")


@dataclass(frozen=True)
class ReconOptions:
    """Options of :class:`ReconDataset`; every default lives here."""

    acceleration: float = MaskOptions.acceleration
    pattern: str = MaskOptions.pattern  # one of cinemri.masks.PATTERNS
    center_lines: int = MaskOptions.center_lines
    mask_mode: str = "fixed"  # "fixed": seed from case + slice; "per_epoch": also from the epoch
    seed: int = 0  # mixed into every noise and mask seed
    single_coil: bool = False
    normalize: bool = True  # zero-filled 99th percentile magnitude -> 1
    crop: tuple[int, int] | None = None  # (H, W) centre crop of the coil images
    calib_lines: int = CALIBRATION_LINES  # centre lines used to estimate coil maps for k-space cases
    cache_cases: int = 2  # whole non-.h5 cases kept in memory per worker
    simulation: SimulationOptions = field(default_factory=SimulationOptions)  # magnitude-only cases
    augment: AugmentOptions = field(default_factory=AugmentOptions)  # off unless set (training)
    strip_rows: int | None = None  # readout strip height, None = the whole image

    def __post_init__(self) -> None:
        MaskOptions(self.acceleration, self.pattern, self.center_lines)  # validates the mask settings
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 1):
            raise ValueError(f"crop must be (H, W) positive, got {self.crop!r}")
        if self.strip_rows is not None and self.strip_rows < 1:
            raise ValueError(f"strip_rows must be >= 1 or None, got {self.strip_rows!r}")


@dataclass
class ReconSample:
    """One slice. kspace: (C, T, H, W) complex64 undersampled (zeros where not sampled);
    mask: (1, T, 1, W) bool; maps: (C, H, W) complex64; target: (T, H, W) complex64;
    scale: the factor kspace and target were multiplied by; name, slice_index: origin."""

    kspace: Tensor
    mask: Tensor
    maps: Tensor
    target: Tensor
    scale: float
    name: str
    slice_index: int


@dataclass
class ReconBatch:
    """A batch. kspace: (B, C, T, H, W) complex64; mask: (B, 1, T, 1, W) bool;
    maps: (B, C, H, W) complex64; target: (B, T, H, W) complex64; scale: (B,) float32."""

    kspace: Tensor
    mask: Tensor
    maps: Tensor
    target: Tensor
    scale: Tensor
    names: list[str]
    slice_indices: list[int]

    def to(self, device: torch.device | str) -> ReconBatch:
        return ReconBatch(self.kspace.to(device), self.mask.to(device), self.maps.to(device),
                          self.target.to(device), self.scale.to(device), self.names, self.slice_indices)


def collate_recon(samples: list[ReconSample]) -> ReconBatch:
    """Stack samples into a :class:`ReconBatch`.

    Samples with fewer coils than the batch's largest count get zero coils (zero maps and
    zero k-space), which change nothing: a zero coil adds nothing to S^H, and DC leaves
    it zero. ValueError if the (T, H, W) shapes differ.
    """
    shapes = {tuple(s.kspace.shape[1:]) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"samples have different (T, H, W) k-space shapes {sorted(shapes)}; set ReconOptions.crop "
                         "(or augment.crop / strip_rows) or batch cases of one size")
    coils = max(s.kspace.shape[0] for s in samples)

    def pad(x: Tensor) -> Tensor:  # (C, ...) -> (coils, ...)
        return torch.cat([x, x.new_zeros(coils - x.shape[0], *x.shape[1:])]) if x.shape[0] < coils else x

    return ReconBatch(
        kspace=torch.stack([pad(s.kspace) for s in samples]), mask=torch.stack([s.mask for s in samples]),
        maps=torch.stack([pad(s.maps) for s in samples]), target=torch.stack([s.target for s in samples]),
        scale=torch.tensor([s.scale for s in samples], dtype=torch.float32),
        names=[s.name for s in samples], slice_indices=[s.slice_index for s in samples],
    )


class ReconDataset(Dataset):
    """Slices of cine cases as reconstruction samples (see the module docstring).

    cases: paths (any format cinemri.io reads) or Cases; each needs either image + coil
        maps (phantom) or fully sampled k-space.
    options: :class:`ReconOptions`.
    """

    def __init__(self, cases: list[str | os.PathLike | Case], options: ReconOptions = ReconOptions()) -> None:
        self.options = options
        self.source = CaseSource(cases, cache_cases=options.cache_cases)
        self.index = [(i, s) for i in range(len(self.source)) for s in range(self.source.shape(i)[0])]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the masks of this epoch (only used when mask_mode is "per_epoch")."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> ReconSample:
        i, s = self.index[item]
        case = self.source.slice(i, s)
        name = self.source.name(i)
        opts = self.options
        epoch = self.epoch if opts.mask_mode == "per_epoch" else "fixed"
        full, maps = self._full_kspace(case, name, s, epoch)  # (1, C, T, H, W), (1, C, H, W)
        if opts.crop is not None:
            full, maps = _crop(full, maps, opts.crop, name)
        target = sense_adjoint(full, maps)  # (1, T, H, W)
        if opts.single_coil:
            full = fft2c(target).unsqueeze(1)  # (1, 1, T, H, W)
            maps = torch.ones_like(maps[:, :1])  # (1, 1, H, W)
        _, _, t, h, w = full.shape
        mask = cartesian_mask(t, w, opts.acceleration, opts.center_lines, opts.pattern,
                              seed=stable_seed(opts.seed, name, s, epoch, "mask"))  # (T, W)
        mask = mask[None, None, :, None, :]  # (1, 1, T, 1, W)
        kspace = full * mask  # (1, C, T, H, W)
        scale = 1.0
        if opts.normalize:
            scale = normalisation_scale(sense_adjoint(kspace, maps))
        if opts.strip_rows is not None and opts.strip_rows < h:
            rows = opts.strip_rows
            start = int(np.random.default_rng(stable_seed(opts.seed, name, s, epoch, "strip")).integers(h - rows + 1))
            kspace = readout_strip(kspace, mask, start, rows)  # (1, C, T, rows, W)
            maps = image_strip(maps, start, rows)  # (1, C, rows, W)
            target = image_strip(target, start, rows)  # (1, T, rows, W)
        return ReconSample(kspace=(kspace[0] * scale).to(torch.complex64), mask=mask[0],
                           maps=maps[0].to(torch.complex64), target=(target[0] * scale).to(torch.complex64),
                           scale=scale, name=name, slice_index=s)

    def _full_kspace(self, case: Case, name: str, s: int, epoch: int | str) -> tuple[Tensor, Tensor]:
        """Fully sampled k-space (1, C, T, H, W) and maps (1, C, H, W), complex64, augmented
        when ``options.augment`` is active; ``epoch`` is the epoch or "fixed"."""
        opts = self.options
        draw_rng = np.random.default_rng(stable_seed(opts.seed, name, s, epoch, "augment"))
        if case.kspace is not None:
            if case.mask is not None and not bool(case.mask.all()):
                raise ValueError(f"{case.source or name}: k-space is undersampled (mask given); the "
                                 "reconstruction dataset needs fully sampled k-space for its target")
            full = torch.from_numpy(case.kspace)  # (1, C, T, H, W)
            if case.coil_maps is not None:
                maps = torch.from_numpy(case.coil_maps)
            else:
                calib = min(self.options.calib_lines, full.shape[-1])
                maps = estimate_coil_maps(full, center_lines=calib)  # (1, C, H, W)
            if opts.augment.active:
                draw = draw_augmentation(draw_rng, opts.augment, *full.shape[-3:])
                coil_images = apply_temporal(apply_spatial(ifft2c(full), draw), draw, dim=2)  # (1, C, T', h, w)
                full, maps = fft2c(coil_images), apply_spatial(maps, draw)  # (1, C, T', h, w), (1, C, h, w)
            return full, maps
        if case.image is None:
            raise ValueError(f"{case.source or name}: a reconstruction case needs fully sampled k-space or "
                             "an image (with or without coil maps)")
        image = torch.from_numpy(np.asarray(case.image)).to(torch.complex64)  # (1, T, H, W)
        maps = torch.from_numpy(case.coil_maps) if case.coil_maps is not None else None  # (1, C, H, W)
        if opts.augment.active:
            draw = draw_augmentation(draw_rng, opts.augment, *image.shape[-3:])
            image = apply_temporal(apply_spatial(image, draw), draw, dim=1)  # (1, T', h, w)
            maps = apply_spatial(maps, draw) if maps is not None else None  # (1, C, h, w)
        if maps is not None and not opts.simulation.replace_maps:
            full = sense_forward(image, maps)  # (1, C, T, H, W)
            if case.noise_std > 0:
                gen = torch.Generator().manual_seed(stable_seed(self.options.seed, name, s, "noise"))
                noise = torch.randn(full.shape, dtype=torch.complex64, generator=gen)  # E|n|^2 = 1
                full = full + case.noise_std * noise
            return full, maps
        # magnitude images (no maps) get a smooth phase; complex images keep theirs
        magnitude = maps is None and not bool((image.imag != 0).any())
        rng = np.random.default_rng(stable_seed(opts.seed, name, s, epoch, "acquisition"))
        acquisition = simulate_acquisition(rng, image[0], opts.simulation, add_phase=magnitude)
        full = sense_forward(acquisition.image[None], acquisition.maps[None])  # (1, C, T, H, W)
        gen = torch.Generator().manual_seed(stable_seed(opts.seed, name, s, epoch, "acquisition noise"))
        noise = torch.randn(full.shape, dtype=torch.complex64, generator=gen)  # E|n|^2 = 1
        return full + acquisition.noise_std * noise, acquisition.maps[None]


def normalisation_scale(zero_filled: Tensor) -> float:
    """1 / the 99th percentile of |zero_filled| (1 when that is 0): the factor every
    reconstruction model's k-space is multiplied by, in training and at inference.

    zero_filled: complex or real tensor of any shape. NumPy's percentile (linear interpolation,
    as torch.quantile) selects instead of sorting: 3 ms instead of 35 on a 12 x 154 x 224 slice."""
    p99 = float(np.percentile(zero_filled.detach().abs().float().cpu().numpy(), 99.0))
    return 1.0 / p99 if p99 > 0 else 1.0


def _crop(full: Tensor, maps: Tensor, size: tuple[int, int], name: str) -> tuple[Tensor, Tensor]:
    """Centre-crop coil images and maps to ``size``; k-space recomputed from the crop."""
    h, w = full.shape[-2:]
    if size[0] > h or size[1] > w:
        raise ValueError(f"crop {size} is larger than case {name!r}'s image ({h}, {w})")
    coil_images = ifft2c(full).numpy()  # (1, C, T, H, W)
    coil_images = torch.from_numpy(center_crop_or_pad(coil_images, size))  # (1, C, T, h, w)
    maps = torch.from_numpy(center_crop_or_pad(maps.numpy(), size))  # (1, C, h, w)
    return fft2c(coil_images), maps
