"""Segmenter registry: a plain dict from name to model class, and a checked builder."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from torch import nn

from cinemri.seg.models.ensemble import SegEnsemble
from cinemri.seg.models.mednext import MedNeXt2D
from cinemri.seg.models.mmnet import MMNet
from cinemri.seg.models.unet import UNet2D

SEGMENTERS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet2D,
    "mednext": MedNeXt2D,
    "mmnet": MMNet,
}
# Not a trainable architecture, so not in SEGMENTERS: the name under which checkpoints made by
# cinemri.pipeline.weights.ensemble_weights store a SegEnsemble of SEGMENTERS members.
ENSEMBLE = "ensemble"


def build_ensemble(members: list[dict[str, Any]]) -> SegEnsemble:
    """An ensemble of the segmenters ``[{"name": ..., "args": {...}, "channels": [...]}, ...]``
    (no nested ensembles; ``channels``, optional: the ensemble input's channels the member
    takes), built untrained; its weights come from a checkpoint."""
    if not isinstance(members, list) or not members:
        raise ValueError(f"ensemble members must be a non-empty list of {{name, args}}, got {members!r}")
    built, channels = [], []
    for i, member in enumerate(members):
        if not isinstance(member, dict) or set(member) - {"name", "args", "channels"} or "name" not in member:
            raise ValueError(f"ensemble member {i} must be {{name, args[, channels]}}, got {member!r}")
        if member["name"] == ENSEMBLE:
            raise ValueError(f"ensemble member {i} is itself an ensemble")
        built.append(build_segmenter(member["name"], member.get("args") or {}))
        channels.append(member.get("channels"))
    return SegEnsemble(built, channels)


def segmenter_arguments(name: str) -> dict[str, Any]:
    """The keyword arguments of segmenter ``name`` with their defaults (its signature)."""
    builder = _lookup(name)
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()}


def build_segmenter(name: str, args: Mapping[str, Any] | None = None) -> nn.Module:
    """Build segmenter ``name`` ("unet", "mednext", "mmnet", or "ensemble" of those) with
    keyword arguments ``args``.

    ``args`` holds plain values (as read from YAML, e.g. ``{"num_classes": 4, "norm":
    "batch"}``); arguments left out take the model's own defaults, which live only in its
    signature. The model maps (B, in_channels, H, W) float32 -> (B, num_classes, H, W) logits.

    Raises:
        ValueError: for an unknown ``name``, or a key of ``args`` the model does not take
            (named, with the accepted ones); the model's own checks raise for bad values.
    """
    builder = _lookup(name)
    args = dict(args or {})
    known = segmenter_arguments(name)
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ValueError(f"segmenter {name!r} takes no argument(s) {unknown}; it takes {sorted(known)}")
    return builder(**args)


def _lookup(name: str) -> Callable[..., nn.Module]:
    if name == ENSEMBLE:
        return build_ensemble
    if name not in SEGMENTERS:
        raise ValueError(f"name must be one of {sorted(SEGMENTERS)}, got {name!r}")
    return SEGMENTERS[name]
