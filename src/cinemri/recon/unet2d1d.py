"""Factorised (2+1)D U-Net denoiser: 2D spatial convolutions, then 1D temporal convolutions.

Every 3x3x3 convolution of the 3D U-Net is replaced by a (1, 3, 3) spatial convolution and a
(k, 1, 1) temporal one, each followed by normalisation and LeakyReLU (the "(2+1)D" split of
Tran et al., CVPR 2018). Space and time are learned by separate filters, with fewer weights
and an extra non-linearity between them. Pooling is spatial only (1, 2, 2): time is never
down-sampled, so short cines (T = 4) need no padding in time.
"""

from __future__ import annotations

from torch import Tensor, nn

from cinemri.recon.layers import check_unet_args, norm_act
from cinemri.recon.unet3d import UNetSkeleton


class FactorisedBlock(nn.Module):
    """Two (spatial conv -> norm -> act -> temporal conv -> norm -> act) pairs, then dropout.

    x: (B, in_channels, T, H, W) float -> (B, out_channels, T, H, W) float.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, dropout: float, temporal_kernel: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for _ in range(2):
            layers += [nn.Conv3d(prev, out_channels, (1, 3, 3), padding=(0, 1, 1)), *norm_act(out_channels, norm)]
            layers += [
                nn.Conv3d(out_channels, out_channels, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0)),
                *norm_act(out_channels, norm),
            ]
            prev = out_channels
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class UNet2D1D(nn.Module):
    """(2+1)D U-Net residual denoiser for a complex cine given as real channels.

    forward: x (B, 2, T, H, W) float -> (B, 2, T, H, W) float, out = x + net(x).

    Args:
        in_channels: input (= output) channels; 2 for real/imaginary.
        base_channels: width of the first level; doubles per level.
        depth: number of spatial down-sampling steps.
        norm: "instance" (affine InstanceNorm3d) or "none".
        dropout: Dropout3d probability at the end of every block (0 disables).
        temporal_kernel: odd length of the 1D temporal convolutions.

    Raises:
        ValueError: on a non-positive width, negative depth, dropout outside [0, 1), unknown
            norm or an even/non-positive temporal_kernel.
    """

    def __init__(
        self,
        *,
        in_channels: int = 2,
        base_channels: int = 32,
        depth: int = 3,
        norm: str = "instance",
        dropout: float = 0.0,
        temporal_kernel: int = 3,
    ) -> None:
        super().__init__()
        check_unet_args(in_channels, base_channels, depth, dropout, norm)
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be a positive odd integer, got {temporal_kernel}")

        def block(cin: int, cout: int) -> nn.Module:
            return FactorisedBlock(cin, cout, norm, dropout, temporal_kernel)

        self.net = UNetSkeleton(in_channels, base_channels, depth, (1, 2, 2), block)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
