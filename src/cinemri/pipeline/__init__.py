"""The end-to-end chain, files in and files out: k-space or images -> cine -> labels -> clinical
indices -> report.

:mod:`~cinemri.pipeline.reconstruct` forms the images, :mod:`~cinemri.pipeline.analysis` runs
``cinemri analyze``, :mod:`~cinemri.pipeline.study` the acceleration study,
:mod:`~cinemri.pipeline.predict` ``recon predict`` and ``seg predict``, and
:mod:`~cinemri.pipeline.weights` finds and exports the bundled checkpoints. Models are loaded
and run only through :mod:`cinemri.recon.inference` and :mod:`cinemri.seg.inference`; this
package never imports :mod:`cinemri.tasks` (training, evaluation, ablation).
"""

from cinemri.pipeline.analysis import SCHEMA, AnalyzeOptions, analyze, clinical_summary, compare_with_truth
from cinemri.pipeline.reconstruct import METHODS, Reconstruction, image_source, reconstruct_case
from cinemri.pipeline.weights import (bundled_path, ensemble_weights, export_weights, resolve_checkpoint,
                                      resolve_segmenter)

__all__ = [
    "METHODS", "SCHEMA", "AnalyzeOptions", "Reconstruction", "analyze", "bundled_path", "clinical_summary",
    "compare_with_truth", "ensemble_weights", "export_weights", "image_source", "reconstruct_case", "resolve_checkpoint",
    "resolve_segmenter",
]
