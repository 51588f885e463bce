"""Bundled weights: small checkpoints that ship with the package, so that ``cinemri analyze``
works offline without training first.

They live in ``cinemri/weights/`` (package data): the reconstruction cascade trained on real
Sunnybrook cine plus phantom k-space (``make weights SUNNYBROOK=...``:
configs/recon/cascade_cs_gated.yaml, then cascade_cs_spatial.yaml, cascade_start50.yaml and
cascade_start50_long.yaml),
the default segmenter trained on real ACDC cine plus phantom images (``make weights-seg ACDC=...``,
configs/seg/default.yaml), and that segmenter fine-tuned to also read 5x reconstructions
(``make weights-seg-recon ACDC=...``, configs/seg/recon_aware.yaml), which ``analyze`` uses for
images it reconstructs from undersampled k-space. All exported by :func:`export_weights` in fp16
(half the size, the same images and labels within bf16/fp16 rounding).
An exported file is an ordinary cinemri checkpoint without the optimizer state: it loads
with ``torch.load(weights_only=True)`` everywhere a checkpoint is read, and can start a
fine-tuning run (``train.init_from``), but not resume one.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Sequence

from cinemri.data.seg import context_offsets
from cinemri.seg.config import SegEvalSection, experiment_from_dict
from cinemri.seg.models import ENSEMBLE, segmenter_arguments
from cinemri.train.checkpoint import WEIGHT_FREE_ARGS, load_checkpoint, save_checkpoint
from cinemri.train.config import apply_override

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
BUNDLED = {"recon": "recon_default.pt", "seg": "seg_default.pt", "seg_recon": "seg_recon.pt"}
MAKE_TARGET = {"recon": "make weights SUNNYBROOK=...", "seg": "make weights-seg ACDC=...",
               "seg_recon": "make weights-seg-recon ACDC=..."}


def bundled_path(kind: str) -> Path:
    """Path of the bundled ``kind`` ("recon", "seg" or "seg_recon") checkpoint (it may not exist yet)."""
    if kind not in BUNDLED:
        raise ValueError(f"kind must be one of {sorted(BUNDLED)}, got {kind!r}")
    return WEIGHTS_DIR / BUNDLED[kind]


def resolve_checkpoint(path: str | os.PathLike | None, kind: str) -> Path:
    """``path`` when given, else the bundled ``kind`` checkpoint.

    Raises:
        ValueError: no path given and no bundled weights installed (says how to make them).
    """
    if path is not None:
        return Path(path)
    bundled = bundled_path(kind)
    if not bundled.is_file():
        option = "recon" if kind == "recon" else "seg"
        raise ValueError(f"no bundled {kind} weights at {bundled}; run `{MAKE_TARGET[kind]}` "
                         f"or pass --{option}-checkpoint")
    return bundled


def resolve_segmenter(path: str | os.PathLike | None, reconstructed: bool) -> Path:
    """The segmenter to run: ``path`` when given; else, for images reconstructed from
    undersampled k-space (``reconstructed``), the bundled segmenter fine-tuned on such
    reconstructions when it is installed, otherwise the default one.

    Why two: the default, trained on fully sampled images, reads the residual blur and the
    flatter contrast of 5x reconstructions as larger or vanishing end-systolic cavities (21 ACDC
    patients, 1 coil: LV EF from the bundled cascade's images 6.8 points MAE, median 4.6, from the
    fully sampled EF; 3.5, median 2.8, with the fine-tuned one); the fine-tuned one is 0.007 mean
    Dice below the default on fully sampled images (docs/benchmarks.md).

    Raises:
        ValueError: no path given and no bundled default segmenter installed.
    """
    if path is None and reconstructed and bundled_path("seg_recon").is_file():
        return bundled_path("seg_recon")
    return resolve_checkpoint(path, "seg")


def _is_segmentation(config: dict) -> bool:
    try:
        experiment_from_dict(config)
    except ValueError:
        return False
    return True


def _with_eval_overrides(config: dict, overrides: Sequence[str]) -> dict:
    """A copy of ``config`` with ``eval.key=value`` overrides applied (checked)."""
    config = copy.deepcopy(config)
    known = set(config.get("eval", {}))
    seg = _is_segmentation(config)
    if seg:  # a segmentation checkpoint also takes test-time options added after it was trained
        known |= {f.name for f in dataclasses.fields(SegEvalSection)}
    for override in overrides:
        section, _, name = override.partition("=")[0].strip().partition(".")
        if section != "eval" or name not in known:
            raise ValueError(f"export override {override!r}: only eval keys {sorted(known)} can be set")
        apply_override(config, override, {})
    if seg:
        experiment_from_dict(config)  # ValueError for a value of the wrong type
    return config


def _slim(state: dict, config: dict, model: dict, half: bool) -> dict:
    """``state`` without optimizer, scheduler, scaler, RNG and task state, with ``config`` and
    the ``model`` weights (fp16 when ``half``)."""
    slim = dict(state, config=config, optimizer={}, scheduler={}, scaler={}, rng=[], task=None)
    slim["model"] = {k: v.half() if half and v.is_floating_point() else v for k, v in model.items()}
    return slim


def export_weights(checkpoint: str | os.PathLike, out_path: str | os.PathLike, *, half: bool = False,
                   overrides: Sequence[str] = ()) -> Path:
    """Copy a training checkpoint without its optimizer, scheduler, scaler, RNG and task state.

    The model weights, its arguments, the experiment config, epoch and final metrics are kept;
    ``half`` stores floating-point weights as fp16 (loading casts them back to the model's
    fp32 parameters); ``overrides``: "eval.key=value" sets the test-time defaults the
    checkpoint carries (e.g. ``eval.flip_tta=true``), for keys its config already has, and
    "model.key=value" the model arguments that are not weights (``WEIGHT_FREE_ARGS``: e.g. a
    reconstruction cascade's ``model.init_iters``), in its arguments and its config alike.
    Written atomically; returns ``out_path``.

    Raises:
        ValueError: unreadable checkpoint, an override outside ``eval`` and the weight-free
            model arguments, or naming an unknown key.
    """
    state = load_checkpoint(checkpoint)
    model_sets = [o for o in overrides if o.split("=", 1)[0].strip().startswith("model.")]
    config = _with_eval_overrides(state.get("config") or {}, [o for o in overrides if o not in model_sets])
    state = _with_model_overrides(state, config, model_sets)
    save_checkpoint(out_path, _slim(state, config, state["model"], half))
    return Path(out_path)


def _with_model_overrides(state: dict, config: dict, overrides: Sequence[str]) -> dict:
    """``state`` with "model.key=value" overrides of weight-free model arguments applied to its
    ``model_args`` and to ``config["model"]`` (changed in place), for keys the config's model
    section has."""
    if not overrides:
        return state
    section = config.get("model") or {}
    args = dict(state.get("model_args") or {})
    for override in overrides:
        name = override.split("=", 1)[0].strip().partition(".")[2]
        if name not in WEIGHT_FREE_ARGS or name not in section:
            known = sorted(WEIGHT_FREE_ARGS & set(section))
            raise ValueError(f"export override {override!r}: of the model, only the arguments that are not "
                             f"weights can be set ({known})")
        apply_override(config, override, {})
        args[name] = config["model"][name]  # the parsed value, the same in both places
    return dict(state, model_args=args)


def ensemble_weights(checkpoints: Sequence[str | os.PathLike], out_path: str | os.PathLike, *,
                     half: bool = False, eval_overrides: Sequence[str] = ()) -> Path:
    """One segmentation checkpoint holding the ensemble of ``checkpoints``
    (:class:`cinemri.seg.models.SegEnsemble`: the mean of their class probabilities).

    The members must be segmenters trained on the same preprocessing (spacing, crop size,
    normalisation) with the same classes; they may see different context (2D and 2.5D members):
    the ensemble takes the largest context of each kind and gives each member its own channels.
    The ensemble carries the first member's experiment config (its ``eval`` test-time defaults,
    changed by ``eval_overrides``; the context of the ensemble's input) with the model section
    ``{name: ensemble, args: {members: [{name, args[, channels]}, ...]}}``. ``half``: fp16 weights.
    Written atomically; returns ``out_path``.

    Raises:
        ValueError: fewer than two checkpoints, an unreadable or non-segmentation checkpoint, an
            ensemble among them, or members that differ in preprocessing or classes.
    """
    if len(checkpoints) < 2:
        raise ValueError(f"an ensemble needs at least two checkpoints, got {len(checkpoints)}")
    states = [load_checkpoint(path) for path in checkpoints]
    contexts = [_context(state.get("config") or {}) for state in states]
    union = tuple(max(c[i] for c in contexts) for i in range(3))  # (slices, frames, reference_frame)
    union_offsets = context_offsets(*union)
    members, weights = [], {}
    first = states[0].get("config") or {}
    expected_preprocess, expected_classes = _inference_preprocess(first), _num_classes(states[0])
    for i, (path, state) in enumerate(zip(checkpoints, states)):
        config = state.get("config") or {}
        if not _is_segmentation(config):
            raise ValueError(f"checkpoint {path}: not a segmentation checkpoint; only segmenters form an ensemble")
        if state["model_name"] == ENSEMBLE:
            raise ValueError(f"checkpoint {path} is already an ensemble; list its members instead")
        preprocess = _inference_preprocess(config)
        if preprocess != expected_preprocess:
            raise ValueError(f"checkpoint {path}: data.preprocess {preprocess!r} differs from {checkpoints[0]}'s "
                             f"{expected_preprocess!r}; ensemble members must be trained on the same preprocessing")
        classes = _num_classes(state)
        if classes != expected_classes:
            raise ValueError(f"checkpoint {path}: {classes} classes, {checkpoints[0]} has {expected_classes}")
        member = {"name": state["model_name"], "args": dict(state["model_args"])}
        if contexts[i] != union:  # a subset of the ensemble's input channels
            member["channels"] = [union_offsets.index(o) for o in context_offsets(*contexts[i])]
        members.append(member)
        weights.update({f"members.{i}.{k}": v for k, v in state["model"].items()})
    config = copy.deepcopy(first)
    config["model"] = {"name": ENSEMBLE, "args": {"members": members}}
    config.setdefault("data", {}).setdefault("preprocess", {}).update(
        context_slices=union[0], context_frames=union[1], reference_frame=bool(union[2]))
    config = _with_eval_overrides(config, eval_overrides)
    state = dict(states[0], model_name=ENSEMBLE, model_args={"members": members}, metrics={},
                 best_metric=None, best_epoch=None)
    save_checkpoint(out_path, _slim(state, config, weights, half))
    return Path(out_path)


# what shapes a network's input at inference (SliceGrid): members must agree on these
_INFERENCE_PREPROCESS = ("spacing_mm", "size", "normalization", "percentiles")


def _context(config: dict) -> tuple[int, int, int]:
    """(context_slices, context_frames, reference_frame as 0/1) of a segmentation experiment
    config (0 when absent): the arguments of :func:`context_offsets`."""
    preprocess = (config.get("data") or {}).get("preprocess") or {}
    return (int(preprocess.get("context_slices", 0)), int(preprocess.get("context_frames", 0)),
            int(bool(preprocess.get("reference_frame", False))))


def _inference_preprocess(config: dict) -> dict:
    preprocess = (config.get("data") or {}).get("preprocess") or {}
    return {key: preprocess.get(key) for key in _INFERENCE_PREPROCESS}


def _num_classes(state: dict) -> int | None:
    """The number of output classes of a segmenter checkpoint (its args, else the model's default)."""
    args = dict(state["model_args"])
    return args["num_classes"] if "num_classes" in args else segmenter_arguments(state["model_name"]).get("num_classes")
