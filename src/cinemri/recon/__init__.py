"""Dynamic reconstruction: denoising networks, data consistency, the unrolled cascade, baselines.

:mod:`cinemri.recon.config` holds the experiment a checkpoint carries and
:mod:`cinemri.recon.inference` loads a checkpoint and reconstructs cases with its settings
(neither is imported here: the networks load without them).

Conventions (DESIGN.md): k-space (B, C, T, H, W) complex64, maps (B, C, H, W) complex64,
mask (B, 1, T, 1, W) bool, image (B, T, H, W) complex64; networks see (B, 2, T, H, W) float
through :mod:`cinemri.recon.channels` only.
"""

from cinemri.recon.baselines import CSOptions, cs_tv, tv_objective, view_sharing, zero_filled
from cinemri.recon.cascade import INITS, Cascade
from cinemri.recon.cbam import CBAM
from cinemri.recon.channels import channels_to_complex, complex_to_channels
from cinemri.recon.crnn import CRNN
from cinemri.recon.dc import DataConsistency, hard_dc, soft_dc
from cinemri.recon.registry import BASELINES, DENOISERS, build_denoiser, build_reconstructor
from cinemri.recon.resnet3d import ResNet3D
from cinemri.recon.unet2d1d import UNet2D1D
from cinemri.recon.unet3d import UNet3D

__all__ = [
    "BASELINES",
    "CBAM",
    "CRNN",
    "CSOptions",
    "Cascade",
    "DENOISERS",
    "DataConsistency",
    "INITS",
    "ResNet3D",
    "UNet2D1D",
    "UNet3D",
    "build_denoiser",
    "build_reconstructor",
    "channels_to_complex",
    "complex_to_channels",
    "cs_tv",
    "hard_dc",
    "soft_dc",
    "tv_objective",
    "view_sharing",
    "zero_filled",
]
