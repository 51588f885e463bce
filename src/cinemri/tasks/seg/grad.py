"""``cinemri seg grad-analysis``: gradients of CE, Dice and the combined loss on real batches,
at initialisation and along a short training run of the one engine (fit, stop, measure,
resume). Writes ``grad_analysis.json`` and four PNG figures (see docs/losses.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cinemri.data.seg import collate_seg
from cinemri.files import check_output_dir, write_json
from cinemri.seg.grad_analysis import consistency, gradient_split, logit_gradient, parameter_gradient
from cinemri.seg.losses import CombinedLoss, CrossEntropyLoss, SoftDiceLoss
from cinemri.seg.config import SegExperiment
from cinemri.seg.schedules import SCHEDULES
from cinemri.tasks.seg.task import SegTask
from cinemri.train import fit, load_config, seed_everything


@dataclass
class GradAnalysisSection:
    """``batches`` fixed analysis batches of ``batch_size`` slices with foreground (from the
    validation cases, else training), measured at initialisation and after each epoch in
    ``measure_epochs`` (training runs to the last of them)."""

    batches: int = 4
    batch_size: int = 8
    measure_epochs: list[int] = field(default_factory=lambda: [1, 2, 4, 8])

    def __post_init__(self) -> None:
        if self.batches < 2 or self.batch_size < 1:
            raise ValueError(f"analysis.batches must be >= 2 and batch_size >= 1, got {self.batches}, "
                             f"{self.batch_size}")
        if not self.measure_epochs or sorted(set(self.measure_epochs)) != list(self.measure_epochs) \
                or self.measure_epochs[0] < 1:
            raise ValueError(f"analysis.measure_epochs must be increasing epochs >= 1, got {self.measure_epochs}")


@dataclass
class GradExperiment(SegExperiment):
    """A segmentation experiment plus the ``analysis`` section."""

    analysis: GradAnalysisSection = field(default_factory=GradAnalysisSection)


def _analysis_batches(task: SegTask, section: GradAnalysisSection) -> list[Any]:
    dataset = task.val_dataset if task.val_dataset is not None else task.train_dataset
    keep = [i for i in range(len(dataset)) if bool(dataset[i].labels.any())]
    need = section.batches * section.batch_size
    if len(keep) < need:
        raise ValueError(f"grad analysis needs {need} slices with foreground, the data has {len(keep)}")
    chosen = [keep[round(j * (len(keep) - 1) / (need - 1))] for j in range(need)] if need > 1 else keep[:1]
    return [collate_seg([dataset[i] for i in chosen[b::section.batches]]) for b in range(section.batches)]


def measure(model: torch.nn.Module, batches: list[Any], weight: float) -> dict[str, Any]:
    """Logit-gradient split (mean over batches) of CE, Dice and w CE + (1 - w) Dice, and the
    consistency of the parameter gradients of CE and Dice across batches."""
    ce, dice = CrossEntropyLoss(), SoftDiceLoss()

    def combined(z, y):
        return weight * ce(z, y) + (1.0 - weight) * dice(z, y)

    losses = {"ce": ce, "dice": dice, "combined": combined}
    model.eval()
    splits: dict[str, list[dict[str, float]]] = {name: [] for name in losses}
    params: dict[str, list[torch.Tensor]] = {"ce": [], "dice": []}
    for batch in batches:
        with torch.no_grad():
            out = model(batch.image)
        logits = out[0] if isinstance(out, (list, tuple)) else out  # (B, K, H, W)
        for name, fn in losses.items():
            splits[name].append(gradient_split(logit_gradient(fn, logits, batch.labels), batch.labels))
        for name in params:
            params[name].append(parameter_gradient(model, batch.image, batch.labels, losses[name]))
    result: dict[str, Any] = {"w": weight}
    for name, rows in splits.items():
        keys = sorted(set().union(*rows))
        result[name] = {k: float(np.nanmean([r.get(k, math.nan) for r in rows])) for k in keys}
    for name, vectors in params.items():
        result[name]["param"] = consistency(vectors)
    n_ce, n_dice = result["ce"]["norm_l2"], result["dice"]["norm_l2"]
    result["adaptive_target_w"] = n_dice / (n_ce + n_dice) if n_ce + n_dice > 0 else math.nan
    return result


def schedule_curves(total_epochs: int) -> dict[str, list[float]]:
    """w at the start of each epoch for every progress schedule with its default arguments."""
    curves = {}
    for name, cls in SCHEDULES.items():
        if name == "adaptive":
            continue
        schedule = cls() if name != "step" else cls(milestones=(max(1, total_epochs // 2),))
        values = []
        for epoch in range(total_epochs):
            schedule.set_progress(epoch=epoch, step=0, total_epochs=total_epochs)
            values.append(schedule.weight)
        curves[name] = values
    return curves


def grad_analysis(files: Sequence[str], out_dir: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run the analysis of the experiment in ``files`` (+ ``overrides``); write figures and
    ``grad_analysis.json`` into ``out_dir``; return the numbers. ``out_dir`` is checked before
    any work (:func:`cinemri.files.check_output_dir`); files are written atomically, JSON
    with NaN/inf as null (:func:`cinemri.files.write_json`)."""
    out = check_output_dir(out_dir)
    cfg = load_config(GradExperiment, files, overrides)
    cfg.train.out_dir = str(out / "run")
    cfg.train.epochs = cfg.analysis.measure_epochs[-1]
    task = SegTask(cfg)
    batches = _analysis_batches(task, cfg.analysis)
    seed_everything(cfg.train.seed)  # the engine's initial weights
    model = task.build_model()
    weight = task.criterion.weight if isinstance(task.criterion, CombinedLoss) else 0.5
    points = [{"epoch": 0, **measure(model, batches, weight)}]
    history: list[dict[str, float]] = []
    last = None
    for epoch in cfg.analysis.measure_epochs:
        result = fit(task, cfg, resume=last, stop_after_epoch=epoch)
        history += result.history
        last = result.last_checkpoint
        weight = task.criterion.weight if isinstance(task.criterion, CombinedLoss) else 0.5
        points.append({"epoch": epoch, **measure(result.model.cpu(), batches, weight)})
    numbers = {"config": {"model": cfg.model.name, "loss": cfg.loss.kind, "schedule": cfg.loss.schedule,
                          "batches": cfg.analysis.batches, "batch_size": cfg.analysis.batch_size,
                          "image_size": list(batches[0].image.shape[-2:])},
               "points": points, "history": history, "schedules": schedule_curves(cfg.train.epochs)}
    out.mkdir(parents=True, exist_ok=True)
    write_json(numbers, out / "grad_analysis.json")
    from cinemri.tasks.seg.grad_figures import write_figures

    numbers["figures"] = [str(p) for p in write_figures(numbers, out)]
    return numbers
