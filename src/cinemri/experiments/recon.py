"""Reconstruction experiments: config sections, the training task, checkpoint loading, ``train``.

A reconstruction experiment is one YAML config (``configs/recon/*.yaml``) with sections

- ``train``: :class:`cinemri.train.TrainConfig` (the engine);
- ``model``: :class:`ReconModelSection` (the cascade, see :func:`cinemri.recon.build_reconstructor`);
- ``data``: :class:`ReconDataSection` (cases, split, undersampling, quick-run limits);
- ``loss``: :class:`ReconLossSection` (``l1``, ``l2``, ``ssim`` or sums like ``l1+ssim``);
- ``ablation``: :class:`AblationSection` (only read by ``cinemri recon ablate``).

Evaluation and prediction live in :mod:`cinemri.experiments.recon_eval`, the ablation in
:mod:`cinemri.experiments.recon_ablate`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from cinemri.data import ReconBatch, ReconDataset, ReconOptions, collate_recon
from cinemri.metrics import nmse_batch, psnr_batch, ssim_batch
from cinemri.recon import build_reconstructor
from cinemri.recon.losses import parse_loss, recon_loss
from cinemri.train import FitResult, build, fit, load_checkpoint, load_config, load_model_state, make_experiment

MODEL_NAME = "recon_cascade"


@dataclass
class ReconModelSection:
    """The unrolled cascade (arguments of :func:`cinemri.recon.build_reconstructor`).

    denoiser: "unet3d", "resnet3d", "crnn" or "unet2d1d"; denoiser_options: its keyword
    arguments (e.g. ``{base_channels: 16, depth: 2, cbam: true}``).
    """

    denoiser: str = "unet3d"
    denoiser_options: dict[str, Any] = field(default_factory=dict)
    num_stages: int = 3
    shared_weights: bool = False
    dc_mode: Literal["soft", "hard"] = "soft"
    init_lambda: float = 1.0
    checkpoint_stages: bool = False

    def __post_init__(self) -> None:
        if self.num_stages < 1:
            raise ValueError(f"model.num_stages must be >= 1, got {self.num_stages}")

    def model_args(self) -> dict[str, Any]:
        """Plain keyword arguments of :func:`build_reconstructor` (what checkpoints store)."""
        return {"denoiser": self.denoiser, "denoiser_options": dict(self.denoiser_options),
                "num_stages": self.num_stages, "shared_weights": self.shared_weights, "dc_mode": self.dc_mode,
                "init_lambda": self.init_lambda, "checkpoint_stages": self.checkpoint_stages}


@dataclass
class ReconDataSection:
    """Where the cases come from and how they are undersampled.

    root: folder of case files (``<name>.h5``) and ``split_file`` (``{split: [names]}``, as
    ``cinemri phantom`` writes it). Training masks change every epoch (``train_mask_mode``);
    validation and test masks are fixed per case and slice. ``max_*`` limit the data for
    quick runs: the first cases of each split (in split order) and the central slices of
    each case. ``crop``: (H, W) centre crop of the coil images, e.g. [256, 246] for CMRxRecon.
    """

    root: str = "data/phantom"
    split_file: str = "split.json"
    train_split: str = "train"
    val_split: str = "val"
    acceleration: float = 5.0
    pattern: str = "vd_random"
    center_lines: int = 8
    single_coil: bool = False
    crop: tuple[int, int] | None = None
    train_mask_mode: Literal["per_epoch", "fixed"] = "per_epoch"
    seed: int = 0
    max_train_cases: int | None = None
    max_val_cases: int | None = None
    max_slices_per_case: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_train_cases", "max_val_cases", "max_slices_per_case"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"data.{name} must be >= 1 or null, got {value}")
        ReconOptions(acceleration=self.acceleration, pattern=self.pattern, crop=self.crop)  # validates

    def options(self, mask_mode: str = "fixed", acceleration: float | None = None) -> ReconOptions:
        """The dataset options of this section (``acceleration`` overrides the section's)."""
        return ReconOptions(acceleration=self.acceleration if acceleration is None else acceleration,
                            pattern=self.pattern, center_lines=self.center_lines, mask_mode=mask_mode,
                            seed=self.seed, single_coil=self.single_coil, crop=self.crop)


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
    cs_iters: int = 50


ReconExperiment = make_experiment("ReconExperiment", {
    "model": ReconModelSection, "data": ReconDataSection, "loss": ReconLossSection, "ablation": AblationSection,
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
        data = config.data
        if train_dataset is None:
            files = split_cases(data.root, data.train_split, data.split_file, data.max_train_cases)
            train_dataset = make_dataset(files, data.options(data.train_mask_mode), data.max_slices_per_case)
        if val_dataset is None and data.val_split:
            files = split_cases(data.root, data.val_split, data.split_file, data.max_val_cases)
            val_dataset = make_dataset(files, data.options("fixed"), data.max_slices_per_case)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset

    def build_model(self) -> nn.Module:
        return build_reconstructor(**self.model_args)

    def collate(self, samples: list) -> ReconBatch:
        return collate_recon(samples)

    def loss(self, batch: ReconBatch, model: nn.Module) -> tuple[Tensor, dict[str, Tensor]]:
        pred = model(batch.kspace, batch.mask, batch.maps)  # (B, T, H, W) complex64
        return recon_loss(pred, batch.target, self.terms)

    def validate(self, batch: ReconBatch, model: nn.Module) -> dict[str, Tensor]:
        pred = model(batch.kspace, batch.mask, batch.maps)  # (B, T, H, W) complex64
        losses = torch.stack([recon_loss(pred[i:i + 1], batch.target[i:i + 1], self.terms)[0]
                              for i in range(pred.shape[0])])  # (B,)
        return {"loss": losses, "psnr": psnr_batch(pred, batch.target), "ssim": ssim_batch(pred, batch.target),
                "nmse": nmse_batch(pred, batch.target)}


def train(files: Sequence[str | os.PathLike], overrides: Sequence[str] = (), resume: str | os.PathLike | None = None,
          stop_after_epoch: int | None = None) -> FitResult:
    """Train the reconstruction model the config ``files`` + ``overrides`` describe.

    Writes ``train.out_dir``: config.yaml, metrics.csv, last.pt, best.pt.
    Raises ValueError on a bad config, missing data or a checkpoint that does not fit.
    """
    config = load_recon_config(files, overrides)
    return fit(ReconTask(config), config, resume=resume, stop_after_epoch=stop_after_epoch)


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

