"""Image-quality and segmentation metrics, and a per-case accumulator.

Image metrics (torch in, float out) are on magnitudes with the case's data range; see
:mod:`cinemri.metrics.image`. Segmentation metrics (NumPy in) and their empty-mask rules are
in :mod:`cinemri.metrics.segmentation`.
"""

from cinemri.metrics.aggregate import MetricSummary, MetricTable, summarize
from cinemri.metrics.image import (cmrxrecon_scores, nmse, nmse_batch, psnr, psnr_batch, ssim, ssim_batch,
                                   worst_frame_psnr_batch)
from cinemri.metrics.segmentation import (
    dice,
    hausdorff,
    hd95,
    segmentation_scores,
    surface_distances,
)

__all__ = [
    "MetricSummary",
    "MetricTable",
    "cmrxrecon_scores",
    "dice",
    "hausdorff",
    "hd95",
    "nmse",
    "nmse_batch",
    "psnr",
    "psnr_batch",
    "segmentation_scores",
    "ssim",
    "ssim_batch",
    "summarize",
    "surface_distances",
    "worst_frame_psnr_batch",
]
