"""Weight schedules for :class:`cinemri.seg.losses.CombinedLoss`.

A schedule holds the weight ``w`` of the cross-entropy term in
``L = w * CE + (1 - w) * Dice``; ``w`` always lies in [0, 1].

- Progress schedules (constant, linear, cosine, step) are pure functions of the training
  progress the caller reports with ``set_progress(epoch=..., step=..., total_epochs=...)``.
  ``epoch`` is 0-based and may be fractional (``epoch + i / steps_per_epoch``) for per-step
  changes; the progress fraction is ``t = clamp(epoch / (total_epochs - 1), 0, 1)`` (t = 0
  when ``total_epochs == 1``), so the first epoch trains at ``w0`` and the last at ``w1``.
- :class:`AdaptiveSchedule` ignores the progress and is told the two losses' gradient norms
  each training step (``observe``); it balances them.

Every schedule has ``state_dict()`` (plain Python types only: str, int, float, None) and
``load_state_dict(state)``, so a resumed run continues with exactly the same weights.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, Mapping, Sequence


def _check_weight(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a weight in [0, 1], got {value!r}")
    return value


class _ProgressSchedule:
    """Shared progress bookkeeping; subclasses define ``kind`` and ``_weight_at(t, epoch)``."""

    kind = ""
    needs_grad_norms = False

    def __init__(self) -> None:
        self.epoch = 0.0
        self.step = 0
        self.total_epochs = 1

    def set_progress(self, *, epoch: float, step: int, total_epochs: int) -> None:
        """Report progress: ``epoch`` 0-based (may be fractional), ``step`` the global
        optimizer step, ``total_epochs`` >= 1 the length of training."""
        if int(total_epochs) != total_epochs or total_epochs < 1:
            raise ValueError(f"total_epochs must be an integer >= 1, got {total_epochs!r}")
        if not (math.isfinite(float(epoch)) and epoch >= 0):
            raise ValueError(f"epoch must be >= 0, got {epoch!r}")
        if int(step) != step or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        self.epoch, self.step, self.total_epochs = float(epoch), int(step), int(total_epochs)

    @property
    def fraction(self) -> float:
        """Training progress t in [0, 1] (see the module docstring)."""
        if self.total_epochs == 1:
            return 0.0
        return min(max(self.epoch / (self.total_epochs - 1), 0.0), 1.0)

    @property
    def weight(self) -> float:
        """Current CE weight w in [0, 1]."""
        return self._weight_at(self.fraction, self.epoch)

    def _weight_at(self, t: float, epoch: float) -> float:
        raise NotImplementedError

    def observe(self, norm_ce: float, norm_dice: float) -> None:
        """Gradient norms of the two terms; progress schedules ignore them."""

    def state_dict(self) -> dict[str, Any]:
        """Plain-typed state: kind and progress."""
        return {"kind": self.kind, "epoch": self.epoch, "step": self.step, "total_epochs": self.total_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; ValueError if it belongs to another kind."""
        if state.get("kind") != self.kind:
            raise ValueError(f"schedule state is of kind {state.get('kind')!r}, expected {self.kind!r}")
        self.set_progress(epoch=state["epoch"], step=state["step"], total_epochs=state["total_epochs"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight:.4g}, epoch={self.epoch:g}/{self.total_epochs})"


class ConstantSchedule(_ProgressSchedule):
    """w(t) = weight."""

    kind = "constant"

    def __init__(self, *, weight: float = 0.5) -> None:
        super().__init__()
        self.value = _check_weight("weight", weight)

    def _weight_at(self, t: float, epoch: float) -> float:
        return self.value


class _EndpointSchedule(_ProgressSchedule):
    """A schedule from ``w0`` at t = 0 to ``w1`` at t = 1; subclasses define the path between."""

    def __init__(self, *, w0: float = 1.0, w1: float = 0.5) -> None:
        super().__init__()
        self.w0, self.w1 = _check_weight("w0", w0), _check_weight("w1", w1)


class LinearSchedule(_EndpointSchedule):
    """w(t) = w0 + (w1 - w0) t."""

    kind = "linear"

    def _weight_at(self, t: float, epoch: float) -> float:
        return self.w0 + (self.w1 - self.w0) * t


class CosineSchedule(_EndpointSchedule):
    """w(t) = w1 + (w0 - w1) (1 + cos(pi t)) / 2  (w0 at t = 0, (w0 + w1) / 2 at t = 1/2, w1 at t = 1)."""

    kind = "cosine"

    def _weight_at(self, t: float, epoch: float) -> float:
        return self.w1 + (self.w0 - self.w1) * 0.5 * (1.0 + math.cos(math.pi * t))


class StepSchedule(_ProgressSchedule):
    """Piecewise constant in epochs: w = weights[i] where i = number of milestones <= epoch.

    ``milestones``: strictly increasing epochs (>= 0); ``weights``: one more value than milestones.
    """

    kind = "step"

    def __init__(self, *, weights: Sequence[float] = (1.0, 0.5), milestones: Sequence[float] = (10,)) -> None:
        super().__init__()
        self.weights = tuple(_check_weight("weights[]", w) for w in weights)
        self.milestones = tuple(float(m) for m in milestones)
        if len(self.weights) != len(self.milestones) + 1:
            raise ValueError(f"weights must have len(milestones) + 1 = {len(self.milestones) + 1} values, "
                             f"got {len(self.weights)}: {tuple(weights)!r}")
        if any(m < 0 for m in self.milestones) or any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"milestones must be >= 0 and strictly increasing, got {tuple(milestones)!r}")

    def _weight_at(self, t: float, epoch: float) -> float:
        return self.weights[bisect_right(self.milestones, epoch)]


class AdaptiveSchedule(_ProgressSchedule):
    """Balance the gradient norms of the two terms.

    Each training step :class:`~cinemri.seg.losses.CombinedLoss` measures
    ``n_ce = |dCE/dz|`` and ``n_dice = |dDice/dz|`` (z = logits, or a chosen parameter set) and
    calls ``observe(n_ce, n_dice)``. The target weight

        w* = n_dice / (n_ce + n_dice)   so that   w* n_ce = (1 - w*) n_dice,

    is smoothed with an exponential moving average ``e <- momentum e + (1 - momentum) w*``
    (the first observation sets ``e = w*``), and ``w = clip(e, w_min, w_max)``. Before the
    first observation ``w = clip(initial, w_min, w_max)``. Observations with a non-finite or
    zero total norm are counted in ``skipped`` and leave w unchanged.
    """

    kind = "adaptive"
    needs_grad_norms = True

    def __init__(self, *, initial: float = 0.5, momentum: float = 0.9,
                 w_min: float = 0.05, w_max: float = 0.95) -> None:
        super().__init__()
        self.initial = _check_weight("initial", initial)
        self.w_min, self.w_max = _check_weight("w_min", w_min), _check_weight("w_max", w_max)
        if self.w_min > self.w_max:
            raise ValueError(f"w_min must be <= w_max, got w_min={w_min!r}, w_max={w_max!r}")
        if not (math.isfinite(float(momentum)) and 0.0 <= momentum < 1.0):
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.ema: float | None = None
        self.observations = 0
        self.skipped = 0
        self.last_norms: tuple[float, float] | None = None

    def _weight_at(self, t: float, epoch: float) -> float:
        value = self.initial if self.ema is None else self.ema
        return min(max(value, self.w_min), self.w_max)

    def observe(self, norm_ce: float, norm_dice: float) -> None:
        """Update w from the current gradient norms (both >= 0)."""
        norm_ce, norm_dice = float(norm_ce), float(norm_dice)
        total = norm_ce + norm_dice
        if not (math.isfinite(total) and total > 0.0) or norm_ce < 0 or norm_dice < 0:
            self.skipped += 1
            return
        target = norm_dice / total
        self.ema = target if self.ema is None else self.momentum * self.ema + (1.0 - self.momentum) * target
        self.observations += 1
        self.last_norms = (norm_ce, norm_dice)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(ema=self.ema, observations=self.observations, skipped=self.skipped,
                     last_norm_ce=None if self.last_norms is None else self.last_norms[0],
                     last_norm_dice=None if self.last_norms is None else self.last_norms[1])
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.ema = None if state["ema"] is None else float(state["ema"])
        self.observations, self.skipped = int(state["observations"]), int(state["skipped"])
        norms = (state["last_norm_ce"], state["last_norm_dice"])
        self.last_norms = None if norms[0] is None else (float(norms[0]), float(norms[1]))


WeightSchedule = ConstantSchedule | LinearSchedule | CosineSchedule | StepSchedule | AdaptiveSchedule

SCHEDULES: dict[str, type] = {
    "constant": ConstantSchedule,
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
    "step": StepSchedule,
    "adaptive": AdaptiveSchedule,
}
