"""Experiments: configs, tasks and the API functions behind ``cinemri recon ...``.

Reconstruction: :func:`train`, :func:`evaluate`, :func:`predict`, :func:`ablate`,
:func:`load_reconstructor`; config sections in :mod:`cinemri.experiments.recon`.
"""

from cinemri.experiments.recon import (AblationSection, LoadedReconstructor, ReconDataSection, ReconExperiment,
                                       ReconLossSection, ReconModelSection, ReconTask, load_reconstructor,
                                       load_recon_config, split_cases, train)
from cinemri.experiments.recon_ablate import ablate
from cinemri.experiments.recon_eval import EvalOptions, evaluate, predict

__all__ = [
    "AblationSection", "EvalOptions", "LoadedReconstructor", "ReconDataSection", "ReconExperiment",
    "ReconLossSection", "ReconModelSection", "ReconTask", "ablate", "evaluate", "load_recon_config",
    "load_reconstructor", "predict", "split_cases", "train",
]
