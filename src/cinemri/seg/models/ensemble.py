"""An ensemble of trained segmenters that is itself a segmenter: the mean of the members'
class probabilities, returned as log-probabilities so that ``softmax(output)`` is that mean
and every caller (argmax, confidence, flip TTA) treats it like one network.

Members may be different architectures (e.g. a U-Net and a MedNeXt) trained on the same
preprocessing, and may see different context (a 2D member and a 2.5D one): the ensemble's input
holds the union of their channels and each member gets its own (``channels``); :func:`cinemri.pipeline.weights.ensemble_weights` checks that and writes the
ensemble as one ordinary checkpoint (model name ``"ensemble"``, its members' names and
arguments as ``model_args``), which :func:`cinemri.seg.inference.load_segmenter` reads like
any other. For inference: training an ensemble jointly is not what it is for.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# log(0) would give -inf logits; the floor keeps losses and gradients finite
_MIN_PROBABILITY = 1e-12


class SegEnsemble(nn.Module):
    """members: segmenters mapping (B, C_m, H, W) -> logits (B, K, H, W) with the same K (a
    member in training mode with deep supervision returns a list; its first entry counts).
    channels: per member, the indices of the ensemble input's channels it takes (None: all)."""

    def __init__(self, members: list[nn.Module], channels: list[list[int] | None] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        channels = [None] * len(members) if channels is None else list(channels)
        if len(channels) != len(members):
            raise ValueError(f"channels must give one entry per member ({len(members)}), got {len(channels)}")
        self.members = nn.ModuleList(members)
        self.channels = [None if c is None else [int(i) for i in c] for c in channels]

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) float32 -> log of the members' mean softmax (B, K, H, W) float32."""
        total = None
        for member, channels in zip(self.members, self.channels):
            out = member(x if channels is None else x[:, channels])
            out = out[0] if isinstance(out, (list, tuple)) else out
            probs = torch.softmax(out.float(), dim=1)  # (B, K, H, W)
            if total is not None and probs.shape != total.shape:
                raise ValueError(f"ensemble members disagree on the output shape: "
                                 f"{tuple(total.shape)} vs {tuple(probs.shape)}")
            total = probs if total is None else total + probs
        return torch.log((total / len(self.members)).clamp_min(_MIN_PROBABILITY))
