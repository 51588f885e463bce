"""Name -> builder tables for reconstruction models and classical baselines, and one factory."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from torch import nn

from cinemri.recon.baselines import cs_tv, zero_filled
from cinemri.recon.cascade import Cascade
from cinemri.recon.crnn import CRNN
from cinemri.recon.resnet3d import ResNet3D
from cinemri.recon.unet2d1d import UNet2D1D
from cinemri.recon.unet3d import UNet3D

DENOISERS: dict[str, Callable[..., nn.Module]] = {
    "unet3d": UNet3D,
    "resnet3d": ResNet3D,
    "crnn": CRNN,
    "unet2d1d": UNet2D1D,
}

BASELINES = {"zero_filled": zero_filled, "cs_tv": cs_tv}


def build_denoiser(name: str, options: Mapping[str, object] | None = None) -> nn.Module:
    """Build one denoiser (B, 2, T, H, W) -> (B, 2, T, H, W) by registry name.

    options: keyword arguments of the model's constructor (see its docstring).

    Raises:
        ValueError: on an unknown name or an option the model does not take.
    """
    if name not in DENOISERS:
        raise ValueError(f"denoiser must be one of {sorted(DENOISERS)}, got {name!r}")
    builder = DENOISERS[name]
    options = dict(options or {})
    accepted = set(inspect.signature(builder).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for denoiser {name!r}; accepted: {sorted(accepted)}")
    return builder(**options)


def build_reconstructor(
    denoiser: str,
    *,
    denoiser_options: Mapping[str, object] | None = None,
    num_stages: int = 3,
    shared_weights: bool = False,
    dc_mode: str = "soft",
    init_lambda: float = 1.0,
    checkpoint_stages: bool = False,
    init: str = "zero_filled",
    init_iters: int = 20,
    init_lambda_s: float = 0.0,
    channels_last: bool = False,
    residual_gates: bool = False,
) -> Cascade:
    """A :class:`~cinemri.recon.cascade.Cascade` of the named denoiser.

    forward(kspace (B, C, T, H, W) complex64, mask (B, 1, T, 1, W) bool, maps (B, C, H, W) complex64)
        -> (B, T, H, W) complex64

    Raises:
        ValueError: on an unknown denoiser or option, num_stages < 1, an unknown dc_mode or init.
    """
    build_denoiser(denoiser, denoiser_options)  # validate once, before building N copies
    return Cascade(
        lambda: build_denoiser(denoiser, denoiser_options),
        num_stages=num_stages,
        shared_weights=shared_weights,
        dc_mode=dc_mode,
        init_lambda=init_lambda,
        checkpoint_stages=checkpoint_stages,
        init=init,
        init_iters=init_iters,
        init_lambda_s=init_lambda_s,
        channels_last=channels_last,
        residual_gates=residual_gates,
    )
