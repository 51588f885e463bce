"""The segmentation experiment: the sections of ``configs/seg/*.yaml`` that a checkpoint carries.

Every default lives here once; YAML only overrides, and an unknown key is an error (see
:func:`cinemri.train.load_config`). ``SegExperiment`` = ``train`` (the engine's
:class:`~cinemri.train.TrainConfig`) + ``model`` + ``loss`` + ``augment`` + ``data`` + ``eval``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from cinemri.data.seg import SegOptions
from cinemri.seg.augment import AugmentOptions
from cinemri.seg.models.registry import ENSEMBLE
from cinemri.seg.schedules import SCHEDULES
from cinemri.train import TrainConfig, build, load_config

LOSS_KINDS = ("ce", "dice", "combined")


@dataclass
class SegModelSection:
    """``name``: a key of :data:`cinemri.seg.models.SEGMENTERS`; ``args``: its keyword
    arguments (defaults are the model's own, e.g. ``{base_width: 32, deep_supervision: true}``)."""

    name: str = "unet"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class SegLossSection:
    """``kind``: "ce", "dice" or "combined" (w CE + (1 - w) Dice, w from ``schedule``, one of
    cinemri.seg.schedules.SCHEDULES, built with ``schedule_args``). ``class_weights``: CE
    weights per class (K values) or null. Dice: ``include_background``, ``batch_dice``,
    ``smooth`` (numerator and denominator). With deep supervision the output at scale 2^-i
    gets weight 2^-i (normalised to sum 1), labels down-sampled by nearest neighbour."""

    kind: Literal["ce", "dice", "combined"] = "combined"
    schedule: str = "constant"
    schedule_args: dict[str, Any] = field(default_factory=dict)
    class_weights: list[float] | None = None
    include_background: bool = False
    batch_dice: bool = True
    smooth: float = 1e-5

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"loss.schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")
        if not self.smooth > 0:
            raise ValueError(f"loss.smooth must be > 0, got {self.smooth!r}")


@dataclass
class SegAugmentSection:
    """``enabled``: augment training batches (validation never is); ``options``: see
    :class:`cinemri.seg.augment.AugmentOptions`; ``seed``: base seed of the per-rank generator
    (rank r draws from seed + 1000 r). ``crop``: (h, w) training crop around the heart
    (centroid of the labels, shifted by up to ``crop_jitter`` of the crop size per axis;
    :func:`cinemri.seg.augment.heart_crop`), taken before augmentation, or null for the whole
    preprocessed image. Smaller crops make a step cheaper; inference always sees whole slices."""

    enabled: bool = True
    options: AugmentOptions = field(default_factory=AugmentOptions)
    seed: int = 0
    crop: tuple[int, int] | None = None
    crop_jitter: float = 0.15

    def __post_init__(self) -> None:
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 8):
            raise ValueError(f"augment.crop must be (h, w) of at least 8 pixels or null, got {self.crop!r}")
        if not 0.0 <= self.crop_jitter <= 0.5:
            raise ValueError(f"augment.crop_jitter must lie in [0, 0.5], got {self.crop_jitter!r}")


@dataclass(frozen=True)
class SegPreprocess(SegOptions):
    """:class:`cinemri.data.SegOptions` with the experiment's defaults: 1.5 mm in-plane and a
    160 x 160 centre crop (240 mm: every ACDC heart at ED fits; 18 of 100 do not fit 128 x 128)."""

    size: tuple[int, int] | None = (160, 160)
    spacing_mm: float | None = 1.5


@dataclass
class SegDataSection:
    """Where the images come from and how they are split and preprocessed.

    ``train``: sources — ACDC roots or patient folders, M&Ms cases, cinemri case ``.h5``
    files or folders of them (phantom cases, or ``cinemri recon predict`` outputs). A folder
    with a ``split.json`` (phantom datasets) contributes its "train" cases to training and
    its "val" cases to validation. The other cases are split by case (= by patient, never by
    slice), stratified by group (ACDC ``Info.cfg`` Group, phantom group), seeded by
    ``split_seed``: ``split: holdout`` keeps ``val_fraction`` for validation, ``split: kfold``
    uses fold ``fold`` of ``folds``. ``val``: extra validation-only sources.
    ``exclude_train``: case names never trained on (ACDC patient090 is the real-anatomy test
    case of the reconstruction benchmark); they go to validation instead.
    ``max_cases``: use only the first N cases of each split (smoke runs); null = all.
    ``preprocess``: resampling, normalisation and training crop (:class:`SegPreprocess`).
    Evaluation and prediction run on the whole resampled slice (no crop).
    """

    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    split: Literal["holdout", "kfold"] = "holdout"
    val_fraction: float = 0.2
    folds: int = 5
    fold: int = 0
    split_seed: int = 0
    exclude_train: list[str] = field(default_factory=lambda: ["patient090"])
    max_cases: int | None = None
    preprocess: SegPreprocess = field(default_factory=SegPreprocess)

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must lie in (0, 1), got {self.val_fraction!r}")
        if self.folds < 2 or not 0 <= self.fold < self.folds:
            raise ValueError(f"data.fold must lie in [0, data.folds) with folds >= 2, got fold={self.fold}, "
                             f"folds={self.folds}")
        if self.max_cases is not None and self.max_cases < 1:
            raise ValueError(f"data.max_cases must be >= 1 or null, got {self.max_cases!r}")


@dataclass
class SegEvalSection:
    """Test-time options of ``cinemri seg eval/predict`` and ``analyze``: ``flip_tta`` averages
    the softmax of the image and its H/W mirrors; ``postprocess`` applies the anatomical rules
    of :mod:`cinemri.seg.postprocess` (LV largest component, MYO touching the LV, RV touching
    the MYO, LV holes filled); ``largest_component`` (used only without ``postprocess``) keeps,
    per frame, the largest connected component (face connectivity in 3D over the slice stack)
    of each structure; ``crop_to_heart``: segment a window of the training size
    (``data.preprocess.size``) centred on the heart found by a first whole-field-of-view pass
    (else the whole field of view); ``scale_tta``: magnifications whose probabilities are
    averaged on the original grid (1.0: the training spacing ``data.preprocess.spacing_mm``;
    1.2: a 1.2x finer grid, spacing / 1.2, with a 1.2x larger window over the same anatomy);
    ``batch_size``: slices per forward pass."""

    flip_tta: bool = False
    largest_component: bool = False
    postprocess: bool = False
    crop_to_heart: bool = False
    scale_tta: tuple[float, ...] = (1.0,)
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"eval.batch_size must be >= 1, got {self.batch_size!r}")
        values = self.scale_tta if isinstance(self.scale_tta, (list, tuple)) else (self.scale_tta,)
        self.scale_tta = tuple(float(v) for v in values)
        if not self.scale_tta or not all(0.25 <= v <= 4.0 for v in self.scale_tta):
            raise ValueError(f"eval.scale_tta must be a non-empty list of magnifications in [0.25, 4], "
                             f"got {self.scale_tta!r}")


def seg_train_defaults() -> TrainConfig:
    """The engine settings of a segmentation run: monitor mean foreground Dice, maximised."""
    return TrainConfig(monitor="val_dice_mean", monitor_mode="max", out_dir="runs/seg")


@dataclass
class SegExperiment:
    """A whole segmentation experiment (what ``configs/seg/*.yaml`` describe)."""

    train: TrainConfig = field(default_factory=seg_train_defaults)
    model: SegModelSection = field(default_factory=SegModelSection)
    loss: SegLossSection = field(default_factory=SegLossSection)
    augment: SegAugmentSection = field(default_factory=SegAugmentSection)
    data: SegDataSection = field(default_factory=SegDataSection)
    eval: SegEvalSection = field(default_factory=SegEvalSection)

    def __post_init__(self) -> None:
        # a network with context sees more than one plane: its first convolution must take them all
        channels = self.data.preprocess.channels
        given = self.model.args.get("in_channels", 1)
        if self.model.name != ENSEMBLE and given != channels:
            raise ValueError(f"model.args.in_channels is {given} but data.preprocess gives {channels} input "
                             f"channel(s) (context_slices {self.data.preprocess.context_slices}, context_frames "
                             f"{self.data.preprocess.context_frames}, reference_frame "
                             f"{self.data.preprocess.reference_frame}); set model.args.in_channels: {channels}")


def load_seg_config(files: str | Sequence[str] = (), overrides: Sequence[str] = ()) -> SegExperiment:
    """:class:`SegExperiment` from YAML files and ``section.key=value`` overrides.

    Raises:
        ValueError: unknown key, wrong type or bad value, naming the key and the file.
    """
    return load_config(SegExperiment, files, overrides)


def experiment_from_dict(raw: dict) -> SegExperiment:
    """:class:`SegExperiment` from the plain dict stored in a checkpoint (``state["config"]``)."""
    return build(SegExperiment, raw, source="checkpoint config")
