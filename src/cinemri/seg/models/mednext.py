"""2D MedNeXt segmenter (Roy et al., "MedNeXt: Transformer-driven scaling of ConvNets for
medical image segmentation", MICCAI 2023; reference code MIC-DKFZ/MedNeXt), and UpKern.

Written here from the paper and the authors' description; the layout of levels, the
expansion ratios and block counts per size follow the reference implementation's factories.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from cinemri.seg.models.common import check_common_args, crop_to, pad_to_multiple

LEVELS = 9  # 4 encoder levels, bottleneck, 4 decoder levels
DEPTH = 4  # down-sampling steps
# size -> (expansion ratio per level, blocks per level), as in the reference factories
SIZES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "S": ((2,) * LEVELS, (2,) * LEVELS),
    "B": ((2, 3, 4, 4, 4, 4, 4, 3, 2), (2,) * LEVELS),
    "M": ((2, 3, 4, 4, 4, 4, 4, 3, 2), (3, 4, 4, 4, 4, 4, 4, 4, 3)),
    "L": ((3, 4, 8, 8, 8, 8, 8, 4, 3), (3, 4, 8, 8, 8, 8, 8, 4, 3)),
}
KERNELS = (3, 5, 7)


class MedNeXtBlock(nn.Module):
    """ConvNeXt-style block: depthwise kxk conv -> GroupNorm -> 1x1 expand -> GELU -> 1x1 back.

    x: (B, channels, H, W) float -> (B, out_channels, H, W) float; with ``residual`` (and
    out_channels == channels) the input is added. GroupNorm has one group per channel, as in
    the reference code. The depthwise conv has no bias (the reference's is cancelled exactly
    by that per-channel GroupNorm). ``dropout`` (our addition, 0 = the paper's block) acts
    after GELU.
    """

    def __init__(self, channels: int, out_channels: int, exp_r: int, kernel_size: int,
                 residual: bool = True, dropout: float = 0.0, stride: int = 1, transpose: bool = False) -> None:
        super().__init__()
        conv = nn.ConvTranspose2d if transpose else nn.Conv2d
        self.residual = residual
        self.dwconv = conv(channels, channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=channels,
                           bias=False)
        self.norm = nn.GroupNorm(channels, channels)
        self.expand = nn.Conv2d(channels, exp_r * channels, kernel_size=1)
        self.act = nn.GELU()
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.compress = nn.Conv2d(exp_r * channels, out_channels, kernel_size=1)

    def branch(self, x: Tensor) -> Tensor:
        """The block without its residual: (B, C, H, W) -> (B, out_channels, H_out, W_out)."""
        return self.compress(self.drop(self.act(self.expand(self.norm(self.dwconv(x))))))

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        return x + out if self.residual else out


class MedNeXtDown(MedNeXtBlock):
    """Down block: the block with a stride-2 depthwise conv, C -> 2C channels, plus a residual
    1x1 stride-2 conv. x: (B, C, H, W) -> (B, 2C, H / 2, W / 2), H and W even."""

    def __init__(self, channels: int, exp_r: int, kernel_size: int, dropout: float) -> None:
        super().__init__(channels, 2 * channels, exp_r, kernel_size, residual=False, dropout=dropout, stride=2)
        self.res_conv = nn.Conv2d(channels, 2 * channels, kernel_size=1, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x) + self.res_conv(x)


class MedNeXtUp(MedNeXtBlock):
    """Up block: the block with a stride-2 depthwise transposed conv, C -> C/2 channels, plus a
    residual 1x1 stride-2 transposed conv. x: (B, C, H, W) -> (B, C/2, 2H, 2W).

    Both transposed convs give 2H - 1 rows and columns; as in the reference code, one zero
    row and column are prepended to each to reach 2H x 2W.
    """

    def __init__(self, channels: int, exp_r: int, kernel_size: int, dropout: float) -> None:
        super().__init__(channels, channels // 2, exp_r, kernel_size, residual=False, dropout=dropout,
                         stride=2, transpose=True)
        self.res_conv = nn.ConvTranspose2d(channels, channels // 2, kernel_size=1, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        out = F.pad(self.branch(x), (1, 0, 1, 0))  # (B, C/2, 2H, 2W)
        return out + F.pad(self.res_conv(x), (1, 0, 1, 0))  # (B, C/2, 2H, 2W)


class MedNeXt2D(nn.Module):
    """2D MedNeXt for RV / MYO / LV segmentation.

    forward: image (B, in_channels, H, W) float32 -> logits (B, num_classes, H, W) float32.

    Stem 1x1 conv to ``base_width`` (32); encoder levels i = 0..3 with ``base_width * 2**i``
    channels, each a stack of MedNeXt blocks followed by a down block (channel doubling);
    bottleneck at ``16 * base_width``; decoder levels 3..0, each an up block (channel halving)
    whose output is *added* to the encoder's skip, then blocks; 1x1 conv head. ``size`` picks
    the expansion ratio and block count of each of the 9 levels (encoder 0-3, bottleneck,
    decoder 3-0); level i's down/up block uses level i+1's ratio, as in the reference code:

    - "S": exp_r 2 everywhere, 2 blocks per level
    - "B": exp_r (2, 3, 4, 4, 4, 4, 4, 3, 2), 2 blocks per level
    - "M", "L": the paper's larger sizes (3-4 and 3-8 blocks per level)

    Any H, W is accepted: the image is zero-padded at its bottom/right edge up to multiples
    of 16 and the logits cropped back to (H, W).

    Deep supervision: with ``deep_supervision=True`` in training mode, forward returns
    ``[logits, aux_1, aux_2, aux_3, aux_4]``, ``aux_i`` of shape (B, K, ceil(H / 2**i),
    ceil(W / 2**i)) from a 1x1 head on decoder level i (aux_4 on the bottleneck).

    Args:
        in_channels: image channels.
        num_classes: output classes K.
        size: "S", "B", "M" or "L".
        kernel_size: depthwise kernel, 3, 5 or 7 (train 3, then :func:`upkern` to 5).
        base_width: channels after the stem (32 in the paper).
        dropout: Dropout2d after GELU in every block (our addition; 0 = the paper).
        deep_supervision: also return coarser logits in training mode.

    Raises:
        ValueError: naming an unknown size or kernel_size, a non-positive width/class count
            or dropout outside [0, 1).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 4,
        size: str = "S",
        kernel_size: int = 3,
        base_width: int = 32,
        dropout: float = 0.0,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        check_common_args(in_channels, num_classes, dropout)
        if size not in SIZES:
            raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
        if kernel_size not in KERNELS:
            raise ValueError(f"kernel_size must be one of {KERNELS}, got {kernel_size!r}")
        if base_width < 1:
            raise ValueError(f"base_width must be >= 1, got {base_width}")
        exp_r, blocks = SIZES[size]
        self.size = size
        self.kernel_size = kernel_size
        self.deep_supervision = deep_supervision
        widths = [base_width * 2**i for i in range(DEPTH + 1)]

        def stack(level: int, width: int) -> nn.Sequential:
            return nn.Sequential(*[MedNeXtBlock(width, width, exp_r[level], kernel_size, dropout=dropout)
                                   for _ in range(blocks[level])])

        self.stem = nn.Conv2d(in_channels, base_width, kernel_size=1)
        self.enc_blocks = nn.ModuleList([stack(i, widths[i]) for i in range(DEPTH)])
        self.downs = nn.ModuleList([MedNeXtDown(widths[i], exp_r[i + 1], kernel_size, dropout) for i in range(DEPTH)])
        self.bottleneck = stack(DEPTH, widths[DEPTH])
        # decoder level i sits at list position DEPTH - 1 - i and uses exp_r[LEVELS - 1 - i]
        self.ups = nn.ModuleList([MedNeXtUp(widths[i + 1], exp_r[LEVELS - 1 - i], kernel_size, dropout)
                                  for i in reversed(range(DEPTH))])
        self.dec_blocks = nn.ModuleList([stack(LEVELS - 1 - i, widths[i]) for i in reversed(range(DEPTH))])
        self.head = nn.Conv2d(base_width, num_classes, kernel_size=1)
        # aux heads for levels 4 (bottleneck), 3, 2, 1
        self.aux_heads = nn.ModuleList(
            [nn.Conv2d(widths[i], num_classes, kernel_size=1) for i in reversed(range(1, DEPTH + 1))]
            if deep_supervision else []
        )

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        h, size = pad_to_multiple(x, 2**DEPTH)  # (B, C_in, H', W')
        h = self.stem(h)  # (B, w_0, H', W')
        skips = []
        for blocks, down in zip(self.enc_blocks, self.downs):
            h = blocks(h)  # (B, w_i, H' / 2^i, W' / 2^i)
            skips.append(h)
            h = down(h)  # (B, w_{i+1}, H' / 2^(i+1), W' / 2^(i+1))
        h = self.bottleneck(h)  # (B, w_4, H' / 16, W' / 16)
        want_aux = self.deep_supervision and self.training
        aux = [crop_to(self.aux_heads[0](h), size, scale=2**DEPTH)] if want_aux else []
        for j, (up, blocks) in enumerate(zip(self.ups, self.dec_blocks)):
            level = DEPTH - 1 - j
            h = blocks(up(h) + skips[level])  # (B, w_level, H' / 2^level, W' / 2^level)
            if want_aux and level > 0:
                aux.append(crop_to(self.aux_heads[j + 1](h), size, scale=2**level))
        logits = crop_to(self.head(h), size)  # (B, K, H, W)
        if want_aux:
            return [logits, *reversed(aux)]
        return logits


def upkern(target: MedNeXt2D, source_state: Mapping[str, Tensor]) -> MedNeXt2D:
    """UpKern: initialise a large-kernel MedNeXt from a trained smaller-kernel one's weights.

    ``target`` must have the same architecture as the source except ``kernel_size``. Every
    tensor whose shape matches is copied; every depthwise kernel (shape (C, 1, k, k)) is
    resized to the target's (C, 1, k', k') by bilinear interpolation (``align_corners=False``,
    as the reference code's default). For k = 3 -> k' = 5 one row [a, b, c] becomes
    [a, 0.6a + 0.4b, b, 0.4b + 0.6c, c]: the centre tap and the corner taps are kept exactly,
    a constant kernel stays constant and a symmetric kernel stays symmetric. (The kernel sum
    grows, so the k5 model's outputs are not those of the k3 model: it is an initialisation.)
    Loads the result into ``target`` in place and returns it.

    source_state: a state dict of a :class:`MedNeXt2D` (e.g. ``model_k3.state_dict()``).

    Raises:
        ValueError: if a key is missing on either side or a shape differs other than in the
            spatial size of a depthwise kernel.
    """
    target_state = target.state_dict()
    missing = sorted(set(target_state) - set(source_state))
    extra = sorted(set(source_state) - set(target_state))
    if missing or extra:
        raise ValueError(f"source_state does not match target: missing {missing[:5]}, unexpected {extra[:5]}")
    new_state = {}
    for key, weight in target_state.items():
        src = source_state[key]
        if src.shape == weight.shape:
            new_state[key] = src.detach().clone()
        elif src.ndim == 4 and weight.ndim == 4 and src.shape[:2] == weight.shape[:2] and src.shape[1] == 1:
            new_state[key] = F.interpolate(src.detach().float(), size=tuple(weight.shape[2:]), mode="bilinear",
                                           align_corners=False).to(weight.dtype)
        else:
            raise ValueError(f"source_state[{key!r}] has shape {tuple(src.shape)}, target needs {tuple(weight.shape)}")
    target.load_state_dict(new_state)
    return target


def depthwise_kernels(model: MedNeXt2D) -> Sequence[nn.Module]:
    """The depthwise (transposed) convolutions of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.groups > 1]
