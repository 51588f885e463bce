"""Residual 3D CNN denoiser without down-sampling: every layer sees the full (T, H, W) grid."""

from __future__ import annotations

from torch import Tensor, nn

from cinemri.recon.layers import norm_act


class ResidualBlock3d(nn.Module):
    """x + conv(act(norm(conv(x)))) with 3x3x3 convolutions at constant width.

    x: (B, width, T, H, W) float -> same shape.
    """

    def __init__(self, width: int, instance_norm: bool, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv3d(width, width, 3, padding=1),
            *norm_act(width, "instance" if instance_norm else "none"),
        ]
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
        layers.append(nn.Conv3d(width, width, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet3D(nn.Module):
    """3D ResNet residual denoiser: head conv, ``num_blocks`` residual blocks, tail conv.

    forward: x (B, 2, T, H, W) float -> (B, 2, T, H, W) float, out = x + net(x).
    Any (T, H, W) works (no pooling, 'same' padding).

    Args:
        in_channels: input (= output) channels; 2 for real/imaginary.
        width: feature channels of every layer.
        num_blocks: number of residual blocks.
        instance_norm: add affine InstanceNorm3d inside each block.
        dropout: Dropout3d probability inside each block (0 disables).

    Raises:
        ValueError: on non-positive in_channels/width, negative num_blocks or dropout outside [0, 1).
    """

    def __init__(
        self,
        *,
        in_channels: int = 2,
        width: int = 64,
        num_blocks: int = 5,
        instance_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if num_blocks < 0:
            raise ValueError(f"num_blocks must be >= 0, got {num_blocks}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.head = nn.Conv3d(in_channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock3d(width, instance_norm, dropout) for _ in range(num_blocks)])
        self.tail = nn.Conv3d(width, in_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        features = self.blocks(self.head(x))  # (B, width, T, H, W)
        return x + self.tail(features)
