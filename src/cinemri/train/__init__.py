"""One training engine for every task: typed config, loop, AMP, checkpoints, DDP, logging.

Typical use::

    from cinemri.train import Experiment, load_config, fit
    cfg = load_config(Experiment, ["configs/base.yaml"], overrides=["train.lr=1e-3"])
    result = fit(my_task, cfg)                    # my_task follows cinemri.train.Task
    fit(my_task, cfg, resume=result.last_checkpoint)
"""

from .checkpoint import check_model, load_checkpoint, load_model_state, save_checkpoint, seed_everything
from .config import (Experiment, TrainConfig, build, config_to_dict, dump_config, load_config,
                     make_experiment, parse_value)
from .distributed import DistInfo, init_distributed
from .engine import FitResult, TrainingDivergedError, fit, lr_factor, resolve_amp
from .task import Task, move_to_device

__all__ = [
    "DistInfo", "Experiment", "FitResult", "Task", "TrainConfig", "TrainingDivergedError", "build",
    "check_model", "config_to_dict", "dump_config", "fit", "init_distributed", "load_checkpoint",
    "load_config", "load_model_state", "lr_factor", "make_experiment", "move_to_device", "parse_value",
    "resolve_amp", "save_checkpoint", "seed_everything",
]
