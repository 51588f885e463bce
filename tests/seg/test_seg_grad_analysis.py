"""Loss-gradient analysis: hand-computed splits and the analytic CE/Dice gradients (the run of
``cinemri seg grad-analysis`` is tested with the segmentation tasks)."""

from __future__ import annotations

import pytest
import torch

from cinemri.seg.grad_analysis import consistency, gradient_split, logit_gradient
from cinemri.seg.losses import CrossEntropyLoss, SoftDiceLoss


def test_background_fraction_of_ce_on_a_hand_made_case():
    # zero logits, K = 2: p = 1/2 everywhere, dCE/dz_i = (p - g) / N, so every pixel has
    # |g_i|_1 = (1/2 + 1/2) / N = 1/N: the background share of the L1 mass is its pixel share
    labels = torch.zeros(1, 4, 5, dtype=torch.int64)
    labels[0, 1:3, 1:3] = 1  # 4 of 20 pixels foreground
    grad = logit_gradient(CrossEntropyLoss(), torch.zeros(1, 2, 4, 5), labels)
    torch.testing.assert_close(grad.abs().sum(1), torch.full((1, 4, 5), 1 / 20))
    split = gradient_split(grad, labels)
    assert split["bg_fraction_l1"] == pytest.approx(16 / 20)
    assert split["bg_fraction_l2sq"] == pytest.approx(16 / 20)
    assert split["bg_pixel_fraction"] == pytest.approx(16 / 20)
    assert split["mean_l1_bg"] == pytest.approx(1 / 20) and split["mean_l1_rv"] == pytest.approx(1 / 20)
    assert split["norm_l1"] == pytest.approx(1.0)
    # a confident, correct background makes the background's share collapse
    logits = torch.zeros(1, 2, 4, 5)
    logits[0, 0][labels[0] == 0] = 10.0
    assert gradient_split(logit_gradient(CrossEntropyLoss(), logits, labels), labels)["bg_fraction_l1"] < 0.01


def test_dice_logit_gradient_matches_the_derivation():
    # D = (2 sum p g + s) / (sum p + sum g + s); dD/dp_j = (2 g_j - D) / (S_p + S_g + s), then softmax
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    labels = (torch.rand(1, 3, 4) > 0.6).long()
    loss = SoftDiceLoss(include_background=False, batch_dice=True)
    grad = logit_gradient(lambda z, y: loss(z.double(), y), logits, labels).double()
    p = torch.softmax(logits, 1)[:, 1]  # (1, H, W)
    g = (labels == 1).double()
    s = 1e-5
    denom = p.sum() + g.sum() + s
    d = (2 * (p * g).sum() + s) / denom
    d_dp = (2 * g - d) / denom  # (1, H, W)
    # two classes: dp1/dz1 = p1 (1 - p1), dp1/dz0 = -p1 p0; loss = 1 - D
    expected_z1 = -d_dp * p * (1 - p)
    torch.testing.assert_close(grad[:, 1], expected_z1, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad[:, 0], -expected_z1, rtol=1e-5, atol=1e-7)


def test_consistency_of_identical_and_opposite_vectors():
    v = torch.tensor([1.0, 2.0, 2.0])
    assert consistency([v, v, v]) == {"mean_cosine": pytest.approx(1.0), "mean_norm": pytest.approx(3.0),
                                      "norm_cv": pytest.approx(0.0)}
    assert consistency([v, -v])["mean_cosine"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="grad must be"):
        gradient_split(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))
