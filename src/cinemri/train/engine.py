"""The training loop shared by every task: AdamW, warm-up + cosine LR, clipping, AMP,
validation, best/last checkpoints, exact resume, DistributedDataParallel under torchrun."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from cinemri.errors import RunStopped

from .checkpoint import (FORMAT, FORMAT_VERSION, capture_rng, check_model, load_checkpoint,
                         load_model_state, plain_model_args, restore_rng, save_checkpoint,
                         seed_everything, version, widen_input_channels)
from .config import Experiment, TrainConfig, config_to_dict, dump_config
from .distributed import (DistInfo, ShardSampler, all_gather_objects, all_reduce_max, all_reduce_sum,
                          barrier, cleanup_distributed, init_distributed)
from .progress import MetricsLog, progress_bar
from .task import Task, check_task, move_to_device


class TrainingDivergedError(RunStopped):
    """The loss (or the weights) became NaN/Inf; the last good checkpoint is untouched.

    Its message is one line naming the epoch, the step and the last good checkpoint; the
    ``cinemri`` command prints it without a traceback and exits with status 1."""

    def __init__(self, message: str, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


@dataclass
class FitResult:
    """What a finished (or stopped) run left behind: the trained ``model`` (unwrapped, on the
    training device, in eval mode), counters, checkpoint paths and, on rank 0 only, the
    per-epoch metric rows in ``history``."""

    model: nn.Module
    epochs_completed: int
    global_step: int
    best_metric: float | None
    best_epoch: int | None
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)


def cpu_computes_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions in oneDNN's native kernels (AVX-512 or AMX).

    Where it does not (AVX2 only), bf16 autocast falls back to reference kernels that run
    single-threaded and far slower than fp32 (measured on an AVX2 machine: 18x the time of fp32
    for the cascade's inference and a segmentation training step; docs/benchmarks.md)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without the check: go by the vector width
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``train.amp`` on ``device``, or None for full precision.

    "bf16" on a CPU without native bf16 (:func:`cpu_computes_bf16`) is full precision: bf16
    is a speed setting, and there it would be the slow one."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16" and device.type == "cpu" and not cpu_computes_bf16():
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError(f"train.amp='fp16' needs a CUDA device, got {device}")
        return torch.float16
    if amp == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"train.amp='bf16' is not supported by {torch.cuda.get_device_name(device)}")
        return torch.bfloat16
    raise ValueError(f"train.amp must be auto/off/bf16/fp16, got {amp!r}")


_clock = time.perf_counter  # the training-time clock (tests replace it)


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str, min_ratio: float,
              start_ratio: float = 0.04) -> float:
    """LR multiplier after ``step`` optimizer steps: linear warm-up, then cosine or constant;
    or ``"onecycle"``: a cosine rise from ``start_ratio`` to 1 over the warm-up steps, then a
    cosine fall to ``min_ratio`` at the last step (torch's OneCycleLR, two phases, without
    momentum cycling: the rise ends at step warmup_steps - 1)."""
    if schedule == "onecycle":
        peak = max(1, warmup_steps) - 1
        if step <= peak:
            low, high, progress = start_ratio, 1.0, step / peak if peak else 1.0
        else:
            low, high, progress = 1.0, min_ratio, min(1.0, (step - peak) / max(1, total_steps - 1 - peak))
        return high + (low - high) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def fit(task: Task, config: Any, *, resume: str | Path | None = None, stop_after_epoch: int | None = None,
        on_epoch_end: Callable[[Mapping[str, float]], None] | None = None) -> FitResult:
    """Train ``task`` as ``config`` says; resume from a checkpoint if ``resume`` is given.

    ``config`` is an experiment dataclass with a ``train: TrainConfig`` field (or a bare
    :class:`TrainConfig`, taken as ``Experiment(train=config)``); its full content is saved
    into every checkpoint and ``out_dir/config.yaml``.
    ``stop_after_epoch`` ends the run after that epoch (1-based) as if the job were cut
    off; the LR schedule still spans ``train.epochs``, and ``fit(resume=last)`` continues it.
    ``on_epoch_end(row)`` is called on rank 0 with each epoch's metrics row.
    Optional hooks, used when present: ``task.train_dataset.set_epoch(epoch)`` before each
    training epoch's iterator is made (0-based epoch; DataLoader workers are created after
    it, so they see it); ``task.set_progress(epoch, step, total_epochs)`` before each
    training step (0-based epoch, 0-based step within that epoch, ``train.epochs``);
    ``task.state_dict()`` (plain values/tensors) saved as the checkpoint's ``"task"`` entry
    and given back to ``task.load_state_dict(state)`` on resume.
    Under torchrun (``WORLD_SIZE`` > 1) it joins the process group, shards the data and
    wraps the model in DistributedDataParallel; only rank 0 writes files.

    Raises:
        ValueError: an invalid task, config or checkpoint (names the file).
        TrainingDivergedError: a NaN/Inf loss or weights; earlier checkpoints are kept.
    """
    check_task(task)
    if isinstance(config, TrainConfig):
        train_cfg, config = config, Experiment(train=config)
    elif dataclasses.is_dataclass(config) and isinstance(getattr(config, "train", None), TrainConfig):
        train_cfg = config.train
    else:
        raise ValueError(f"config must be a TrainConfig or a dataclass with a 'train: TrainConfig' field, "
                         f"got {type(config).__name__}")
    info = init_distributed(train_cfg.device)
    try:
        result = _Run(task, train_cfg, config, info).fit(resume, stop_after_epoch, on_epoch_end)
        # leave the group together: a rank that tears gloo down while rank 0 is still writing
        # its checkpoint can abort ("terminate called without an active exception")
        barrier(info)
        return result
    finally:
        cleanup_distributed(info)


class _Run:
    """State of one run; built identically on every rank."""

    def __init__(self, task: Task, cfg: TrainConfig, full_config: Any, info: DistInfo) -> None:
        self.task, self.cfg, self.info = task, cfg, info
        self.full_config = full_config
        self.record = config_to_dict(full_config)
        self.out_dir = Path(cfg.out_dir)
        self.last_path = self.out_dir / cfg.last_name
        self.best_path = self.out_dir / cfg.best_name
        self.device = info.device
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        if cfg.amp == "bf16" and self.amp_dtype is None and info.is_main:
            print("train.amp=bf16: this CPU has no native bf16 kernels (AVX2 only), so the run is in fp32, "
                  "the faster precision here", file=sys.stderr, flush=True)
        self.model_args = plain_model_args(task.model_args)

        seed_everything(cfg.seed)  # same initial weights on every rank
        self.model: nn.Module = task.build_model().to(self.device)
        if cfg.init_from is not None:  # fine-tuning: weights only
            init = widen_input_channels(load_checkpoint(cfg.init_from), self.model, self.model_args,
                                        cfg.init_from)
            check_model(init, cfg.init_from, task.model_name, self.model_args)
            load_model_state(self.model, init, cfg.init_from)
        seed_everything(cfg.seed + info.rank)  # different augmentation per rank

        self.sampler = DistributedSampler(task.train_dataset, num_replicas=info.world_size, rank=info.rank,
                                          shuffle=True, seed=cfg.seed)
        pin = self.device.type == "cuda"
        self.train_loader = DataLoader(task.train_dataset, batch_size=cfg.batch_size, sampler=self.sampler,
                                       collate_fn=task.collate, num_workers=cfg.num_workers, pin_memory=pin)
        self.val_loader = None
        if task.val_dataset is None and cfg.monitor.startswith("val_"):
            raise ValueError(f"train.monitor is {cfg.monitor!r} but the task has no val_dataset "
                             f"(monitor a train_ metric instead)")
        if task.val_dataset is not None:
            self.val_loader = DataLoader(task.val_dataset, batch_size=cfg.batch_size,
                                         sampler=ShardSampler(len(task.val_dataset), info),
                                         collate_fn=task.collate, num_workers=cfg.num_workers, pin_memory=pin)
        self.steps_per_epoch = len(self.train_loader)
        if cfg.max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.max_steps_per_epoch)
        if self.steps_per_epoch == 0:
            raise ValueError("task.train_dataset is empty")
        total = self.steps_per_epoch * cfg.epochs
        warmup = min(total, round(cfg.warmup_epochs * self.steps_per_epoch))
        self.total_steps = total
        self.budget_s = None if cfg.time_budget_min is None else 60.0 * cfg.time_budget_min
        self.train_seconds = 0.0  # training wall time so far, all resumes together (the budget's clock)

        self.optimizer = torch.optim.AdamW(_param_groups(self.model, cfg.weight_decay), lr=cfg.lr,
                                           betas=cfg.betas)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, warmup, total, cfg.schedule, cfg.min_lr_ratio,
                                                   cfg.start_lr_ratio))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.net: nn.Module = self.model
        if info.distributed:
            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)

        self.epoch = 0  # completed epochs
        self.global_step = 0
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.last_saved: Path | None = None  # the newest checkpoint of this run (or the resumed one)

    # ------------------------------------------------------------------------ resume
    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_model(state, path, self.task.model_name, self.model_args)
        load_model_state(self.model, state, path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
        except (ValueError, KeyError, RuntimeError) as err:
            raise ValueError(f"checkpoint {path}: optimizer/scheduler state does not fit ({err})") from err
        load_task_state = getattr(self.task, "load_state_dict", None)
        if callable(load_task_state) and state.get("task") is not None:
            load_task_state(state["task"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.best_metric, self.best_epoch = state["best_metric"], state["best_epoch"]
        self.train_seconds = float(state.get("train_seconds", 0.0))
        rngs = state["rng"]
        if not isinstance(rngs, list) or not rngs:
            raise ValueError(f"checkpoint {path}: 'rng' must be a non-empty list of per-rank states")
        restore_rng(rngs[self.info.rank % len(rngs)])
        self.apply_current_hyperparameters(state, path)
        self.last_saved = path

    def apply_current_hyperparameters(self, state: Mapping[str, Any], path: Path) -> None:
        """After a resume: the optimizer and schedule follow the current config, not the checkpoint.

        The optimizer state restores the checkpoint's lr, betas and weight decay, and the
        scheduler its base LRs; here they are set from ``train.*`` of this run (so
        ``--resume --set train.lr=...`` trains at the new rate, and config.yaml and the next
        checkpoints record what ran). The schedule's lambda already spans the current
        ``train.epochs``/``warmup_epochs``/``schedule``, so a changed length re-plans the
        cosine from the current step; the current step's LR is recomputed at once.
        A changed ``train.seed`` cannot be applied (the random streams continue from the
        checkpoint) and is refused.
        """
        before = (state.get("config") or {}).get("train", {}) if isinstance(state.get("config"), Mapping) else {}
        if "seed" in before and before["seed"] != self.cfg.seed:
            raise ValueError(f"checkpoint {path}: train.seed was {before['seed']}, now {self.cfg.seed}; a resumed "
                             "run continues the checkpoint's random streams, so the seed cannot change (start a new "
                             "run, or fine-tune with train.init_from)")
        decay = {id(p) for p in self.model.parameters() if p.requires_grad and p.dim() >= 2}
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.cfg.lr
            group["betas"] = tuple(self.cfg.betas)
            group["weight_decay"] = self.cfg.weight_decay if any(id(p) in decay for p in group["params"]) else 0.0
        self.scheduler.base_lrs = [self.cfg.lr for _ in self.optimizer.param_groups]
        if self.budget_s is not None:  # a changed budget re-plans the time-based schedule too
            self.scheduler.last_epoch = self.budget_step()
        step = self.scheduler.last_epoch
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                       self.scheduler.lr_lambdas):
            group["lr"] = base * factor(step)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    # -------------------------------------------------------------------------- loop
    def fit(self, resume: str | Path | None, stop_after: int | None,
            on_epoch_end: Callable[[Mapping[str, float]], None] | None) -> FitResult:
        if resume is not None:
            self.restore(Path(resume))
        log = None
        if self.info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            dump_config(self.full_config, self.out_dir / "config.yaml")
            log = MetricsLog(self.out_dir / self.cfg.metrics_name, self.cfg.tensorboard)
            log.truncate_after(self.epoch)
        history: list[dict[str, float]] = []
        try:
            while (self.epoch < self.cfg.epochs and (stop_after is None or self.epoch < stop_after)
                   and not self.budget_spent):
                start = time.perf_counter()
                row: dict[str, float] = {"epoch": self.epoch + 1}
                row.update(self.train_epoch())
                row["step"] = self.global_step
                row["lr"] = self.optimizer.param_groups[0]["lr"]
                if self.val_loader is not None and ((self.epoch + 1) % self.cfg.val_every == 0
                                                    or self.epoch + 1 == self.cfg.epochs or self.budget_spent):
                    row.update({f"val_{k}": v for k, v in self.validate().items()})
                row["time_s"] = time.perf_counter() - start
                self.epoch += 1
                self.end_epoch(row, log)
                if self.info.is_main:
                    history.append(row)
                    if on_epoch_end is not None:
                        on_epoch_end(row)
        finally:
            if log is not None:
                log.close()
        self.model.eval()
        return FitResult(self.model, self.epoch, self.global_step, self.best_metric, self.best_epoch, self.last_path,
                         self.best_path if self.best_epoch is not None else None, history)

    def train_epoch(self) -> dict[str, float]:
        self.net.train()
        self.sampler.set_epoch(self.epoch)
        set_epoch = getattr(self.task.train_dataset, "set_epoch", None)
        if callable(set_epoch):  # before the iterator exists, so DataLoader workers see it
            set_epoch(self.epoch)
        sums: dict[str, float] = defaultdict(float)
        bar = progress_bar(self.train_loader, self.steps_per_epoch, f"epoch {self.epoch + 1}/{self.cfg.epochs}",
                           self.cfg.progress and self.info.is_main)
        steps = 0
        set_progress = getattr(self.task, "set_progress", None)
        tick = _clock()
        for batch in bar:
            batch = move_to_device(batch, self.device, non_blocking=self.device.type == "cuda")
            if callable(set_progress):
                set_progress(self.epoch, steps, self.cfg.epochs)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                loss, logs = self.task.loss(batch, self.net)
            value = float(loss.detach())
            now = _clock()
            # one reduction per step: divergence on any rank, and the slowest rank's time since the
            # last step (every rank must see the same clock, or a time-based LR would differ)
            bad, elapsed = all_reduce_max(torch.tensor([0.0 if math.isfinite(value) else 1.0, now - tick],
                                                       dtype=torch.float64, device=self.device), self.info).tolist()
            tick = now
            self.train_seconds += elapsed
            if bad > 0:
                self.diverged(f"loss is {value} on rank {self.info.rank}" if not math.isfinite(value)
                              else "loss is NaN/Inf on another rank", self.epoch + 1, self.global_step + 1)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.budget_s is not None:
                self.scheduler.last_epoch = self.budget_step() - 1  # step() moves it to budget_step()
            self.scheduler.step()
            self.global_step += 1
            steps += 1
            sums["loss"] += value
            for key, item in logs.items():
                sums[key] += float(item)
            bar.set_postfix(loss=f"{value:.4g}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
            if steps == self.steps_per_epoch or self.budget_spent:
                break
        bar.close()
        keys = sorted(sums)
        totals = all_reduce_sum(torch.tensor([sums[k] for k in keys] + [float(steps)], dtype=torch.float64,
                                             device=self.device), self.info).tolist()
        return {f"train_{k}": totals[i] / totals[-1] for i, k in enumerate(keys)}

    @property
    def budget_spent(self) -> bool:
        return self.budget_s is not None and self.train_seconds >= self.budget_s

    def budget_step(self) -> int:
        """The schedule's step for the budget spent so far: the same fraction of all steps."""
        assert self.budget_s is not None
        return min(self.total_steps, int(self.total_steps * self.train_seconds / self.budget_s))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean of every validation metric over all samples of all ranks."""
        assert self.val_loader is not None
        self.model.eval()
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, float] = defaultdict(float)
        for batch in self.val_loader:
            batch = move_to_device(batch, self.device, non_blocking=self.device.type == "cuda")
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                metrics = self.task.validate(batch, self.model)
            for key, item in metrics.items():
                values = torch.as_tensor(item, dtype=torch.float64).detach().reshape(-1)
                sums[key] += float(values.sum())
                counts[key] += values.numel()
        keys = sorted(set().union(*all_gather_objects(sorted(sums), self.info)))
        packed = torch.tensor([sums.get(k, 0.0) for k in keys] + [counts.get(k, 0.0) for k in keys],
                              dtype=torch.float64, device=self.device)
        totals = all_reduce_sum(packed, self.info).tolist()
        n = len(keys)
        return {k: totals[i] / totals[n + i] if totals[n + i] else math.nan for i, k in enumerate(keys)}

    def end_epoch(self, row: dict[str, float], log: MetricsLog | None) -> None:
        """Check weights, update best, write metrics and checkpoints (rank 0)."""
        finite = all(torch.isfinite(p).all() for p in self.model.parameters())
        if not finite:
            self.diverged("model weights contain NaN/Inf", self.epoch, self.global_step)
        monitor = self.cfg.monitor
        validated = any(k.startswith("val_") for k in row)
        if monitor not in row and (validated or not monitor.startswith("val_")):
            raise ValueError(f"train.monitor: {monitor!r} is not a metric of this task "
                             f"(have: {', '.join(k for k in row if k not in ('epoch', 'step'))})")
        is_best = False
        if monitor in row and math.isfinite(row[monitor]):
            value = float(row[monitor])
            best = self.best_metric
            if best is None or (value < best if self.cfg.monitor_mode == "min" else value > best):
                self.best_metric, self.best_epoch, is_best = value, self.epoch, True
        rngs = all_gather_objects(capture_rng(), self.info)
        self.last_saved = self.last_path
        if not self.info.is_main:
            return
        assert log is not None
        log.append(row)
        state = self.state(rngs, row)
        save_checkpoint(self.last_path, state)
        if is_best:
            save_checkpoint(self.best_path, state)

    def state(self, rngs: list[dict[str, Any]], row: Mapping[str, float]) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "cinemri_version": version(),
            "model_name": self.task.model_name, "model_args": self.model_args,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "global_step": self.global_step, "train_seconds": self.train_seconds,
            "best_metric": self.best_metric, "best_epoch": self.best_epoch, "monitor": self.cfg.monitor,
            "rng": rngs, "config": self.record, "metrics": {k: float(v) for k, v in row.items()},
            "task": self.task.state_dict() if callable(getattr(self.task, "state_dict", None)) else None,
        }

    def diverged(self, what: str, epoch: int, step: int) -> None:
        kept = f"last good checkpoint: {self.last_saved}" if self.last_saved else "no checkpoint written yet"
        raise TrainingDivergedError(f"training diverged at epoch {epoch}, step {step}: {what}; {kept}",
                                    epoch=epoch, step=step)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices/kernels (dim >= 2) only, not on biases and norms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    if not decay and not rest:
        raise ValueError("task.build_model() returned a model without trainable parameters")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
