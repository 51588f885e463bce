"""The segmentation task for the training engine (:func:`cinemri.train.fit`), and ``cinemri seg train``.

:class:`SegTask` turns a :class:`~cinemri.seg.config.SegExperiment` into what the
engine needs: datasets (split by case), the model, the loss (with deep supervision), batch
augmentation from a per-rank ``torch.Generator`` and the validation metrics (hard Dice per
structure and their mean, ``val_dice_mean``, the monitored metric).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from cinemri.data.seg import InMemorySegDataset, SegBatch, SegDataset, collate_seg
from cinemri.files import atomic_write_text
from cinemri.labels import STRUCTURES
from cinemri.seg.augment import augment_batch, heart_crop
from cinemri.seg.config import SegExperiment, SegLossSection, load_seg_config
from cinemri.seg.losses import CombinedLoss, CrossEntropyLoss, SoftDiceLoss
from cinemri.seg.models import ENSEMBLE, build_segmenter, segmenter_arguments
from cinemri.seg.schedules import SCHEDULES
from cinemri.tasks.seg.data import CaseRef, split_cases
from cinemri.train import FitResult, fit


def build_loss(section: SegLossSection) -> nn.Module:
    """The loss module of a loss section: CrossEntropyLoss, SoftDiceLoss or CombinedLoss.

    Raises:
        ValueError: bad schedule arguments or class weights (named).
    """
    ce = CrossEntropyLoss(class_weights=section.class_weights)
    dice = SoftDiceLoss(include_background=section.include_background, smooth_num=section.smooth,
                        smooth_den=section.smooth, batch_dice=section.batch_dice)
    if section.kind == "ce":
        return ce
    if section.kind == "dice":
        return dice
    try:
        schedule = SCHEDULES[section.schedule](**section.schedule_args)
    except TypeError as err:
        raise ValueError(f"loss.schedule_args {section.schedule_args!r} do not fit schedule "
                         f"{section.schedule!r} ({err})") from err
    return CombinedLoss(ce, dice, schedule)


def deep_supervision_weights(count: int) -> list[float]:
    """Weights 2^-i of outputs i = 0..count-1 (full resolution first), normalised to sum 1."""
    raw = [0.5 ** i for i in range(count)]
    return [w / sum(raw) for w in raw]


def supervised_loss(outputs: Tensor | list[Tensor], labels: Tensor, criterion: nn.Module) -> Tensor:
    """The training loss over every deep-supervision output.

    outputs: logits (B, K, H, W) or a list [full resolution, 1/2, 1/4, ...]; labels: (B, H, W)
    int64, nearest-down-sampled (every 2^i-th pixel) for output i, weighted 2^-i (sum 1).
    returns a float32 scalar.
    """
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    total = outputs[0].new_zeros((), dtype=torch.float32)
    for i, (weight, logits) in enumerate(zip(deep_supervision_weights(len(outputs)), outputs)):
        step = 2 ** i
        total = total + weight * criterion(logits, labels[:, ::step, ::step])  # (B, ceil(H/2^i), ceil(W/2^i))
    return total


def hard_dice_per_image(pred: Tensor, labels: Tensor, label: int) -> Tensor:
    """pred, labels: (B, H, W) int64 -> (B,) float64 Dice of ``label`` per image (1 when absent
    from both, the convention of :func:`cinemri.metrics.dice`)."""
    p, g = pred == label, labels == label  # (B, H, W) bool
    inter = (p & g).sum(dim=(1, 2)).double()  # (B,)
    total = (p.sum(dim=(1, 2)) + g.sum(dim=(1, 2))).double()  # (B,)
    return torch.where(total > 0, 2.0 * inter / total.clamp_min(1.0), torch.ones_like(total))


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class SegTask:
    """Segmentation task (see :class:`cinemri.train.Task`).

    cfg: the experiment; train_refs/val_refs: the cases (default: ``split_cases(cfg.data)``).

    Raises:
        ValueError: unknown model/model argument, bad loss settings, missing data (named).
    """

    def __init__(self, cfg: SegExperiment, train_refs: list[CaseRef] | None = None,
                 val_refs: list[CaseRef] | None = None) -> None:
        if cfg.model.name == ENSEMBLE:
            raise ValueError("model.name 'ensemble' is not trained: train its members, then join them with "
                             "`cinemri export-weights A.pt B.pt ... out.pt`")
        known = segmenter_arguments(cfg.model.name)  # ValueError for an unknown name
        unknown = sorted(set(cfg.model.args) - set(known))
        if unknown:
            raise ValueError(f"model.args: segmenter {cfg.model.name!r} takes no argument(s) {unknown}; "
                             f"it takes {sorted(known)}")
        self.cfg = cfg
        self.model_name = cfg.model.name
        self.model_args: dict[str, Any] = dict(cfg.model.args)
        self.criterion = build_loss(cfg.loss)
        if train_refs is None:
            train_refs, val_refs = split_cases(cfg.data)
        self.train_refs, self.val_refs = list(train_refs), list(val_refs or [])
        options = cfg.data.preprocess
        self.train_dataset = InMemorySegDataset(SegDataset([r.path for r in self.train_refs], options))
        self.val_dataset = (InMemorySegDataset(SegDataset([r.path for r in self.val_refs], options))
                            if self.val_refs else None)
        self._generator: torch.Generator | None = None

    # ------------------------------------------------------------------ engine contract
    def build_model(self) -> nn.Module:
        return build_segmenter(self.model_name, self.model_args)

    @staticmethod
    def collate(samples: list) -> SegBatch:
        return collate_seg(samples)

    @property
    def generator(self) -> torch.Generator:
        """The augmentation generator of this rank: seeded augment.seed + 1000 * rank."""
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.cfg.augment.seed + 1000 * _rank())
        return self._generator

    def loss(self, batch: SegBatch, model: nn.Module) -> tuple[Tensor, Mapping[str, float | Tensor]]:
        """Augment (if enabled), forward, loss over every deep-supervision output."""
        images, labels = batch.image, batch.labels  # (B, C, H, W), (B, H, W)
        if self.cfg.augment.crop is not None:  # (B, C, h, w), (B, h, w)
            images, labels = heart_crop(images, labels, self.cfg.augment.crop, self.cfg.augment.crop_jitter,
                                        self.generator)
        if self.cfg.augment.enabled:
            images, labels = augment_batch(images, labels, self.cfg.augment.options, self.generator)
        total = supervised_loss(model(images), labels, self.criterion)
        logs: dict[str, float | Tensor] = {}
        if isinstance(self.criterion, CombinedLoss):
            logs.update(self.criterion.logs())
            norms = getattr(self.criterion.schedule, "last_norms", None)
            if norms is not None:
                logs.update(grad_norm_ce=norms[0], grad_norm_dice=norms[1])
        return total, logs

    def validate(self, batch: SegBatch, model: nn.Module) -> dict[str, Tensor]:
        """Per image: hard Dice of RV, MYO, LV and their mean (2D, on the network grid), CE."""
        logits = model(batch.image)
        logits = (logits[0] if isinstance(logits, (list, tuple)) else logits).float()  # (B, K, H, W)
        pred = logits.argmax(dim=1)  # (B, H, W)
        scores = {f"dice_{name}": hard_dice_per_image(pred, batch.labels, value)
                  for name, value in STRUCTURES.items()}
        scores["dice_mean"] = torch.stack(list(scores.values())).mean(dim=0)  # (B,)
        ce = torch.nn.functional.cross_entropy(logits, batch.labels, reduction="none").mean(dim=(1, 2))  # (B,)
        scores["loss"] = ce
        return scores

    # ------------------------------------------------------------------ optional hooks
    def set_progress(self, epoch: float, step: int, total_epochs: int) -> None:
        """Forwarded to a combined loss's weight schedule (called by the engine each step)."""
        if isinstance(self.criterion, CombinedLoss):
            self.criterion.set_progress(epoch=epoch, step=step, total_epochs=total_epochs)

    def state_dict(self) -> dict[str, Any]:
        """Loss-schedule state and this rank's augmentation generator state (for exact resume)."""
        return {"loss": self.criterion.state_dict(), "generator": self.generator.get_state(), "rank": _rank()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`. A state saved by another rank (checkpoints hold rank 0's)
        is restored and then re-seeded from one draw plus this rank, so ranks stay distinct."""
        if not isinstance(state, Mapping) or not {"loss", "generator"} <= set(state):
            raise ValueError(f"task state must be a mapping with 'loss' and 'generator', got {type(state).__name__}")
        self.criterion.load_state_dict(state["loss"])
        self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8))
        if int(state.get("rank", 0)) != _rank():
            draw = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
            self.generator.manual_seed(draw + 1000 * _rank())


def read_split_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{"train": [names], "val": [names]}`` of a ``split.txt`` that :func:`train` writes
    (one ``role name`` line per case, blank lines ignored).

    Raises:
        ValueError: the file is missing, or a line is not ``train NAME`` / ``val NAME`` (file:line).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: split file not found")
    roles: dict[str, list[str]] = {"train": [], "val": []}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] not in roles:
            raise ValueError(f"{path}:{number}: expected 'train NAME' or 'val NAME', got {line!r}")
        roles[parts[0]].append(parts[1])
    return roles


def train(cfg: SegExperiment, *, resume: str | os.PathLike | None = None,
          stop_after_epoch: int | None = None,
          on_epoch_end: Callable[[Mapping[str, float]], None] | None = None) -> FitResult:
    """Train ``cfg`` with :func:`cinemri.train.fit`; checkpoints in ``cfg.train.out_dir``
    (best by ``train.monitor``, default ``val_dice_mean``). The split used is written to
    ``out_dir/split.txt`` (one ``role name`` line per case)."""
    task = SegTask(cfg)
    out = Path(cfg.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"train {r.name}" for r in task.train_refs] + [f"val {r.name}" for r in task.val_refs]
    atomic_write_text(out / "split.txt", "\n".join(lines) + "\n")
    return fit(task, cfg, resume=resume, stop_after_epoch=stop_after_epoch, on_epoch_end=on_epoch_end)


def train_from_files(files: Sequence[str], overrides: Sequence[str] = (), *,
                     resume: str | os.PathLike | None = None,
                     on_epoch_end: Callable[[Mapping[str, float]], None] | None = None) -> FitResult:
    """:func:`train` of the experiment described by YAML ``files`` and ``overrides``
    (``on_epoch_end`` gets each epoch's metrics row)."""
    return train(load_seg_config(files, overrides), resume=resume, on_epoch_end=on_epoch_end)
