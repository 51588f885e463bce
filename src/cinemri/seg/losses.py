"""Segmentation losses: cross-entropy, soft Dice, and their scheduled combination.

Shapes everywhere: ``logits`` (B, K, H, W) float (half precision is upcast to float32; the
losses are computed in float32 or float64), ``labels`` (B, H, W) int64 in {0, ..., K-1}
(K = 4: 0 background, 1 RV, 2 MYO, 3 LV). Every loss returns a 0-d tensor.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from cinemri.seg.schedules import SCHEDULES, ConstantSchedule, WeightSchedule


def check_logits_labels(logits: Tensor, labels: Tensor) -> None:
    """ValueError unless logits (B, K, H, W) float with K >= 2 and labels (B, H, W) int64 in [0, K-1]."""
    if logits.dim() != 4 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float (B, K, H, W) tensor, got {logits.dtype} {tuple(logits.shape)}")
    batch, classes, height, width = logits.shape
    if classes < 2:
        raise ValueError(f"logits must have K >= 2 classes, got shape {tuple(logits.shape)}")
    if labels.dtype != torch.int64 or tuple(labels.shape) != (batch, height, width):
        raise ValueError(f"labels must be int64 of shape {(batch, height, width)}, "
                         f"got {labels.dtype} {tuple(labels.shape)}")
    if labels.numel() and bool(((labels < 0) | (labels >= classes)).any()):
        raise ValueError(f"labels must lie in [0, {classes - 1}], "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")


def _upcast(logits: Tensor) -> Tensor:
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """labels: (B, H, W) int64 -> (B, K, H, W) ``dtype`` with g[b, k, y, x] = [labels[b, y, x] == k]."""
    classes = torch.arange(num_classes, device=labels.device).view(1, num_classes, 1, 1)  # (1, K, 1, 1)
    return (labels.unsqueeze(1) == classes).to(dtype)  # (B, K, H, W)


def soft_dice(probs: Tensor, target: Tensor, *, batch_dice: bool, smooth_num: float, smooth_den: float) -> Tensor:
    """Soft Dice per class, D = (2 sum p g + smooth_num) / (sum p + sum g + smooth_den).

    probs, target: (B, K, H, W) float (probabilities and one-hot labels)
    returns (K,) when ``batch_dice`` (sums over the batch and pixels), else (B, K) (sums over
    each image's pixels).
    """
    dims = (0, 2, 3) if batch_dice else (2, 3)
    intersection = (probs * target).sum(dims)  # (K,) or (B, K)
    denominator = probs.sum(dims) + target.sum(dims)  # (K,) or (B, K)
    return (2.0 * intersection + smooth_num) / (denominator + smooth_den)


class CrossEntropyLoss(nn.Module):
    """Mean pixel-wise cross-entropy, as :func:`torch.nn.functional.cross_entropy`.

    CE = sum_i c_{y_i} (-log softmax(z_i)_{y_i}) / sum_i c_{y_i}, over all B*H*W pixels i, with
    class weights c (all 1 when ``class_weights`` is None, giving the plain mean).

    class_weights: (K,) non-negative finite weights, or None.
    """

    def __init__(self, *, class_weights: Sequence[float] | Tensor | None = None) -> None:
        super().__init__()
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(class_weights, dtype=torch.float32).detach().clone()
            if weights.dim() != 1 or weights.numel() < 2 or not bool(torch.isfinite(weights).all()) \
                    or bool((weights < 0).any()) or float(weights.sum()) <= 0:
                raise ValueError(f"class_weights must be K >= 2 finite non-negative values, not all 0; "
                                 f"got {weights.tolist()}")
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """logits: (B, K, H, W) float, labels: (B, H, W) int64 -> 0-d loss."""
        check_logits_labels(logits, labels)
        logits = _upcast(logits)
        weight = self.class_weights
        if weight is not None:
            if weight.numel() != logits.shape[1]:
                raise ValueError(f"class_weights has {weight.numel()} values but logits have "
                                 f"K = {logits.shape[1]} classes")
            weight = weight.to(logits.dtype)
        return F.cross_entropy(logits, labels, weight=weight)


class SoftDiceLoss(nn.Module):
    """Soft Dice loss, loss = 1 - mean over the scored classes of D_k.

    With p = softmax(logits) over K, g = one-hot(labels):

        D_k = (2 sum p_k g_k + smooth_num) / (sum p_k + sum g_k + smooth_den)

    the sums running over the pixels of each image (``batch_dice=False``; the loss then also
    averages over the B images) or over all pixels of the batch (``batch_dice=True``, the
    nnU-Net default for 2D). ``include_background=False`` scores classes 1..K-1 only.

    Empty classes (a class absent from the ground truth of the reduction unit, e.g. no RV in an
    apical slice): D_k = smooth_num / (sum p_k + smooth_den). If nothing is predicted either,
    D_k -> smooth_num / smooth_den (= 1 with the defaults: a correct "absent" is a perfect score);
    any false-positive mass S = sum p_k drives D_k to ~ smooth_num / S, i.e. a loss near 1 whose
    gradient dD/dp = -D / (S + smooth_den) vanishes with the tiny default smoothing. Batch Dice
    avoids this as long as the class occurs somewhere in the batch; a larger smoothing is the
    other remedy (Tilborghs et al., MICCAI 2022).

    Gradient w.r.t. the probabilities of one class (per reduction unit, sums over its pixels):
    dD/dp_j = (2 g_j - D) / (sum p + sum g + smooth_den).
    """

    def __init__(self, *, include_background: bool = False, smooth_num: float = 1e-5, smooth_den: float = 1e-5,
                 batch_dice: bool = True) -> None:
        super().__init__()
        if not (smooth_num >= 0 and smooth_den > 0):
            raise ValueError(f"smooth_num must be >= 0 and smooth_den > 0, got {smooth_num!r}, {smooth_den!r}")
        self.include_background = bool(include_background)
        self.smooth_num, self.smooth_den = float(smooth_num), float(smooth_den)
        self.batch_dice = bool(batch_dice)

    def dice_scores(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Soft Dice of the scored classes: (K',) with batch Dice, else (B, K'); K' = K or K - 1."""
        check_logits_labels(logits, labels)
        logits = _upcast(logits)
        probs = torch.softmax(logits, dim=1)  # (B, K, H, W)
        target = one_hot(labels, logits.shape[1], probs.dtype)  # (B, K, H, W)
        if not self.include_background:
            probs, target = probs[:, 1:], target[:, 1:]  # (B, K-1, H, W)
        return soft_dice(probs, target, batch_dice=self.batch_dice,
                         smooth_num=self.smooth_num, smooth_den=self.smooth_den)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """logits: (B, K, H, W) float, labels: (B, H, W) int64 -> 0-d loss in [0, 1] (for smooth_num <= smooth_den)."""
        return 1.0 - self.dice_scores(logits, labels).mean()


def _grad_norm(loss: Tensor, inputs: Sequence[Tensor]) -> Tensor:
    """|d loss / d inputs| (all inputs together) as a 0-d tensor: float64 if every input is, else float32.
    The graph is kept for the caller's backward; no ``.grad`` is written."""
    dtype = torch.float64 if all(t.dtype == torch.float64 for t in inputs) else torch.float32
    grads = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
    squares = [g.detach().to(dtype).pow(2).sum() for g in grads if g is not None]
    return torch.stack(squares).sum().sqrt() if squares else loss.new_zeros((), dtype=dtype)


class CombinedLoss(nn.Module):
    """L = w CE + (1 - w) Dice with the CE weight w from a schedule (see cinemri.seg.schedules).

    Call ``set_progress(epoch=..., step=..., total_epochs=...)`` before each epoch (or step).
    With a schedule that ``needs_grad_norms`` (:class:`~cinemri.seg.schedules.AdaptiveSchedule`)
    each forward in training mode with grad enabled first measures |dCE/dz| and |dDice/dz| with
    ``torch.autograd.grad(..., retain_graph=True)`` — z = the (float32) logits, or
    ``balance_parameters`` when given (costlier: a backward pass through the network each) —
    updates the schedule, then combines with the new w. These extra gradients are not
    accumulated into any ``.grad``; the caller's ``loss.backward()`` is unaffected. Under
    torch.distributed the two norms are averaged over ranks so every rank uses the same w.

    After a forward, ``weight``, ``last_ce`` and ``last_dice`` (detached) hold the values used;
    ``logs()`` returns them for logging. The schedule's state travels in this module's
    ``state_dict()`` (as extra state of plain types) so a resumed run continues exactly.
    """

    def __init__(self, ce: CrossEntropyLoss | None = None, dice: SoftDiceLoss | None = None,
                 schedule: WeightSchedule | None = None, *,
                 balance_parameters: Sequence[Tensor] | None = None) -> None:
        super().__init__()
        self.ce = ce if ce is not None else CrossEntropyLoss()
        self.dice = dice if dice is not None else SoftDiceLoss()
        self.schedule = schedule if schedule is not None else ConstantSchedule()
        if not isinstance(self.schedule, tuple(SCHEDULES.values())):
            raise ValueError(f"schedule must be one of cinemri.seg.schedules.SCHEDULES, got {type(schedule).__name__}")
        params = None if balance_parameters is None else list(balance_parameters)
        if params is not None and (not params or not all(isinstance(p, Tensor) and p.requires_grad for p in params)):
            raise ValueError("balance_parameters must be a non-empty sequence of tensors that require grad")
        self._balance_parameters = params  # plain list: not registered, not in state_dict
        self.last_ce: Tensor | None = None
        self.last_dice: Tensor | None = None
        self._used_weight: float | None = None

    def set_progress(self, *, epoch: float, step: int, total_epochs: int) -> None:
        """Forwarded to the schedule (see cinemri.seg.schedules)."""
        self.schedule.set_progress(epoch=epoch, step=step, total_epochs=total_epochs)

    @property
    def weight(self) -> float:
        """CE weight w used by the last forward (the schedule's current w before any forward)."""
        return self.schedule.weight if self._used_weight is None else self._used_weight

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """logits: (B, K, H, W) float, labels: (B, H, W) int64 -> 0-d loss."""
        logits = _upcast(logits)  # differentiate w.r.t. the float32 logits: no fp16 underflow
        ce = self.ce(logits, labels)
        dice = self.dice(logits, labels)
        if self.schedule.needs_grad_norms and self.training and torch.is_grad_enabled() and logits.requires_grad:
            inputs = [logits] if self._balance_parameters is None else self._balance_parameters
            norms = torch.stack([_grad_norm(ce, inputs), _grad_norm(dice, inputs)])  # (2,) [|g_ce|, |g_dice|]
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(norms)
                norms = norms / dist.get_world_size()
            norm_ce, norm_dice = norms.tolist()
            self.schedule.observe(norm_ce, norm_dice)
        w = self.schedule.weight
        self._used_weight = w
        self.last_ce, self.last_dice = ce.detach(), dice.detach()
        return w * ce + (1.0 - w) * dice

    def logs(self) -> dict[str, float | Tensor]:
        """{"ce", "dice", "w_ce"} of the last forward (empty before the first)."""
        if self.last_ce is None or self.last_dice is None:
            return {}
        return {"ce": self.last_ce, "dice": self.last_dice, "w_ce": self.weight}

    def get_extra_state(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state_dict()}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or "schedule" not in state:
            raise ValueError(f"CombinedLoss state must be a dict with key 'schedule', got {state!r}")
        self.schedule.load_state_dict(state["schedule"])
        self._used_weight = None
