"""MMNet: multi-scale multi-skip connection network, extended from LV-only to RV / MYO / LV.

Paper: "MMNet: a multi-scale multi-skip connection network for left-ventricular segmentation
of cardiac MRI", Applied Intelligence (2021/22), doi:10.1007/s10489-021-02720-9. What the
paper states and is kept here: (1) an encoder with a multi-scale feature-fusion (MSFF) module
of dilated convolutions with different receptive fields; (2) a decoder with full-scale skip
connections (UNet3+, Huang et al. 2020): every decoder level receives every encoder level and
every deeper decoder level, resized to its scale; (3) pre-activation (norm -> ReLU) before
every weight layer. The paper's exact dilation rates, widths and module wiring are not public
in code; every such detail below is marked *our choice*.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinemri.seg.models.common import check_common_args, check_norm, crop_to, norm_layer, pad_to_multiple


class PreActConv(nn.Sequential):
    """norm -> ReLU -> conv (pre-activation). x: (B, cin, H, W) -> (B, cout, H, W).

    ``bias`` is off except in the head: every other conv output reaches a normalisation
    (possibly through identity shortcuts), which would cancel a per-channel bias.
    """

    def __init__(self, cin: int, cout: int, norm: str, kernel_size: int = 3, bias: bool = False) -> None:
        super().__init__(norm_layer(norm, cin), nn.ReLU(inplace=False),
                         nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=bias))


class ResidualBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016): two PreActConv 3x3 layers + shortcut
    (1x1 conv when the width changes; identity otherwise). x: (B, cin, H, W) -> (B, cout, H, W)."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(PreActConv(cin, cout, norm), *([nn.Dropout2d(dropout)] if dropout > 0 else []),
                                  PreActConv(cout, cout, norm))
        self.shortcut = nn.Conv2d(cin, cout, kernel_size=1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.body(x)


class MultiScaleFusion(nn.Module):
    """Multi-scale feature fusion (MSFF) with dilated convolutions.

    x: (B, C, H, W) -> (B, C, H, W). Our choice of wiring: one shared pre-activation, then
    parallel branches, a 1x1 conv and one 3x3 conv per entry of ``dilations`` (dilation d,
    padding d, so receptive fields 3, 5, 9, 17 for (1, 2, 4, 8)), each with ``C // 4``
    channels (at least 1); concatenated, fused by a pre-activated 1x1 conv back to C, and
    added to the input (residual).
    """

    def __init__(self, channels: int, dilations: Sequence[int], norm: str) -> None:
        super().__init__()
        branch = max(channels // 4, 1)
        self.pre = nn.Sequential(norm_layer(norm, channels), nn.ReLU(inplace=False))
        self.branches = nn.ModuleList([nn.Conv2d(channels, branch, kernel_size=1, bias=False)] + [
            nn.Conv2d(channels, branch, kernel_size=3, padding=d, dilation=d, bias=False) for d in dilations
        ])
        self.fuse = PreActConv(branch * len(self.branches), channels, norm, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.pre(x)  # (B, C, H, W)
        multi = torch.cat([b(a) for b in self.branches], dim=1)  # (B, branch * (1 + len(dilations)), H, W)
        return x + self.fuse(multi)


class MMNet(nn.Module):
    """MMNet (see the module docstring) for K-class cardiac segmentation.

    forward: image (B, in_channels, H, W) float32 -> logits (B, num_classes, H, W) float32.

    Encoder (our choice of widths/blocks): a plain 3x3 stem conv (the raw z-scored image is
    not passed through a ReLU), then ``depth + 1`` levels with ``base_width * 2**i`` channels,
    each a pre-activation residual block followed by an MSFF module; 2x2 max pooling between
    levels. Decoder (UNet3+ full-scale skips): level i (from depth-1 down to 0) takes encoder
    levels j < i max-pooled by 2**(i-j), encoder level i, and decoder levels j > i (the
    deepest "decoder" level is the encoder's last) bilinearly upsampled by 2**(j-i); each
    through a PreActConv 3x3 to ``skip_width`` channels; concatenated ((depth + 1) *
    skip_width channels) and fused by a PreActConv 3x3 of the same width. Head: norm -> ReLU
    -> 1x1 conv to ``num_classes`` (softmax over K classes instead of the paper's LV-only map).

    Any H, W is accepted: zero-padded at the bottom/right edge to multiples of 2**depth,
    logits cropped back to (H, W).

    Deep supervision: with ``deep_supervision=True`` in training mode forward returns
    ``[logits, aux_1, ..., aux_depth]``, ``aux_i`` (B, K, ceil(H / 2**i), ceil(W / 2**i))
    from a pre-activated 1x1 head on decoder level i (aux_depth on the deepest encoder level).

    Args:
        in_channels: image channels.
        num_classes: output classes K.
        base_width: channels of encoder level 0 (our choice: 32).
        depth: number of down-sampling steps (our choice: 4, as UNet3+).
        skip_width: channels of every full-scale skip (our choice: 32; UNet3+ uses 64).
        dilations: dilation rates of the MSFF 3x3 branches (our choice: (1, 2, 4, 8)).
        norm: normalisation in every pre-activation, "batch" (the paper), "instance" or "group".
        dropout: Dropout2d inside every encoder residual block (0 disables).
        deep_supervision: also return coarser logits in training mode.

    Raises:
        ValueError: naming a non-positive width/depth/class count, an empty or non-positive
            dilation list, dropout outside [0, 1) or an unknown norm.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 4,
        base_width: int = 32,
        depth: int = 4,
        skip_width: int = 32,
        dilations: Sequence[int] = (1, 2, 4, 8),
        norm: str = "batch",
        dropout: float = 0.0,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        check_common_args(in_channels, num_classes, dropout)
        check_norm(norm)
        for name, value in (("base_width", base_width), ("depth", depth), ("skip_width", skip_width)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise ValueError(f"dilations must be a non-empty list of positive ints, got {dilations}")
        self.depth = depth
        self.dilations = dilations
        self.deep_supervision = deep_supervision
        widths = [base_width * 2**i for i in range(depth + 1)]
        levels = depth + 1
        fused = levels * skip_width

        self.stem = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False)
        self.encoders = nn.ModuleList([
            nn.Sequential(ResidualBlock(widths[max(i - 1, 0)], widths[i], norm, dropout),
                          MultiScaleFusion(widths[i], dilations, norm))
            for i in range(levels)
        ])
        # skips[i][j]: the 3x3 PreActConv carrying source level j to decoder level i (i < depth)
        self.skips = nn.ModuleList([
            nn.ModuleList([PreActConv(widths[j] if j <= i or j == depth else fused, skip_width, norm)
                           for j in range(levels)])
            for i in range(depth)
        ])
        self.fuse = nn.ModuleList([PreActConv(fused, fused, norm) for _ in range(depth)])
        self.head = PreActConv(fused, num_classes, norm, kernel_size=1, bias=True)
        # aux heads for levels depth, depth-1, ..., 1
        self.aux_heads = nn.ModuleList(
            [PreActConv(widths[depth] if i == depth else fused, num_classes, norm, kernel_size=1, bias=True)
             for i in reversed(range(1, levels))]
            if deep_supervision else []
        )

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        h, size = pad_to_multiple(x, 2**self.depth)  # (B, C_in, H', W')
        h = self.stem(h)  # (B, w_0, H', W')
        enc: list[Tensor] = []
        for i, encoder in enumerate(self.encoders):
            if i > 0:
                h = F.max_pool2d(h, 2)  # (B, w_{i-1}, H' / 2^i, W' / 2^i)
            h = encoder(h)  # (B, w_i, H' / 2^i, W' / 2^i)
            enc.append(h)
        dec: dict[int, Tensor] = {self.depth: enc[self.depth]}
        for i in reversed(range(self.depth)):
            parts = []
            for j, conv in enumerate(self.skips[i]):
                if j < i:
                    src = F.max_pool2d(enc[j], 2 ** (i - j))  # (B, w_j, H' / 2^i, W' / 2^i)
                elif j == i:
                    src = enc[i]
                else:
                    src = F.interpolate(dec[j], scale_factor=2 ** (j - i), mode="bilinear", align_corners=False)
                parts.append(conv(src))  # (B, skip_width, H' / 2^i, W' / 2^i)
            dec[i] = self.fuse[i](torch.cat(parts, dim=1))  # (B, (depth + 1) * skip_width, H' / 2^i, W' / 2^i)
        logits = crop_to(self.head(dec[0]), size)  # (B, K, H, W)
        if self.deep_supervision and self.training:
            aux = [crop_to(head(dec[self.depth - k]), size, scale=2 ** (self.depth - k))
                   for k, head in enumerate(self.aux_heads)]  # levels depth .. 1
            return [logits, *reversed(aux)]
        return logits
