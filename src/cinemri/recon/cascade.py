"""Unrolled cascade: N stages of (denoiser -> data consistency), starting from zero filling,
from view sharing (:func:`cinemri.recon.baselines.view_sharing`) or from a few iterations of
temporal-TV compressed sensing (:func:`cinemri.recon.baselines.cs_tv`).

Fully convolutional: any (T, H, W) goes through (each denoiser pads to its own multiple and
crops back), so inference runs on the whole field of view at the input's size.

What the model expects: k-space scaled by the dataset so that the zero-filled image has a
magnitude of order 1 (e.g. divided by the 99th percentile or the max of |A^H y|); the soft-DC
lambdas and the denoisers' weights are learned for that scale. The model does not rescale.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cinemri.physics import sense_adjoint, to_hybrid
from cinemri.recon.baselines import cs_tv, view_sharing
from cinemri.recon.channels import channels_to_complex, complex_to_channels
from cinemri.recon.dc import DataConsistency

INITS = ("zero_filled", "view_sharing", "cs_tv")


class Cascade(nn.Module):
    """Cascade of residual denoisers, each followed by data consistency.

    forward(kspace (B, C, T, H, W) complex64, mask (B, 1, T, 1, W) bool, maps (B, C, H, W) complex64,
            *, dc_hardness=0.0) -> image (B, T, H, W) complex64
    x_0 = A^H y (zero filling), view sharing or CS-TV; x_{s+1} = DC_s(complex(D_s(channels(x_s)))),
    or with ``residual_gates`` x_{s+1} = DC_s(x_s + g_s (complex(D_s(channels(x_s))) - x_s)).
    ``dc_hardness`` in [0, 1] pushes soft DC towards hard DC (see :class:`DataConsistency`);
    a training schedule passes it, inference leaves it at 0.
    Under autocast only the denoisers run in the low precision: the initial image and every
    DC step run in complex64 (STYLE.md rule 2). With a mask that is the same on every readout
    row, (B, 1, T, 1, W), the measurement goes to hybrid (x, ky) space once and every DC step
    works there (1D FFTs along W: the same result at half the FFT work).

    Args:
        make_denoiser: builds one denoiser mapping (B, 2, T, H, W) -> (B, 2, T, H, W).
        num_stages: N >= 1.
        shared_weights: one denoiser for all stages (the DC lambdas stay per stage).
        dc_mode: "hard" or "soft" (one learned lambda per stage).
        init_lambda: starting lambda of soft DC.
        checkpoint_stages: recompute each stage in the backward pass
            (torch.utils.checkpoint, use_reentrant=False) to save memory; only when grad is on.
        init: starting image, "zero_filled" (A^H y), "view_sharing", or "cs_tv": ``init_iters``
            iterations of :func:`cinemri.recon.baselines.cs_tv` with its default temporal weight
            (and ``init_lambda_s``), computed without gradients; the networks then learn what CS leaves.
        init_iters: iterations of the "cs_tv" start (>= 1; ignored by the other inits).
        init_lambda_s: spatial TV weight of the "cs_tv" start (0: temporal TV only). On ACDC
            patient090 (1 coil, 5x) CS-TV with lambda_s 0.0005 is 1.4 dB above temporal TV alone.
        channels_last: run the denoisers in ``torch.channels_last_3d`` memory format (weights
            and inputs); the numbers are the same up to rounding. Measured on the 2-core CPU:
            a 3D U-Net (16 channels, depth 2, CBAM) training step 15 % faster in bf16 and 20 %
            in fp32 (docs/benchmarks.md).
        residual_gates: one learned scalar g_s per stage, starting at 0, that lets the denoiser's
            change into the image. The untrained cascade then returns DC of its starting image
            (with a CS-TV start: the CS image), not that image plus random networks' noise, so a
            short training starts from the classical result instead of first climbing back to it.
            With Adam the denoisers still learn at full speed once g_s leaves 0 (its updates do
            not depend on the gradient's scale).

    Parameters: num_stages * P_denoiser (or P_denoiser if shared) + num_stages if soft DC
    + num_stages if residual_gates.

    Raises:
        ValueError: if num_stages < 1, init_iters < 1, init_lambda_s < 0, or dc_mode or init is unknown.
    """

    def __init__(
        self,
        make_denoiser: Callable[[], nn.Module],
        *,
        num_stages: int = 3,
        shared_weights: bool = False,
        dc_mode: str = "soft",
        init_lambda: float = 1.0,
        checkpoint_stages: bool = False,
        init: str = "zero_filled",
        init_iters: int = 20,
        init_lambda_s: float = 0.0,
        channels_last: bool = False,
        residual_gates: bool = False,
    ) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if init_iters < 1:
            raise ValueError(f"init_iters must be >= 1, got {init_iters}")
        if not init_lambda_s >= 0:
            raise ValueError(f"init_lambda_s must be >= 0, got {init_lambda_s}")
        self.init = init
        self.init_iters = init_iters
        self.init_lambda_s = float(init_lambda_s)
        self.num_stages = num_stages
        self.shared_weights = shared_weights
        self.checkpoint_stages = checkpoint_stages
        count = 1 if shared_weights else num_stages
        self.denoisers = nn.ModuleList([make_denoiser() for _ in range(count)])
        self.dcs = nn.ModuleList([DataConsistency(mode=dc_mode, init_lambda=init_lambda) for _ in range(num_stages)])
        self.gates = nn.Parameter(torch.zeros(num_stages)) if residual_gates else None
        self.channels_last = False
        self.set_channels_last(channels_last)

    def set_channels_last(self, on: bool) -> None:
        """Run the denoisers in ``torch.channels_last_3d`` (weights and inputs) or in the default
        layout; the images are the same up to rounding, only the speed differs."""
        self.channels_last = bool(on)
        self.denoisers.to(memory_format=torch.channels_last_3d if on else torch.contiguous_format)

    def _stage(self, index: int, image: Tensor, kspace: Tensor, mask: Tensor, maps: Tensor,
               dc_hardness: float, hybrid: bool) -> Tensor:
        denoiser = self.denoisers[0 if self.shared_weights else index]
        channels = complex_to_channels(image)  # (B, 2, T, H, W) float32
        if self.channels_last:
            channels = channels.contiguous(memory_format=torch.channels_last_3d)
        denoised = channels_to_complex(denoiser(channels))  # (B, T, H, W) complex64
        if self.gates is not None:
            denoised = image + self.gates[index] * (denoised - image)
        return self.dcs[index](denoised, kspace, mask, maps, hardness=dc_hardness, hybrid=hybrid)

    def start_image(self, kspace: Tensor, mask: Tensor, maps: Tensor) -> Tensor:
        """The starting image x_0 of ``init`` (shapes as :meth:`forward`), complex64, autocast off."""
        if self.init == "view_sharing":
            return view_sharing(kspace, mask, maps)  # (B, T, H, W) complex64
        if self.init == "cs_tv":
            with torch.no_grad(), torch.autocast(device_type=kspace.device.type, enabled=False):
                return cs_tv(kspace, mask, maps, num_iters=self.init_iters, lambda_s=self.init_lambda_s)
        with torch.autocast(device_type=kspace.device.type, enabled=False):
            return sense_adjoint(kspace, maps, mask)  # (B, T, H, W) complex64

    def forward(self, kspace: Tensor, mask: Tensor, maps: Tensor, *, dc_hardness: float = 0.0) -> Tensor:
        image = self.start_image(kspace, mask, maps)  # (B, T, H, W) complex64
        hybrid = mask.shape[-2] == 1
        if hybrid:
            with torch.autocast(device_type=kspace.device.type, enabled=False):
                kspace = to_hybrid(kspace)  # (B, C, T, H, W): y_h = F_H^H y, for every DC step
        use_checkpoint = self.checkpoint_stages and torch.is_grad_enabled()
        for index in range(self.num_stages):
            if use_checkpoint:
                image = checkpoint(self._stage, index, image, kspace, mask, maps, dc_hardness, hybrid,
                                   use_reentrant=False)
            else:
                image = self._stage(index, image, kspace, mask, maps, dc_hardness, hybrid)
        return image
