"""CRNN denoiser: a per-frame 2D U-Net whose features are propagated over time by a
bidirectional convolutional GRU.

Our design, after the idea of CRNN-MRI (Qin et al., IEEE TMI 2019): convolutions learn each
frame's spatial structure, recurrent units carry information between frames in both directions
(cardiac cines have no causal direction). The encoder and decoder run on every frame separately
(frames folded into the batch); the bidirectional ConvGRU runs over T at the bottleneck and,
with ``gru_on_skips``, also on every skip connection so that fine scales see neighbouring frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cinemri.recon.padding import crop_to, pad_to_multiple
from cinemri.recon.layers import check_unet_args, norm_act


class ConvGRUCell(nn.Module):
    """One convolutional GRU step.

    z, r = sigmoid(conv([x, h])); n = tanh(conv([x, r * h])); h' = (1 - z) * h + z * n
    x: (N, input_channels, H, W), h: (N, hidden_channels, H, W) float -> h': (N, hidden_channels, H, W).
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        self.hidden_channels = hidden_channels
        cin = input_channels + hidden_channels
        self.gates = nn.Conv2d(cin, 2 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.candidate = nn.Conv2d(cin, hidden_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)  # 2 x (N, Ch, H, W)
        new = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))  # (N, Ch, H, W)
        return (1 - update) * h + update * new


class BiConvGRU(nn.Module):
    """Bidirectional ConvGRU over the frame axis, merged back to the input width, residual.

    x: (B, T, C, H, W) float -> (B, T, C, H, W) float, x + conv1x1([h_forward, h_backward]).
    Hidden states start at zero at both ends of the cine.
    """

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.forward_cell = ConvGRUCell(channels, hidden_channels, kernel_size)
        self.backward_cell = ConvGRUCell(channels, hidden_channels, kernel_size)
        self.merge = nn.Conv2d(2 * hidden_channels, channels, kernel_size=1)

    def _run(self, cell: ConvGRUCell, x: Tensor, frames: range) -> list[Tensor]:
        b, _, _, h, w = x.shape
        state = x.new_zeros(b, cell.hidden_channels, h, w)  # (B, Ch, H, W)
        states: list[Tensor] = [state] * x.shape[1]
        for t in frames:
            state = cell(x[:, t], state)
            states[t] = state
        return states

    def forward(self, x: Tensor) -> Tensor:
        num_frames = x.shape[1]
        fwd = torch.stack(self._run(self.forward_cell, x, range(num_frames)), dim=1)  # (B, T, Ch, H, W)
        bwd = torch.stack(self._run(self.backward_cell, x, range(num_frames - 1, -1, -1)), dim=1)
        both = torch.cat([fwd, bwd], dim=2).flatten(0, 1)  # (B*T, 2 Ch, H, W)
        return x + self.merge(both).view_as(x)


class ConvBlock2d(nn.Module):
    """Two 3x3 conv -> InstanceNorm2d (optional) -> LeakyReLU layers, then dropout.

    x: (N, in_channels, H, W) float -> (N, out_channels, H, W) float.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin in (in_channels, out_channels):
            layers += [nn.Conv2d(cin, out_channels, 3, padding=1), *norm_act(out_channels, norm, spatial_dims=2)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class CRNN(nn.Module):
    """Per-frame 2D U-Net + bidirectional ConvGRU over time, residual denoiser.

    forward: x (B, 2, T, H, W) float -> (B, 2, T, H, W) float, out = x + net(x).
    H and W that are not multiples of 2^depth are zero-padded and cropped back.

    Args:
        in_channels: input (= output) channels; 2 for real/imaginary.
        base_channels: width of the first level; doubles per level.
        depth: number of 2x2 spatial down-sampling steps.
        hidden_channels: ConvGRU state width at the bottleneck (skip GRUs use the level's width).
        gru_on_skips: also run a BiConvGRU on every skip connection.
        norm: "instance" (affine InstanceNorm2d) or "none".
        dropout: Dropout2d probability at the end of every block (0 disables).

    Raises:
        ValueError: on a non-positive width, negative depth, dropout outside [0, 1) or unknown norm.
    """

    def __init__(
        self,
        *,
        in_channels: int = 2,
        base_channels: int = 32,
        depth: int = 3,
        hidden_channels: int = 64,
        gru_on_skips: bool = False,
        norm: str = "instance",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_unet_args(in_channels, base_channels, depth, dropout, norm)
        widths = [base_channels * 2**i for i in range(depth + 1)]
        if hidden_channels < 1:
            raise ValueError(f"hidden_channels must be >= 1, got {hidden_channels}")
        self.depth = depth
        self.encoders = nn.ModuleList()
        prev = in_channels
        for width in widths[:-1]:
            self.encoders.append(ConvBlock2d(prev, width, norm, dropout))
            prev = width
        self.bottleneck = ConvBlock2d(prev, widths[-1], norm, dropout)
        self.bottleneck_gru = BiConvGRU(widths[-1], hidden_channels)
        self.skip_grus = nn.ModuleList(
            [BiConvGRU(width, width) for width in widths[:-1]] if gru_on_skips else []
        )
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(width * 2, width, kernel_size=2, stride=2))
            self.decoders.append(ConvBlock2d(width * 2, width, norm, dropout))
        self.head = nn.Conv2d(widths[0], in_channels, kernel_size=1)

    @staticmethod
    def _over_time(gru: BiConvGRU, h: Tensor, batch: int) -> Tensor:
        """Apply a BiConvGRU to per-frame features h (B*T, C, H, W) -> (B*T, C, H, W)."""
        frames = h.view(batch, -1, *h.shape[1:])  # (B, T, C, H, W)
        return gru(frames).flatten(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        padded, size = pad_to_multiple(x, (1, 2**self.depth, 2**self.depth))  # (B, 2, T, H', W')
        h = padded.transpose(1, 2).flatten(0, 1)  # (B*T, 2, H', W')
        skips = []
        for level, encoder in enumerate(self.encoders):
            h = encoder(h)  # (B*T, c_i, H_i, W_i)
            skips.append(self._over_time(self.skip_grus[level], h, b) if self.skip_grus else h)
            h = nn.functional.max_pool2d(h, 2)  # (B*T, c_i, H_i / 2, W_i / 2)
        h = self._over_time(self.bottleneck_gru, self.bottleneck(h), b)  # (B*T, c_depth, ...)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            h = decoder(torch.cat([up(h), skip], dim=1))  # (B*T, c_i, H_i, W_i)
        out = self.head(h)  # (B*T, 2, H', W')
        out = out.view(b, -1, *out.shape[1:]).transpose(1, 2)  # (B, 2, T, H', W')
        return x + crop_to(out, size)
