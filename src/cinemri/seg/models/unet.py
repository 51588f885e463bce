"""2D U-Net segmenter in the nnU-Net style (Isensee et al., Nature Methods 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cinemri.seg.models.common import check_common_args, check_norm, crop_to, norm_layer, pad_to_multiple

DOWNSAMPLES = ("conv", "maxpool")


class ConvStage(nn.Module):
    """Two (3x3 conv -> norm -> LeakyReLU(0.01)) layers, then optional Dropout2d.

    The convolutions have no bias: the normalisation right after would cancel it.

    x: (B, in_channels, H, W) float -> (B, out_channels, H / stride, W / stride) float;
    ``stride`` 2 makes the first convolution the down-sampling step (nnU-Net's strided conv).
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, dropout: float, stride: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, cin in enumerate((in_channels, out_channels)):
            layers += [
                nn.Conv2d(cin, out_channels, 3, stride=stride if i == 0 else 1, padding=1, bias=False),
                norm_layer(norm, out_channels),
                nn.LeakyReLU(0.01, inplace=True),
            ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class UNet2D(nn.Module):
    """2D U-Net with skip connections for RV / MYO / LV segmentation.

    forward: image (B, in_channels, H, W) float32 -> logits (B, num_classes, H, W) float32.

    Level i (0 = full resolution) has ``min(base_width * 2**i, max_width)`` channels; there
    are ``depth`` down-sampling steps. Every stage is (3x3 conv, norm, LeakyReLU) x 2. Down:
    the first conv of the stage with stride 2 (``downsample="conv"``, nnU-Net) or a 2x2 max
    pool before the stage (``"maxpool"``, original U-Net). Up: 2x2 transposed conv with
    stride 2, concatenated with the encoder's skip, then a stage. Head: 1x1 conv.

    Any H, W is accepted: the image is zero-padded at its bottom/right edge up to multiples
    of 2**depth and the logits are cropped back to (H, W).

    Deep supervision: with ``deep_supervision=True`` and the module in training mode, forward
    returns a list ``[logits, aux_1, ..., aux_{depth-1}]`` where ``aux_i`` is
    (B, num_classes, ceil(H / 2**i), ceil(W / 2**i)), from a 1x1 head on decoder level i
    (nnU-Net's scheme). In eval mode, or without the flag, forward returns logits only.

    Args:
        in_channels: image channels (1 for a magnitude cine frame).
        num_classes: output classes K (4: background, RV, MYO, LV).
        base_width: channels at full resolution.
        depth: number of down-sampling steps (>= 1).
        max_width: cap on the channels of any level (nnU-Net caps 2D at 512).
        norm: "instance" (default, nnU-Net), "batch" or "group" (8 groups).
        dropout: Dropout2d probability at the end of every stage (0 disables).
        downsample: "conv" (strided conv) or "maxpool".
        deep_supervision: also return coarser logits in training mode (see above).

    Raises:
        ValueError: naming a non-positive width/depth/class count, dropout outside [0, 1),
            an unknown norm or downsample.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 4,
        base_width: int = 32,
        depth: int = 4,
        max_width: int = 512,
        norm: str = "instance",
        dropout: float = 0.0,
        downsample: str = "conv",
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        check_common_args(in_channels, num_classes, dropout)
        check_norm(norm)
        if base_width < 1:
            raise ValueError(f"base_width must be >= 1, got {base_width}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if max_width < base_width:
            raise ValueError(f"max_width must be >= base_width ({base_width}), got {max_width}")
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {downsample!r}")
        self.depth = depth
        self.deep_supervision = deep_supervision
        widths = [min(base_width * 2**i, max_width) for i in range(depth + 1)]
        stride = 2 if downsample == "conv" else 1

        self.encoders = nn.ModuleList([ConvStage(in_channels, widths[0], norm, dropout)])
        for i in range(1, depth + 1):
            stage = ConvStage(widths[i - 1], widths[i], norm, dropout, stride=stride)
            self.encoders.append(stage if stride == 2 else nn.Sequential(nn.MaxPool2d(2), stage))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):  # decoder level i, deepest first
            self.ups.append(nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2))
            self.decoders.append(ConvStage(2 * widths[i], widths[i], norm, dropout))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        # aux heads for decoder levels depth-1 .. 1 (same order as self.decoders)
        self.aux_heads = nn.ModuleList(
            [nn.Conv2d(widths[i], num_classes, kernel_size=1) for i in reversed(range(1, depth))]
            if deep_supervision else []
        )
        self.apply(_he_init)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        h, size = pad_to_multiple(x, 2**self.depth)  # (B, C_in, H', W')
        skips = []
        for encoder in self.encoders:
            h = encoder(h)  # (B, w_i, H' / 2^i, W' / 2^i)
            skips.append(h)
        h = skips.pop()  # bottleneck (B, w_depth, H' / 2^depth, W' / 2^depth)
        want_aux = self.deep_supervision and self.training
        aux: list[Tensor] = []
        for j, (up, decoder) in enumerate(zip(self.ups, self.decoders)):
            level = self.depth - 1 - j
            h = decoder(torch.cat([up(h), skips[level]], dim=1))  # (B, w_level, H' / 2^level, W' / 2^level)
            if want_aux and level > 0:
                aux.append(crop_to(self.aux_heads[j](h), size, scale=2**level))
        logits = crop_to(self.head(h), size)  # (B, K, H, W)
        if want_aux:
            return [logits, *reversed(aux)]
        return logits


def _he_init(module: nn.Module) -> None:
    """Kaiming-normal weights for LeakyReLU(0.01) and zero biases (nnU-Net's initialisation)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, a=1e-2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
