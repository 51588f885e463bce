"""Segmentation losses and CE/Dice weight schedules: hand-computed cases, gradients, state."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
import torch.nn.functional as F

from cinemri.seg.losses import CombinedLoss, CrossEntropyLoss, SoftDiceLoss, one_hot, soft_dice
from cinemri.seg.schedules import (AdaptiveSchedule, ConstantSchedule, CosineSchedule, LinearSchedule,
                                   StepSchedule)

BIG = 60.0  # logit margin: softmax is one-hot to within exp(-60)


def confident_logits(prediction: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, H, W) int64 predicted labels -> (B, K, H, W) float64 logits with p = one-hot(prediction)."""
    return BIG * one_hot(prediction, classes, torch.float64)


def random_case(seed: int = 0, shape=(2, 4, 5, 7)):
    gen = torch.Generator().manual_seed(seed)
    batch, classes, height, width = shape
    logits = torch.randn(shape, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, classes, (batch, height, width), generator=gen)
    return logits, labels


# ---------------------------------------------------------------- soft Dice


@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_perfect_prediction_gives_zero_dice_and_ce(include_background, batch_dice):
    labels = torch.randint(0, 4, (3, 9, 11), generator=torch.Generator().manual_seed(1))
    logits = confident_logits(labels, 4)
    dice = SoftDiceLoss(include_background=include_background, batch_dice=batch_dice)
    assert float(dice(logits, labels)) == pytest.approx(0.0, abs=1e-6)
    assert float(CrossEntropyLoss()(logits, labels)) == pytest.approx(0.0, abs=1e-12)


def test_known_overlap_by_hand():
    # 4x4, K=2: truth class 1 = left half (8 px), prediction class 1 = top-left quadrant (4 px)
    labels = torch.zeros(1, 4, 4, dtype=torch.int64)
    labels[0, :, :2] = 1
    prediction = torch.zeros_like(labels)
    prediction[0, :2, :2] = 1
    logits = confident_logits(prediction, 2)
    d1 = 2 * 4 / (4 + 8)  # = 2/3
    d0 = 2 * 8 / (12 + 8)  # background: truth 8, predicted 12, overlap 8 -> 0.8
    no_bg = SoftDiceLoss(include_background=False)(logits, labels)
    with_bg = SoftDiceLoss(include_background=True)(logits, labels)
    assert float(no_bg) == pytest.approx(1 - d1, abs=1e-5)
    assert float(with_bg) == pytest.approx(1 - (d0 + d1) / 2, abs=1e-5)


def test_batch_and_per_image_dice_differ_on_missing_class():
    # image 0: class 1 in the top row, predicted exactly; image 1: no class 1, one false positive
    labels = torch.zeros(2, 2, 2, dtype=torch.int64)
    labels[0, 0, :] = 1
    prediction = labels.clone()
    prediction[1, 0, 0] = 1
    logits = confident_logits(prediction, 2)
    per_image = SoftDiceLoss(batch_dice=False)(logits, labels)
    batch = SoftDiceLoss(batch_dice=True)(logits, labels)
    assert float(per_image) == pytest.approx(1 - (1.0 + 0.0) / 2, abs=1e-4)  # D = 1 and D ~ eps / 1
    assert float(batch) == pytest.approx(1 - 2 * 2 / (3 + 2), abs=1e-5)  # pooled: overlap 2, sum p 3, sum g 2


def test_empty_class_predicted_empty_scores_one():
    labels = torch.zeros(1, 3, 3, dtype=torch.int64)
    scores = SoftDiceLoss(batch_dice=False).dice_scores(confident_logits(labels, 3), labels)  # (1, 2)
    assert torch.allclose(scores, torch.ones(1, 2, dtype=torch.float64), atol=1e-6)


def test_dice_against_direct_formula_on_random_probabilities():
    logits, labels = random_case(2)
    p, g = torch.softmax(logits, 1), one_hot(labels, 4, torch.float64)
    for batch_dice in (False, True):
        loss = SoftDiceLoss(include_background=True, batch_dice=batch_dice, smooth_num=0.3, smooth_den=0.7)
        dims = (0, 2, 3) if batch_dice else (2, 3)
        expected = 1 - ((2 * (p * g).sum(dims) + 0.3) / (p.sum(dims) + g.sum(dims) + 0.7)).mean()
        assert torch.allclose(loss(logits, labels), expected, atol=1e-12)


def test_dice_gradient_wrt_probabilities_matches_analytic_formula():
    gen = torch.Generator().manual_seed(3)
    p = torch.rand(1, 1, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    g = (torch.rand(1, 1, 5, 6, generator=gen) > 0.5).double()
    eps = 1e-3
    d = soft_dice(p, g, batch_dice=True, smooth_num=eps, smooth_den=eps)[0]
    (grad,) = torch.autograd.grad(d, p)
    analytic = (2 * g - d.detach()) / (p.detach().sum() + g.sum() + eps)
    assert torch.allclose(grad, analytic, atol=1e-12)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_dice_gradient_wrt_logits_passes_gradcheck(batch_dice):
    logits, labels = random_case(4, (2, 3, 2, 3))
    loss = SoftDiceLoss(batch_dice=batch_dice, include_background=False)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: loss(z, labels), (logits,))


# ---------------------------------------------------------------- cross-entropy


def test_cross_entropy_matches_torch_and_hand_formula():
    logits, labels = random_case(5)
    ours = CrossEntropyLoss()(logits, labels)
    assert torch.allclose(ours, F.cross_entropy(logits, labels), atol=1e-12)
    by_hand = -torch.log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).mean()
    assert torch.allclose(ours, by_hand, atol=1e-12)


def test_class_weights_match_torch_and_select_classes():
    logits, labels = random_case(6)
    weights = [0.5, 1.0, 2.0, 3.0]
    ours = CrossEntropyLoss(class_weights=weights)(logits, labels)
    assert torch.allclose(ours, F.cross_entropy(logits, labels, weight=torch.tensor(weights, dtype=torch.float64)))
    only_lv = CrossEntropyLoss(class_weights=[0, 0, 0, 1])(logits, labels)
    nll = -torch.log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).squeeze(1)  # (B, H, W)
    assert torch.allclose(only_lv, nll[labels == 3].mean(), atol=1e-12)


@pytest.mark.parametrize("bad", [[1.0], [1.0, -1.0], [0.0, 0.0], [1.0, float("nan")]])
def test_class_weights_validated(bad):
    with pytest.raises(ValueError, match="class_weights"):
        CrossEntropyLoss(class_weights=bad)


def test_inputs_validated():
    logits, labels = random_case(7)
    with pytest.raises(ValueError, match="labels must lie"):
        SoftDiceLoss()(logits, labels + 1)
    with pytest.raises(ValueError, match="labels must be int64"):
        CrossEntropyLoss()(logits, labels[:, :-1])
    with pytest.raises(ValueError, match="logits"):
        SoftDiceLoss()(logits[0], labels[0])
    with pytest.raises(ValueError, match="class_weights has 3"):
        CrossEntropyLoss(class_weights=[1, 1, 1])(logits, labels)
    with pytest.raises(ValueError, match="smooth"):
        SoftDiceLoss(smooth_den=0.0)


# ---------------------------------------------------------------- combined loss


def test_combined_is_weighted_sum_and_passes_gradcheck():
    logits, labels = random_case(8, (2, 3, 2, 3))
    ce, dice = CrossEntropyLoss(), SoftDiceLoss()
    loss = CombinedLoss(ce, dice, ConstantSchedule(weight=0.3))
    value = loss(logits, labels)
    assert torch.allclose(value, 0.3 * ce(logits, labels) + 0.7 * dice(logits, labels), atol=1e-12)
    logs = loss.logs()
    assert logs["w_ce"] == 0.3 and torch.allclose(logs["dice"], dice(logits, labels))
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: loss(z, labels), (logits,))


def test_adaptive_balances_norms_and_leaves_backward_intact():
    logits, labels = random_case(9)
    logits.requires_grad_(True)
    ce, dice = CrossEntropyLoss(), SoftDiceLoss()
    loss = CombinedLoss(ce, dice, AdaptiveSchedule(w_min=0.0, w_max=1.0))
    value = loss(logits, labels)
    (grad,) = torch.autograd.grad(value, logits)
    # independent norms, one graph each
    (g_ce,) = torch.autograd.grad(ce(logits, labels), logits)
    (g_dice,) = torch.autograd.grad(dice(logits, labels), logits)
    n_ce, n_dice = float(g_ce.norm()), float(g_dice.norm())
    w = loss.weight
    assert w == pytest.approx(n_dice / (n_ce + n_dice), rel=1e-9)
    assert w * n_ce == pytest.approx((1 - w) * n_dice, rel=1e-9)
    assert torch.allclose(grad, w * g_ce + (1 - w) * g_dice, atol=1e-12)


def test_adaptive_ema_lag_and_clipping():
    logits, labels = random_case(10)
    logits.requires_grad_(True)
    probe = CombinedLoss(schedule=AdaptiveSchedule(w_min=0.0, w_max=1.0))
    probe(logits, labels)
    target = probe.weight
    schedule = AdaptiveSchedule(momentum=0.8, w_min=0.0, w_max=1.0)
    state = schedule.state_dict()
    state.update(ema=0.95, observations=1)
    schedule.load_state_dict(state)
    loss = CombinedLoss(schedule=schedule)
    for n in range(1, 6):
        loss(logits, labels)
        assert loss.weight == pytest.approx(target + 0.8 ** n * (0.95 - target), rel=1e-9)
    clipped = CombinedLoss(schedule=AdaptiveSchedule(w_min=0.0, w_max=target / 2))
    for _ in range(3):
        clipped(logits, labels)
        assert clipped.weight == pytest.approx(target / 2)
    low = CombinedLoss(schedule=AdaptiveSchedule(w_min=min(1.0, 2 * target), w_max=1.0))
    low(logits, labels)
    assert low.weight == pytest.approx(min(1.0, 2 * target))


def test_adaptive_does_not_update_in_eval_or_no_grad():
    logits, labels = random_case(11)
    logits.requires_grad_(True)
    loss = CombinedLoss(schedule=AdaptiveSchedule(initial=0.42))
    loss.eval()
    loss(logits, labels)
    loss.train()
    with torch.no_grad():
        loss(logits, labels)
    assert loss.weight == 0.42 and loss.schedule.observations == 0


def test_adaptive_on_parameters_does_not_touch_grad():
    torch.manual_seed(0)
    head = torch.nn.Conv2d(1, 4, 3, padding=1).double()
    images = torch.randn(2, 1, 6, 7, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 6, 7))
    loss = CombinedLoss(schedule=AdaptiveSchedule(w_min=0.0, w_max=1.0), balance_parameters=list(head.parameters()))
    value = loss(head(images), labels)
    assert all(p.grad is None for p in head.parameters())
    value.backward()
    n_ce, n_dice = loss.schedule.last_norms
    w = loss.weight
    assert w * n_ce == pytest.approx((1 - w) * n_dice, rel=1e-9)
    with pytest.raises(ValueError, match="balance_parameters"):
        CombinedLoss(balance_parameters=[])


def test_adaptive_state_round_trip_resumes_exactly():
    gen = torch.Generator().manual_seed(12)
    batches = [(torch.randn(2, 4, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True),
                torch.randint(0, 4, (2, 5, 6), generator=gen)) for _ in range(6)]
    first = CombinedLoss(schedule=AdaptiveSchedule(momentum=0.7))
    for step, (z, y) in enumerate(batches[:3]):
        first.set_progress(epoch=0, step=step, total_epochs=5)
        first(z, y)
    state = first.state_dict()
    json.dumps(state["_extra_state"])  # plain types only
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    resumed = CombinedLoss(schedule=AdaptiveSchedule(momentum=0.7))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.weight == first.weight
    for step, (z, y) in enumerate(batches[3:], start=3):
        for loss in (first, resumed):
            loss.set_progress(epoch=1, step=step, total_epochs=5)
            loss(z, y)
        assert resumed.weight == first.weight
    assert resumed.schedule.state_dict() == first.schedule.state_dict()


# ---------------------------------------------------------------- progress schedules


def at(schedule, epoch, total_epochs=11):
    schedule.set_progress(epoch=epoch, step=0, total_epochs=total_epochs)
    return schedule.weight


def test_progress_schedule_values():
    assert at(ConstantSchedule(weight=0.7), 4) == 0.7
    linear = LinearSchedule(w0=1.0, w1=0.2)
    assert (at(linear, 0), at(linear, 10), at(linear, 5), at(linear, 20)) == pytest.approx((1.0, 0.2, 0.6, 0.2))
    cosine = CosineSchedule(w0=0.9, w1=0.1)
    assert (at(cosine, 0), at(cosine, 5), at(cosine, 10)) == pytest.approx((0.9, 0.5, 0.1))
    assert at(cosine, 2.5) == pytest.approx(0.1 + 0.8 * (1 + math.cos(math.pi / 4)) / 2)
    step = StepSchedule(weights=(1.0, 0.6, 0.3), milestones=(3, 7))
    assert [at(step, e) for e in (0, 2.9, 3, 6, 7, 10)] == [1.0, 1.0, 0.6, 0.6, 0.3, 0.3]
    assert at(LinearSchedule(w0=0.8, w1=0.2), 0, total_epochs=1) == 0.8


def test_progress_schedule_state_round_trip():
    schedule = CosineSchedule(w0=0.9, w1=0.1)
    schedule.set_progress(epoch=3.5, step=70, total_epochs=11)
    restored = CosineSchedule(w0=0.9, w1=0.1)
    restored.load_state_dict(json.loads(json.dumps(schedule.state_dict())))
    assert restored.weight == schedule.weight and restored.step == 70
    with pytest.raises(ValueError, match="kind"):
        LinearSchedule().load_state_dict(schedule.state_dict())


@pytest.mark.parametrize("build", [
    lambda: ConstantSchedule(weight=1.5),
    lambda: LinearSchedule(w0=-0.1),
    lambda: StepSchedule(weights=(1.0,), milestones=(3,)),
    lambda: StepSchedule(weights=(1.0, 0.5, 0.2), milestones=(5, 5)),
    lambda: AdaptiveSchedule(w_min=0.8, w_max=0.2),
    lambda: AdaptiveSchedule(momentum=1.0),
])
def test_schedule_arguments_validated(build):
    with pytest.raises(ValueError):
        build()


def test_set_progress_validated():
    with pytest.raises(ValueError, match="total_epochs"):
        ConstantSchedule().set_progress(epoch=0, step=0, total_epochs=0)
    with pytest.raises(ValueError, match="epoch"):
        ConstantSchedule().set_progress(epoch=-1, step=0, total_epochs=3)
