"""Reconstruction experiments: config sections, the training task, checkpoint loading, ``train``.

A reconstruction experiment is one YAML config (``configs/recon/*.yaml``) with sections

- ``train``: :class:`cinemri.train.TrainConfig` (the engine);
- ``model``: :class:`ReconModelSection` (the cascade, see :func:`cinemri.recon.build_reconstructor`);
- ``data``: :class:`ReconDataSection` (cases, split, undersampling, simulation of magnitude
  cine, augmentation, readout strips, quick-run limits);
- ``loss``: :class:`ReconLossSection` (``l1``, ``l2``, ``ssim`` or sums like ``l1+ssim``);
- ``recipe``: :class:`ReconRecipeSection` (training-time schedules such as hard DC early);
- ``ablation``: :class:`AblationSection` (only read by ``cinemri recon ablate``).

Evaluation and prediction live in :mod:`cinemri.experiments.recon_eval`, the ablation in
:mod:`cinemri.experiments.recon_ablate`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from cinemri.data import ReconBatch, ReconDataset, ReconOptions, collate_recon
from cinemri.data.simulate import AugmentOptions, SimulationOptions
from cinemri.io import detect_format
from cinemri.masks import MaskOptions
from cinemri.metrics import nmse_batch, psnr_batch, ssim_batch
from cinemri.recon import CSOptions, build_reconstructor
from cinemri.recon.losses import parse_loss, recon_loss
from cinemri.train import FitResult, build, fit, load_checkpoint, load_config, load_model_state, make_experiment

MODEL_NAME = "recon_cascade"


@dataclass
class ReconModelSection:
    """The unrolled cascade (arguments of :func:`cinemri.recon.build_reconstructor`).

    denoiser: "unet3d", "resnet3d", "crnn" or "unet2d1d"; denoiser_options: its keyword
    arguments (e.g. ``{base_channels: 16, depth: 2, cbam: true}``). shared_weights: one
    denoiser for every stage. init: the starting image, "zero_filled" or "view_sharing"
    (missing lines of each frame filled from the time-averaged k-space). channels_last: the
    denoisers run in ``torch.channels_last_3d`` memory format (faster on the CPU here).
    """

    denoiser: str = "unet3d"
    denoiser_options: dict[str, Any] = field(default_factory=dict)
    num_stages: int = 3
    shared_weights: bool = False
    dc_mode: Literal["soft", "hard"] = "soft"
    init_lambda: float = 1.0
    checkpoint_stages: bool = False
    init: Literal["zero_filled", "view_sharing"] = "zero_filled"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.num_stages < 1:
            raise ValueError(f"model.num_stages must be >= 1, got {self.num_stages}")

    def model_args(self) -> dict[str, Any]:
        """Plain keyword arguments of :func:`build_reconstructor` (what checkpoints store).

        ``init`` and ``channels_last`` are stored only when they are not the default, so
        checkpoints written before they existed still resume and fine-tune with the same
        arguments.
        """
        args = {"denoiser": self.denoiser, "denoiser_options": dict(self.denoiser_options),
                "num_stages": self.num_stages, "shared_weights": self.shared_weights, "dc_mode": self.dc_mode,
                "init_lambda": self.init_lambda, "checkpoint_stages": self.checkpoint_stages}
        if self.init != "zero_filled":
            args["init"] = self.init
        if self.channels_last:
            args["channels_last"] = True
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
    """Training loss: ``kind`` is terms of l1, l2, ssim joined by '+'; ``weights`` per term (default 1)."""

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
    ``train.epochs``, ``train.max_steps_per_epoch``, ``train.batch_size`` or ``data.*``
    are refused) and is evaluated on ``eval_split`` (at most ``max_eval_cases`` cases).
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


# ------------------------------------------------------------------------------- data


def split_cases(root: str | os.PathLike, split: str, split_file: str = "split.json",
                max_cases: int | None = None) -> list[Path]:
    """Case files of ``split`` listed in ``root/split_file`` (``root/<name>.h5`` each).

    Raises:
        ValueError: the split file is missing or malformed, the split is unknown or empty,
            or a listed case file does not exist.
    """
    root = Path(root)
    path = root / split_file
    if not path.is_file():
        raise ValueError(f"split file {path} does not exist (make one with `cinemri phantom` or by hand)")
    try:
        splits = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"split file {path} is not valid JSON ({err})") from err
    if not isinstance(splits, dict) or split not in splits:
        known = sorted(splits) if isinstance(splits, dict) else []
        raise ValueError(f"split file {path} has no split {split!r} (has: {known})")
    names = list(splits[split])[:max_cases]
    if not names:
        raise ValueError(f"split {split!r} of {path} is empty")
    files = [root / f"{name}.h5" for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"split {split!r} of {path} lists missing case files: {', '.join(missing[:3])}")
    return files


_CASE_SUFFIXES = (".nii.gz", ".nii", ".h5", ".hdf5", ".mat")


def case_name(path: str | os.PathLike) -> str:
    """The name of a case path for ``val_names`` / ``exclude_names``: the folder name, or
    the file name without its extension (``patient090_4d.nii.gz`` -> ``patient090_4d``)."""
    name = Path(path).name
    for suffix in _CASE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _matches(name: str, names: Sequence[str]) -> str | None:
    """The entry of ``names`` that ``name`` is or starts with (followed by ``_``), or None."""
    for entry in names:
        if name == entry or name.startswith(entry + "_"):
            return entry
    return None


def is_case_path(path: Path) -> bool:
    """True when :func:`cinemri.io.detect_format` recognises ``path`` as a case."""
    try:
        detect_format(path)
    except ValueError:
        return False
    return True


def source_cases(data: ReconDataSection) -> dict[str, list[Path]]:
    """``{"train": [...], "val": [...]}`` case paths of ``data.train`` (see :class:`ReconDataSection`).

    Raises:
        ValueError: a source that does not exist or holds no case, a ``val_names`` entry
            that matches no case, or no training case left.
    """
    out: dict[str, list[Path]] = {"train": [], "val": []}
    used: set[str] = set()
    for source in data.train:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"data.train: {path} does not exist")
        if path.is_dir() and (path / data.split_file).is_file():
            out["train"] += split_cases(path, data.train_split, data.split_file)
            if data.val_split:
                out["val"] += split_cases(path, data.val_split, data.split_file)
            continue
        if is_case_path(path):
            cases = [path]
        elif path.is_dir():
            cases = [child for child in sorted(path.iterdir()) if is_case_path(child)]
            if not cases:
                raise ValueError(f"data.train: folder {path} holds no case that cinemri.io reads")
        else:
            raise ValueError(f"data.train: {path} is not a case cinemri.io reads")
        for case in cases:
            name = case_name(case)
            if _matches(name, data.exclude_names) is not None:
                continue
            held = _matches(name, data.val_names)
            if held is not None:
                used.add(held)
            out["val" if held is not None else "train"].append(case)
    unused = [n for n in data.val_names if n not in used]
    if unused:
        raise ValueError(f"data.val_names: {unused} match no case of data.train {list(data.train)}")
    if not out["train"]:
        raise ValueError(f"data.train {list(data.train)}: no training case left after val_names/exclude_names")
    return out


class SliceSubset(Dataset):
    """The central ``max_slices`` slices of each case of a :class:`ReconDataset`.

    Slices [(S - k) // 2, (S - k) // 2 + k) of a case with S slices, k = min(S, max_slices):
    the ventricles, not the apex or the base. ``set_epoch`` is passed through.
    """

    def __init__(self, dataset: ReconDataset, max_slices: int) -> None:
        self.dataset = dataset
        slices: dict[int, list[int]] = {}
        for item, (case, s) in enumerate(dataset.index):
            slices.setdefault(case, []).append(item)
        self.items = []
        for items in slices.values():
            k = min(len(items), max_slices)
            start = (len(items) - k) // 2
            self.items += items[start:start + k]

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.items[index]]


def make_dataset(files: Sequence[str | os.PathLike], options: ReconOptions,
                 max_slices: int | None = None) -> Dataset:
    """A :class:`ReconDataset` of ``files``, limited to the central ``max_slices`` slices."""
    dataset = ReconDataset(list(files), options)
    return dataset if max_slices is None else SliceSubset(dataset, max_slices)


# ------------------------------------------------------------------------------- task


class ReconTask:
    """The reconstruction task for :func:`cinemri.train.fit` (see :class:`cinemri.train.Task`).

    loss: the configured terms on the complex image, in the dataset's normalised scale.
    validate: per-slice ``loss``, ``psnr``, ``ssim``, ``nmse`` on magnitudes with the data range
    of each slice (max |target| of that slice, all frames); :mod:`recon_eval` scores whole cases.
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
                "nmse": nmse_batch(pred, batch.target)}


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


# ------------------------------------------------------------------------- checkpoints


@dataclass
class LoadedReconstructor:
    """A model rebuilt from a checkpoint alone: ``model`` (eval mode, CPU), its ``config``
    (a ReconExperiment), ``epoch`` and the checkpoint ``path``."""

    model: nn.Module
    config: Any
    epoch: int
    path: Path


def load_reconstructor(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedReconstructor:
    """Rebuild the trained cascade from a checkpoint (``torch.load(weights_only=True)``).

    Raises:
        ValueError: the file is missing or not a cinemri checkpoint, holds another model, or
            its arguments, config or weights do not fit; the message names the file.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location="cpu")
    if state["model_name"] != MODEL_NAME:
        raise ValueError(f"checkpoint {path} holds model {state['model_name']!r}, not a {MODEL_NAME!r}")
    try:
        config = build(ReconExperiment, state["config"], source=f"checkpoint {path}")
        model = build_reconstructor(**state["model_args"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"checkpoint {path}: cannot rebuild the model ({str(err).splitlines()[0]})") from err
    load_model_state(model, state, path)
    model.to(device).eval()
    return LoadedReconstructor(model=model, config=config, epoch=int(state["epoch"]), path=path)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

