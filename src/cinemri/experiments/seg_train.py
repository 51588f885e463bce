"""``cinemri seg train``: a segmentation experiment through the one training engine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from cinemri.experiments.seg_config import SegExperiment, load_seg_config
from cinemri.experiments.seg_task import SegTask
from cinemri.files import atomic_write_text
from cinemri.train import FitResult, fit


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
