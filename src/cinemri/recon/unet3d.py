"""3D U-Net denoiser over (T, H, W), optionally with CBAM in every block.

Also holds the U-Net skeleton shared with the (2+1)D U-Net in :mod:`cinemri.recon.unet2d1d`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from cinemri.recon.cbam import CBAM
from cinemri.recon.layers import check_unet_args, norm_act
from cinemri.recon.padding import crop_to, pad_to_multiple


class ConvBlock3d(nn.Module):
    """Two 3x3x3 conv -> norm -> LeakyReLU layers, dropout, optional CBAM.

    x: (B, in_channels, T, H, W) float -> (B, out_channels, T, H, W) float.
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm: str, dropout: float, cbam: bool, cbam_reduction: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(in_channels, out_channels, 3, padding=1), *norm_act(out_channels, norm)]
        layers += [nn.Conv3d(out_channels, out_channels, 3, padding=1), *norm_act(out_channels, norm)]
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
        if cbam:
            layers.append(CBAM(out_channels, reduction=cbam_reduction, spatial_dims=3))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


BlockFactory = Callable[[int, int], nn.Module]  # (in_channels, out_channels) -> block


def max_pool_views(x: Tensor, pool: tuple[int, int, int]) -> Tensor:
    """Max pooling with kernel = stride = ``pool`` (entries 1 or 2) as the elementwise maximum of
    strided views; x: (B, C, T, H, W) with T, H, W multiples of ``pool`` -> (B, C, T/pt, H/ph, W/pw).

    The same values as ``nn.MaxPool3d(pool)``; for inference only (no gradient is wanted there):
    it skips the argmax indices and the generic kernel, ~7x faster on CPU in bf16. With a
    gradient, MaxPool3d's backward is the faster one, and training keeps it.
    """
    views = [x]
    for axis, size in zip((2, 3, 4), pool):
        if size not in (1, 2):
            raise ValueError(f"max_pool_views takes pool entries of 1 or 2, got {pool}")
        if size == 2:  # the even and the odd positions along this axis
            views = [v[(slice(None),) * axis + (slice(start, None, 2),)] for v in views for start in (0, 1)]
    out = views[0]
    for view in views[1:]:
        out = torch.maximum(out, view)
    return out


class UNetSkeleton(nn.Module):
    """Encoder-decoder with skip connections and a residual output, blocks supplied by the caller.

    x: (B, in_channels, T, H, W) float -> (B, in_channels, T, H, W) float, out = x + net(x).
    Channels double at every level (base, 2 base, ..., 2^depth base at the bottleneck); max
    pooling with kernel ``pool`` down, transposed convolution with the same kernel up. Inputs
    whose (T, H, W) are not multiples of pool^depth are zero-padded at the far end and cropped back.
    """

    def __init__(
        self, in_channels: int, base_channels: int, depth: int, pool: tuple[int, int, int], block: BlockFactory
    ) -> None:
        super().__init__()
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.pool = pool
        self.depth = depth
        self.encoders = nn.ModuleList()
        prev = in_channels
        for width in widths[:-1]:
            self.encoders.append(block(prev, width))
            prev = width
        self.down = nn.MaxPool3d(pool)
        self.bottleneck = block(prev, widths[-1])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose3d(width * 2, width, kernel_size=pool, stride=pool))
            self.decoders.append(block(width * 2, width))
        self.head = nn.Conv3d(widths[0], in_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        multiple = tuple(p**self.depth for p in self.pool)
        h, size = pad_to_multiple(x, multiple)  # (B, C_in, T', H', W')
        skips = []
        for encoder in self.encoders:
            h = encoder(h)  # (B, c_i, T_i, H_i, W_i)
            skips.append(h)
            h = self.down(h) if torch.is_grad_enabled() and h.requires_grad else max_pool_views(h, self.pool)
            # (B, c_i, T_i / pt, H_i / 2, W_i / 2)
        h = self.bottleneck(h)  # (B, c_depth, ...)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            h = decoder(torch.cat([up(h), skip], dim=1))  # (B, c_i, T_i, H_i, W_i)
        return x + crop_to(self.head(h), size)


class UNet3D(nn.Module):
    """3D U-Net residual denoiser for a complex cine given as real channels.

    forward: x (B, 2, T, H, W) float -> (B, 2, T, H, W) float, out = x + net(x).

    Args:
        in_channels: input (= output) channels; 2 for real/imaginary.
        base_channels: width of the first level; doubles per level.
        depth: number of down-sampling steps.
        norm: "instance" (affine InstanceNorm3d) or "none".
        dropout: Dropout3d probability at the end of every block (0 disables).
        cbam: add a CBAM (channel + 3D spatial attention) at the end of every block.
        cbam_reduction: reduction ratio of CBAM's channel MLP.
        pool_time: pool (2, 2, 2) in time and space; False pools (1, 2, 2), space only.

    Raises:
        ValueError: on a non-positive width, negative depth, dropout outside [0, 1) or unknown norm.
    """

    def __init__(
        self,
        *,
        in_channels: int = 2,
        base_channels: int = 32,
        depth: int = 3,
        norm: str = "instance",
        dropout: float = 0.0,
        cbam: bool = False,
        cbam_reduction: int = 8,
        pool_time: bool = False,
    ) -> None:
        super().__init__()
        check_unet_args(in_channels, base_channels, depth, dropout, norm)
        if cbam_reduction < 1:
            raise ValueError(f"cbam_reduction must be >= 1, got {cbam_reduction}")

        def block(cin: int, cout: int) -> nn.Module:
            return ConvBlock3d(cin, cout, norm, dropout, cbam, cbam_reduction)

        pool = (2, 2, 2) if pool_time else (1, 2, 2)
        self.net = UNetSkeleton(in_channels, base_channels, depth, pool, block)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
