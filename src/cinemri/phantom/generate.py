"""One phantom case: anatomy, motion, contrast, coils and ground truth in a :class:`Case`."""

from __future__ import annotations

import numpy as np

from ..case import Case
from ..clinical import compute_indices
from ..labels import LV
from .coils import coil_maps
from .contrast import bias_and_phase, draw_contrast, smooth_field
from .heart import R_ENVELOPE, THETA, draw_heart
from .options import GROUPS, SLICE_RANGE, SNR_RANGE, PhantomOptions, make_options
from .render import acquire, majority_labels, render_heart
from .thorax import draw_thorax, render_thorax

_STREAMS = ("case", "heart", "thorax", "contrast", "field", "coils")


def _grid(height: int, width: int, spacing: float, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """mm coordinates (x along W, y along H) of (sub)pixel centres, origin at pixel (H/2, W/2).

    returns x, y: (H*factor, W*factor) float64 each.
    """
    sub = (np.arange(factor) + 0.5) / factor - 0.5
    cols = (np.arange(width)[:, None] + sub[None]).ravel() - width // 2
    rows = (np.arange(height)[:, None] + sub[None]).ravel() - height // 2
    return np.meshgrid(cols * spacing, rows * spacing, indexing="xy")


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    return np.cos(angle) * x + np.sin(angle) * y, -np.sin(angle) * x + np.cos(angle) * y


def generate(seed: int, opts: PhantomOptions) -> Case:
    """The phantom case of ``seed`` under ``opts`` (see :func:`generate_case`)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(6))))
    draw = rng["case"]
    group = opts.group if opts.group is not None else GROUPS[int(draw.integers(len(GROUPS)))]
    slices = opts.slices if opts.slices is not None else int(draw.integers(SLICE_RANGE[0], SLICE_RANGE[1] + 1))
    snr = float(opts.snr) if opts.snr is not None else float(draw.uniform(*SNR_RANGE))
    h, w, t, f = opts.height, opts.width, opts.frames, opts.supersample
    dxy = draw.uniform(*opts.fov_mm) / h  # mm, square pixels
    dz = draw.uniform(*opts.slice_distance_mm)
    tilt = draw.uniform(-0.35, 0.35)  # in-plane orientation of the whole anatomy, rad
    z = (np.arange(slices) + 0.5) * dz  # (S,) mm from the base

    thorax = draw_thorax(rng["thorax"], w * dxy / 2, h * dxy / 2)
    centre = (draw.uniform(0, 25), thorax.body_y - draw.uniform(10, 30))
    heart = draw_heart(rng["heart"], group, slices, t, dz, centre, np.pi + draw.uniform(-0.35, 0.35))
    contrast = draw_contrast(rng["contrast"])

    xs, ys = _rotate(*_grid(h, w, dxy, f), tilt)  # (H*f, W*f) anatomy frame, mm
    x, y = _rotate(*_grid(h, w, dxy, 1), tilt)  # (H, W)
    magnitude = np.empty((slices, t, h, w), np.float32)
    statics = np.empty((slices,) + xs.shape, np.float32)  # (S, H*f, W*f)
    labels = np.zeros((slices, t, h, w), np.uint8)
    reach = heart.radii[..., R_ENVELOPE, :].max() + np.abs(heart.centre - heart.centre[0]).max() + 3 * dxy
    hx, hy = heart.centre[0]  # anatomy frame -> image frame (inverse of _rotate)
    cj, ci = np.cos(tilt) * hx - np.sin(tilt) * hy, np.sin(tilt) * hx + np.cos(tilt) * hy
    # heart box in low-res pixels (the rotation back to the image frame moves the centre)
    row_c, col_c = h // 2 + ci / dxy, w // 2 + cj / dxy
    half = reach / dxy
    r0, r1 = max(int(row_c - half), 0), min(int(np.ceil(row_c + half)) + 1, h)
    c0, c1 = max(int(col_c - half), 0), min(int(np.ceil(col_c + half)) + 1, w)
    for s in range(slices):
        zone_r = heart.radii[s, :, R_ENVELOPE].max(0) + 3.0  # (N,) swept by the heart, mm
        ex, ey = xs - heart.centre[0, 0], ys - heart.centre[0, 1]
        zone = np.hypot(ex, ey) < np.interp(np.arctan2(ey, ex), THETA, zone_r, period=2 * np.pi)
        texture = smooth_field(rng["field"], xs.shape, 2.0 * f)
        static = render_thorax(thorax, contrast, xs, ys, s / max(slices - 1, 1), zone, texture, rng["thorax"])
        crop = (slice(r0 * f, r1 * f), slice(c0 * f, c1 * f))
        lab_ss, sig_ss = render_heart(heart, s, xs[crop], ys[crop], static[crop], texture[crop], contrast)
        labels[s, :, r0:r1, c0:c1] = majority_labels(lab_ss, f)  # (T, r1-r0, c1-c0)
        statics[s] = static
        # band-limited imaging (partial volume) of the heart's change over the static anatomy
        magnitude[s] = acquire(sig_ss - static[crop][None], f, crop[0], crop[1], h, w)  # (T, H, W)
    magnitude += acquire(statics, f)[:, None]  # (S, 1, H, W) static anatomy, once per slice

    bias, phase = bias_and_phase(rng["field"], x, y, z, max(h, w) * dxy / 2)  # (S, H, W) each
    image = (magnitude * bias[:, None] * np.exp(1j * phase)[:, None]).astype(np.complex64)
    maps = coil_maps(rng["coils"], opts.coils, x, y, z, (thorax.body_y, thorax.half_x, thorax.half_y))
    blood = np.median(np.abs(image[labels == LV]))
    spacing = (float(dz), float(dxy), float(dxy))
    indices = compute_indices(labels, spacing, 0, heart.es_frame).as_dict()
    return Case(name=f"phantom_{seed:05d}", spacing=spacing, image=image, labels=labels, coil_maps=maps,
                ed_frame=0, es_frame=int(heart.es_frame), group=group, labelled_frames=tuple(range(t)),
                noise_std=float(blood / snr), indices=indices, source="cinemri.phantom")


def generate_case(seed: int, **options) -> Case:
    """Draw one digital cardiac cine case.

    seed: non-negative int; the same seed and options give a bit-identical case.
    options: fields of :class:`PhantomOptions` (height, width, frames, slices, coils, group,
        snr, supersample, fov_mm, slice_distance_mm); an unknown name raises ValueError.
    returns a Case with
        image: (S, T, H, W) complex64 noise-free coil-combined cine (bSSFP-like magnitude x
            smooth bias x smooth background phase; LV blood about 1),
        labels: (S, T, H, W) uint8 {0 bg, 1 RV, 2 MYO, 3 LV}, every frame labelled,
        coil_maps: (S, C, H, W) complex64 with sum_c |S_c|^2 = 1 at every pixel,
        spacing (dz, dy, dx) mm, ed_frame = 0, es_frame, group, noise_std (std of the complex
        k-space noise per sample, fft2c units; = median LV blood magnitude / snr), indices
        (cinemri.clinical.compute_indices of the labels at ED/ES).
    Raises ValueError on a bad seed or option.
    """
    return generate(seed, make_options(options))


def simulate_kspace(case: Case, seed: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Noisy multi-coil k-space of a phantom case, as the reconstruction datasets simulate it.

    kspace = sense_forward(image, maps) + noise_std * (n1 + i n2) / sqrt(2), n1, n2 ~ N(0, 1)
    from ``torch.Generator().manual_seed(seed)``, then multiplied by the mask.
    mask: (T, W) bool or None (fully sampled). returns (S, C, T, H, W) complex64.
    """
    import torch  # only here: generating and writing phantoms needs no torch

    from ..physics import sense_forward

    if case.image is None or case.coil_maps is None:
        raise ValueError(f"case {case.name!r} needs image and coil_maps to simulate k-space")
    image, maps = torch.from_numpy(case.image), torch.from_numpy(case.coil_maps)
    kspace = sense_forward(image, maps)  # (S, C, T, H, W)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.complex(torch.randn(kspace.shape, generator=gen), torch.randn(kspace.shape, generator=gen))
    kspace = kspace + (case.noise_std / np.sqrt(2.0)) * noise
    if mask is not None:
        mask = torch.as_tensor(np.asarray(mask, dtype=bool))
        if mask.shape != (case.num_frames, kspace.shape[-1]):
            raise ValueError(f"mask must be (T, W) = ({case.num_frames}, {kspace.shape[-1]}), got {tuple(mask.shape)}")
        kspace = kspace * mask[None, None, :, None, :]
    return kspace.numpy().astype(np.complex64)
