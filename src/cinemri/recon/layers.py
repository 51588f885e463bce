"""Pieces the recon denoisers share: the U-Net argument checks and the norm + activation layers."""

from __future__ import annotations

from torch import nn

NORMS = ("instance", "none")


def check_unet_args(in_channels: int, base_channels: int, depth: int, dropout: float, norm: str) -> None:
    """Validate the options every U-Net here shares; raises ValueError naming the bad one."""
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if base_channels < 1:
        raise ValueError(f"base_channels must be >= 1, got {base_channels}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def norm_act(channels: int, norm: str, spatial_dims: int = 3) -> list[nn.Module]:
    """Normalisation (affine instance norm, or none) followed by LeakyReLU(0.2).

    The layers every recon block puts after a convolution; ``spatial_dims`` 3 gives
    InstanceNorm3d (inputs (N, channels, T, H, W)), 2 gives InstanceNorm2d ((N, channels, H, W)).
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    instance_norm = nn.InstanceNorm3d if spatial_dims == 3 else nn.InstanceNorm2d
    layers: list[nn.Module] = [instance_norm(channels, affine=True)] if norm == "instance" else []
    return layers + [nn.LeakyReLU(0.2, inplace=True)]
