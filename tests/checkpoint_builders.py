"""Checkpoints the tests write themselves (shared by the test folders, like io_builders.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from cinemri.train import config_to_dict, save_checkpoint
from cinemri.train.checkpoint import FORMAT, FORMAT_VERSION


def untrained_checkpoint(path: Path, model: torch.nn.Module, name: str, args: dict, config) -> Path:
    """An untrained model in the project's checkpoint format (what training would write)."""
    save_checkpoint(path, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "cinemri_version": "test", "model_name": name,
        "model_args": args, "model": model.state_dict(), "optimizer": {}, "scheduler": {}, "scaler": {},
        "epoch": 0, "global_step": 0, "best_metric": None, "best_epoch": None, "rng": [],
        "config": config_to_dict(config)})
    return path
