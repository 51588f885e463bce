"""Segmenter registry: a plain dict from name to model class, and a checked builder."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from torch import nn

from cinemri.seg.models.mednext import MedNeXt2D
from cinemri.seg.models.mmnet import MMNet
from cinemri.seg.models.unet import UNet2D

SEGMENTERS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet2D,
    "mednext": MedNeXt2D,
    "mmnet": MMNet,
}


def segmenter_arguments(name: str) -> dict[str, Any]:
    """The keyword arguments of segmenter ``name`` with their defaults (its signature)."""
    builder = _lookup(name)
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()}


def build_segmenter(name: str, args: Mapping[str, Any] | None = None) -> nn.Module:
    """Build segmenter ``name`` ("unet", "mednext", "mmnet") with keyword arguments ``args``.

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
    if name not in SEGMENTERS:
        raise ValueError(f"name must be one of {sorted(SEGMENTERS)}, got {name!r}")
    return SEGMENTERS[name]
