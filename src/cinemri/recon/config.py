"""The reconstruction experiment: the config sections a run is trained with and a checkpoint carries.

A reconstruction experiment is one YAML config (``configs/recon/*.yaml``) with sections

- ``train``: :class:`cinemri.train.TrainConfig` (the engine);
- ``model``: :class:`ReconModelSection` (the cascade, see :func:`cinemri.recon.build_reconstructor`);
- ``data``: :class:`ReconDataSection` (cases, split, undersampling, simulation of magnitude
  cine, augmentation, readout strips, quick-run limits);
- ``loss``: :class:`ReconLossSection` (``l1``, ``l2``, ``ssim`` or sums like ``l1+ssim``);
- ``recipe``: :class:`ReconRecipeSection` (training-time schedules such as hard DC early);
- ``ablation``: :class:`AblationSection` (only read by ``cinemri recon ablate``).

Checkpoints store the whole experiment; :mod:`cinemri.recon.inference` rebuilds it to
undersample new cases the way the model was trained, so it lives here, below the tasks
(:mod:`cinemri.tasks.recon`: training, evaluation, ablation) and the pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from cinemri.data import ReconOptions
from cinemri.data.simulate import AugmentOptions, SimulationOptions
from cinemri.masks import MaskOptions
from cinemri.recon.baselines import CSOptions
from cinemri.recon.losses import parse_loss
from cinemri.train import load_config, make_experiment

MODEL_NAME = "recon_cascade"


@dataclass
class ReconModelSection:
    """The unrolled cascade (arguments of :func:`cinemri.recon.build_reconstructor`).

    denoiser: "unet3d", "resnet3d", "crnn" or "unet2d1d"; denoiser_options: its keyword
    arguments (e.g. ``{base_channels: 16, depth: 2, cbam: true}``). shared_weights: one
    denoiser for every stage. init: the starting image, "zero_filled", "view_sharing"
    (missing lines of each frame filled from the time-averaged k-space) or "cs_tv"
    (``init_iters`` iterations of temporal-TV compressed sensing, plus spatial TV of weight
    ``init_lambda_s`` when it is > 0). channels_last: the
    denoisers run in ``torch.channels_last_3d`` memory format (faster on the CPU here).
    residual_gates: every stage's change enters through a learned scalar that starts at 0, so
    training starts from the starting image (after DC) rather than from it plus random networks.
    """

    denoiser: str = "unet3d"
    denoiser_options: dict[str, Any] = field(default_factory=dict)
    num_stages: int = 3
    shared_weights: bool = False
    dc_mode: Literal["soft", "hard"] = "soft"
    init_lambda: float = 1.0
    checkpoint_stages: bool = False
    init: Literal["zero_filled", "view_sharing", "cs_tv"] = "zero_filled"
    init_iters: int = 20
    init_lambda_s: float = 0.0
    channels_last: bool = False
    residual_gates: bool = False

    def __post_init__(self) -> None:
        if self.num_stages < 1:
            raise ValueError(f"model.num_stages must be >= 1, got {self.num_stages}")
        if self.init_iters < 1:
            raise ValueError(f"model.init_iters must be >= 1, got {self.init_iters}")
        if not self.init_lambda_s >= 0:
            raise ValueError(f"model.init_lambda_s must be >= 0, got {self.init_lambda_s}")

    def model_args(self) -> dict[str, Any]:
        """Plain keyword arguments of :func:`build_reconstructor` (what checkpoints store).

        ``init`` (with ``init_iters`` and a non-zero ``init_lambda_s`` for "cs_tv"), ``channels_last``
        and ``residual_gates`` are stored only when they are not the default, so
        checkpoints written before they existed still resume and fine-tune with the same
        arguments.
        """
        args = {"denoiser": self.denoiser, "denoiser_options": dict(self.denoiser_options),
                "num_stages": self.num_stages, "shared_weights": self.shared_weights, "dc_mode": self.dc_mode,
                "init_lambda": self.init_lambda, "checkpoint_stages": self.checkpoint_stages}
        if self.init != "zero_filled":
            args["init"] = self.init
        if self.init == "cs_tv":
            args["init_iters"] = self.init_iters
            if self.init_lambda_s > 0:
                args["init_lambda_s"] = self.init_lambda_s
        if self.channels_last:
            args["channels_last"] = True
        if self.residual_gates:
            args["residual_gates"] = True
        return args


@dataclass
class ReconDataSection:
    """Where the cases come from, how they are acquired, undersampled and augmented.

    Two ways to name the cases:

    - ``root`` + ``split_file`` (``{split: [names]}``, as ``cinemri phantom`` writes it): the
      cases ``root/<name>.h5`` of ``train_split`` and ``val_split`` (used when ``train`` is empty);
    - ``train``: sources (``cinemri recon train --data``), each a case (file or folder
      :func:`cinemri.io.read_any` reads: a DICOM series, an ACDC patient, a case .h5), a
      folder with ``split_file`` (its ``train_split`` cases train, its ``val_split`` cases
      validate), or a folder of such cases (every entry that is a case, sorted). Cases
      whose name (folder or file name without extension) is or starts with ``<n>_`` for
      an ``n`` of ``val_names`` validate instead of training (split by subject); those
      matching ``exclude_names`` are used for neither (e.g. ACDC patient090, the
      real-anatomy test). Every name of ``val_names`` must match a case.

    Training masks change every epoch (``train_mask_mode``); validation and test masks are
    fixed per case and slice. ``simulation``: how magnitude-only cases (and, with
    ``replace_maps``, the phantom) get phase, coils and noise. ``augment`` and
    ``strip_rows`` (readout strips of this many rows, exact for DC) apply to training
    samples only. ``max_*`` limit the data for quick runs: the first cases of each split
    (in order) and the central slices of each case (``max_val_slices_per_case``, when
    set, for validation). ``crop``: (H, W) centre crop of the coil images, e.g. [256, 246]
    for CMRxRecon. ``cache_cases``: whole non-.h5 cases (DICOM, NIfTI) kept in memory per
    dataset and worker; set it to the number of such training cases so each is read once.
    """

    root: str = "data/phantom"
    split_file: str = "split.json"
    train_split: str = "train"
    val_split: str = "val"
    train: list[str] = field(default_factory=list)
    val_names: list[str] = field(default_factory=list)
    exclude_names: list[str] = field(default_factory=list)
    acceleration: float = MaskOptions.acceleration
    pattern: str = MaskOptions.pattern
    center_lines: int = MaskOptions.center_lines
    single_coil: bool = False
    crop: tuple[int, int] | None = None
    train_mask_mode: Literal["per_epoch", "fixed"] = "per_epoch"
    seed: int = 0
    simulation: SimulationOptions = field(default_factory=SimulationOptions)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    strip_rows: int | None = None
    max_train_cases: int | None = None
    max_val_cases: int | None = None
    max_slices_per_case: int | None = None
    max_val_slices_per_case: int | None = None
    cache_cases: int = 2

    def __post_init__(self) -> None:
        for name in ("max_train_cases", "max_val_cases", "max_slices_per_case", "max_val_slices_per_case"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"data.{name} must be >= 1 or null, got {value}")
        ReconOptions(acceleration=self.acceleration, pattern=self.pattern, center_lines=self.center_lines,
                     crop=self.crop, strip_rows=self.strip_rows, cache_cases=self.cache_cases)  # validates

    def options(self, mask_mode: str = "fixed", acceleration: float | None = None,
                train: bool = False) -> ReconOptions:
        """The dataset options of this section (``acceleration`` overrides the section's);
        ``train`` adds the augmentation and readout strips."""
        return ReconOptions(acceleration=self.acceleration if acceleration is None else acceleration,
                            pattern=self.pattern, center_lines=self.center_lines, mask_mode=mask_mode,
                            seed=self.seed, single_coil=self.single_coil, crop=self.crop,
                            simulation=self.simulation, augment=self.augment if train else AugmentOptions(),
                            strip_rows=self.strip_rows if train else None, cache_cases=self.cache_cases)


@dataclass
class ReconLossSection:
    """Training loss: ``kind`` is terms of l1, l2, ssim, dynamic joined by '+'; ``weights`` per term (default 1)."""

    kind: str = "l1"
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parse_loss(self.kind, self.weights)

    def terms(self) -> dict[str, float]:
        return parse_loss(self.kind, self.weights)


@dataclass
class AblationSection:
    """Variants compared by ``cinemri recon ablate``: ``{name: ["section.key=value", ...]}``.

    Every variant trains with the same ``train`` budget and ``data`` (overrides of
    ``train.epochs``, ``train.max_steps_per_epoch``, ``train.batch_size``,
    ``train.time_budget_min`` or ``data.*`` are refused) and is evaluated on ``eval_split`` (at most ``max_eval_cases`` cases).
    """

    variants: dict[str, list[str]] = field(default_factory=dict)
    eval_split: str = "test"
    max_eval_cases: int | None = None
    cs_iters: int = CSOptions.num_iters


@dataclass
class ReconRecipeSection:
    """Training-time schedules of the reconstruction task (not model arguments).

    hard_dc_steps: the first N optimizer steps run every soft-DC stage as hard DC
    (``dc_hardness`` 1); hard_dc_ramp_steps: then the hardness falls linearly to 0 over
    this many steps, after which the learned soft DC runs alone. Validation and inference
    always use hardness 0. The step count is saved in checkpoints, so a resumed run
    continues the schedule.
    """

    hard_dc_steps: int = 0
    hard_dc_ramp_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("hard_dc_steps", "hard_dc_ramp_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"recipe.{name} must be >= 0, got {getattr(self, name)}")

    def dc_hardness(self, step: int) -> float:
        """Hardness for 0-based optimizer step ``step``: 1 before ``hard_dc_steps``, then
        1 - (step - hard_dc_steps) / hard_dc_ramp_steps down to 0."""
        if step < self.hard_dc_steps:
            return 1.0
        if step < self.hard_dc_steps + self.hard_dc_ramp_steps:
            return 1.0 - (step - self.hard_dc_steps) / self.hard_dc_ramp_steps
        return 0.0


ReconExperiment = make_experiment("ReconExperiment", {
    "model": ReconModelSection, "data": ReconDataSection, "loss": ReconLossSection, "recipe": ReconRecipeSection,
    "ablation": AblationSection,
})


def load_recon_config(files: str | os.PathLike | Sequence[str | os.PathLike],
                      overrides: Sequence[str] = ()) -> Any:
    """A validated ``ReconExperiment`` from YAML ``files`` and ``"section.key=value"`` overrides."""
    return load_config(ReconExperiment, files, overrides)
