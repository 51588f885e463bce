"""Reconstruction losses: L1 and L2 on complex images by hand, SSIM loss against the metric, parsing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinemri.metrics import ssim
from cinemri.recon.losses import dynamic_loss, l1_loss, l2_loss, parse_loss, recon_loss, ssim_loss


def test_l1_l2_hand_computed():
    target = torch.zeros(1, 2, 3, 4, dtype=torch.complex64)
    pred = target.clone()
    pred[0, 1, 2, 3] = 1 + 2j
    n = 2 * 3 * 4 * 2  # pixels x (real, imag)
    assert l1_loss(pred, target).item() == pytest.approx(3 / n)
    assert l2_loss(pred, target).item() == pytest.approx(5 / n)


def test_dynamic_loss_ignores_errors_the_temporal_mean_explains():
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(2, 5, 6, 7, dtype=torch.complex64, generator=gen)
    static = torch.randn(2, 1, 6, 7, dtype=torch.complex64, generator=gen)  # the same error in every frame
    assert dynamic_loss(target + static, target).item() == pytest.approx(0.0, abs=1e-6)
    assert l1_loss(target + static, target).item() > 0.1
    # one frame wrong by d (T = 5): that frame's dynamic error is d (1 - 1/5), the others' -d/5
    pred = target.clone()
    pred[:, 2] += 1.0  # real part only
    n = 5 * 2  # frames x (real, imag) per pixel
    assert dynamic_loss(pred, target).item() == pytest.approx((0.8 + 4 * 0.2) / n, rel=1e-5)
    assert parse_loss("l1+dynamic") == {"l1": 1.0, "dynamic": 1.0}


def test_ssim_loss_matches_the_metric_and_has_gradients():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 20, 17, generator=gen) * torch.exp(1j * torch.rand(2, 3, 20, 17, generator=gen))
    pred = (target + 0.1 * torch.randn(2, 3, 20, 17, dtype=torch.complex64, generator=gen)).requires_grad_(True)
    loss = ssim_loss(pred, target)
    expected = 1 - np.mean([ssim(pred[b].detach(), target[b]) for b in range(2)])  # range = max per item
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert ssim_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)


def test_parse_loss_and_combination():
    assert parse_loss("l1+ssim", {"ssim": 0.5}) == {"l1": 1.0, "ssim": 0.5}
    for kind, weights in (("l3", None), ("l1+l1", None), ("l1", {"ssim": 1.0})):
        with pytest.raises(ValueError, match="loss"):
            parse_loss(kind, weights)
    target = torch.rand(1, 2, 9, 9, dtype=torch.complex64)
    pred = target + 0.2
    total, logs = recon_loss(pred, target, {"l1": 2.0, "ssim": 0.5})
    assert total.item() == pytest.approx(2 * logs["l1"].item() + 0.5 * logs["ssim"].item())
