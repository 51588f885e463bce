"""Segmentation networks: image (B, C, H, W) float32 -> logits (B, K, H, W), K = 4 by default
(0 background, 1 RV, 2 MYO, 3 LV); C = 1, or more with context (neighbouring slices or frames).

- :class:`UNet2D` — nnU-Net-style 2D U-Net.
- :class:`MedNeXt2D` — 2D MedNeXt (Roy et al., MICCAI 2023) with :func:`upkern`.
- :class:`MMNet` — multi-scale multi-skip connection network (Applied Intelligence 2021/22).
- :class:`SegEnsemble` — the mean probabilities of trained members (name "ensemble").
- :data:`SEGMENTERS` / :func:`build_segmenter` — name -> model.
"""

from cinemri.seg.models.ensemble import SegEnsemble
from cinemri.seg.models.mednext import MedNeXt2D, upkern
from cinemri.seg.models.mmnet import MMNet
from cinemri.seg.models.registry import ENSEMBLE, SEGMENTERS, build_segmenter, segmenter_arguments
from cinemri.seg.models.unet import UNet2D

__all__ = ["ENSEMBLE", "MMNet", "MedNeXt2D", "SEGMENTERS", "SegEnsemble", "UNet2D", "build_segmenter",
           "segmenter_arguments", "upkern"]
