"""The contract between a task (reconstruction, segmentation, ...) and the training engine.

The engine never imports a model or a dataset; it asks the task. Any object with these
members is a task (structural typing, no base class needed).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

TASK_MEMBERS = ("model_name", "model_args", "train_dataset", "val_dataset",
                "build_model", "loss", "validate", "collate")


@runtime_checkable
class Task(Protocol):
    """What :func:`cinemri.train.fit` needs from a task.

    - ``model_name`` / ``model_args``: registry name and plain-typed keyword arguments
      (None/bool/int/float/str/list/dict) of the model ``build_model`` returns; both go into
      every checkpoint, and resuming checks they match.
    - ``train_dataset`` / ``val_dataset``: map-style datasets (``val_dataset`` may be None).
    - ``collate(samples)``: a batch from a list of dataset items.
    - ``loss(batch, model)``: ``(loss, logs)``; ``loss`` a 0-d float tensor to minimise,
      ``logs`` name -> float or 0-d tensor, averaged over the epoch as ``train_<name>``.
      Call the model only through ``model(...)`` (it may be DistributedDataParallel).
      Runs under autocast when AMP is on; keep physics in fp32/complex64 yourself.
    - ``validate(batch, model)``: name -> a 0-d value (one sample) or a ``(B,)`` tensor of
      per-sample values; the engine averages over all validation samples of all ranks and
      logs ``val_<name>``. Return ``"loss"`` for the default ``train.monitor="val_loss"``.
      Runs under ``torch.no_grad()`` with the model in eval mode.
    """

    model_name: str
    model_args: Mapping[str, Any]
    train_dataset: Dataset
    val_dataset: Dataset | None

    def build_model(self) -> nn.Module: ...

    def collate(self, samples: list[Any]) -> Any: ...

    def loss(self, batch: Any, model: nn.Module) -> tuple[Tensor, Mapping[str, float | Tensor]]: ...

    def validate(self, batch: Any, model: nn.Module) -> Mapping[str, float | Tensor]: ...


def check_task(task: object) -> None:
    """Raise ValueError naming the members ``task`` lacks."""
    missing = [name for name in TASK_MEMBERS if not hasattr(task, name)]
    if missing:
        raise ValueError(f"task {type(task).__name__} lacks {', '.join(missing)} (see cinemri.train.Task)")
    if not isinstance(task.model_name, str) or not task.model_name:
        raise ValueError(f"task.model_name must be a non-empty string, got {task.model_name!r}")


def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """``batch`` with every tensor moved to ``device``: tensors inside mappings, lists,
    tuples (named tuples too) and dataclass instances are moved; other values kept."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: move_to_device(getattr(batch, f.name), device, non_blocking)
                   for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **changes)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)) and not isinstance(batch, str):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    return batch
