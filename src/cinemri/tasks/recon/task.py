"""The reconstruction task for the training engine, and ``cinemri recon train``.

:class:`ReconTask` turns a ``ReconExperiment`` (:mod:`cinemri.recon.config`) into what
:func:`cinemri.train.fit` needs: datasets, the cascade, the loss with the recipe's DC
schedule, and per-slice validation metrics.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from cinemri.data import ReconBatch, collate_recon, split_cases
from cinemri.metrics import nmse_batch, psnr_batch, ssim_batch, worst_frame_psnr_batch
from cinemri.recon import build_reconstructor
from cinemri.recon.config import MODEL_NAME, load_recon_config
from cinemri.recon.losses import recon_loss
from cinemri.tasks.recon.data import make_dataset, source_cases
from cinemri.train import FitResult, fit


class ReconTask:
    """The reconstruction task for :func:`cinemri.train.fit` (see :class:`cinemri.train.Task`).

    loss: the configured terms on the complex image, in the dataset's normalised scale.
    validate: per-slice ``loss``, ``psnr``, ``ssim``, ``nmse`` on magnitudes with the data range
    of each slice (max |target| of that slice, all frames), and ``psnr_worst_frame`` (the
    slice's lowest per-frame PSNR, usually end systole: ``train.monitor: val_psnr_worst_frame``
    selects for the frame that decides the ejection fraction); :mod:`cinemri.tasks.recon.evaluate`
    scores whole cases.
    """

    model_name = MODEL_NAME

    def __init__(self, config: Any, train_dataset: Dataset | None = None, val_dataset: Dataset | None = None) -> None:
        self.config = config
        self.model_args = config.model.model_args()
        self.terms = config.loss.terms()
        self.recipe = config.recipe
        self.steps_done = 0  # optimizer steps taken, for the recipe's schedules
        self.dc_hardness = 0.0
        data = config.data
        val_slices = data.max_val_slices_per_case or data.max_slices_per_case
        if data.train:
            cases = source_cases(data) if train_dataset is None or val_dataset is None else {}
            if train_dataset is None:
                train_dataset = make_dataset(cases["train"][:data.max_train_cases],
                                             data.options(data.train_mask_mode, train=True), data.max_slices_per_case)
            if val_dataset is None and cases["val"]:
                val_dataset = make_dataset(cases["val"][:data.max_val_cases], data.options("fixed"), val_slices)
        else:
            if train_dataset is None:
                files = split_cases(data.root, data.train_split, data.split_file, data.max_train_cases)
                train_dataset = make_dataset(files, data.options(data.train_mask_mode, train=True),
                                             data.max_slices_per_case)
            if val_dataset is None and data.val_split:
                files = split_cases(data.root, data.val_split, data.split_file, data.max_val_cases)
                val_dataset = make_dataset(files, data.options("fixed"), val_slices)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset

    def build_model(self) -> nn.Module:
        return build_reconstructor(**self.model_args)

    def collate(self, samples: list) -> ReconBatch | list[ReconBatch]:
        """One :class:`ReconBatch`, or, when the samples' (T, H, W) differ (whole slices of
        cases of different sizes, e.g. a validation set of Sunnybrook and phantom cases), a
        list of batches of one size each, in first-seen order."""
        groups: dict[tuple[int, ...], list] = {}
        for sample in samples:
            groups.setdefault(tuple(sample.kspace.shape[1:]), []).append(sample)
        batches = [collate_recon(group) for group in groups.values()]
        return batches[0] if len(batches) == 1 else batches

    def set_progress(self, epoch: int, step: int, total_epochs: int) -> None:
        """Called by the engine before each training step: advance the recipe's schedules."""
        self.dc_hardness = self.recipe.dc_hardness(self.steps_done)
        self.steps_done += 1

    def state_dict(self) -> dict[str, int]:
        return {"steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_done = int(state.get("steps_done", 0))

    def loss(self, batch: ReconBatch | list[ReconBatch], model: nn.Module) -> tuple[Tensor, dict[str, Tensor]]:
        if isinstance(batch, list):  # sizes differ: the sample-weighted mean over the groups
            parts = [self.loss(group, model) for group in batch]
            sizes = [group.kspace.shape[0] for group in batch]
            total = sum(sizes)
            loss = sum(part[0] * n for part, n in zip(parts, sizes)) / total
            logs = {key: sum(part[1][key] * n for part, n in zip(parts, sizes)) / total for key in parts[0][1]}
            return loss, logs
        if self.dc_hardness > 0:
            pred = model(batch.kspace, batch.mask, batch.maps, dc_hardness=self.dc_hardness)  # (B, T, H, W)
        else:
            pred = model(batch.kspace, batch.mask, batch.maps)  # (B, T, H, W) complex64
        return recon_loss(pred, batch.target, self.terms)

    def validate(self, batch: ReconBatch | list[ReconBatch], model: nn.Module) -> dict[str, Tensor]:
        if isinstance(batch, list):
            parts = [self.validate(group, model) for group in batch]
            return {key: torch.cat([part[key].reshape(-1) for part in parts]) for key in parts[0]}
        pred = model(batch.kspace, batch.mask, batch.maps)  # (B, T, H, W) complex64
        losses = torch.stack([recon_loss(pred[i:i + 1], batch.target[i:i + 1], self.terms)[0]
                              for i in range(pred.shape[0])])  # (B,)
        return {"loss": losses, "psnr": psnr_batch(pred, batch.target), "ssim": ssim_batch(pred, batch.target),
                "nmse": nmse_batch(pred, batch.target), "psnr_worst_frame": worst_frame_psnr_batch(pred, batch.target)}


def train(files: Sequence[str | os.PathLike], overrides: Sequence[str] = (), resume: str | os.PathLike | None = None,
          stop_after_epoch: int | None = None,
          on_epoch_end: Callable[[Mapping[str, float]], None] | None = None) -> FitResult:
    """Train the reconstruction model the config ``files`` + ``overrides`` describe
    (``on_epoch_end`` gets each epoch's metrics row).

    Writes ``train.out_dir``: config.yaml, metrics.csv, last.pt, best.pt.
    Raises ValueError on a bad config, missing data or a checkpoint that does not fit.
    """
    config = load_recon_config(files, overrides)
    return fit(ReconTask(config), config, resume=resume, stop_after_epoch=stop_after_epoch,
               on_epoch_end=on_epoch_end)
