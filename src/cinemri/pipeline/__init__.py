"""The end-to-end chain: k-space or images -> cine -> labels -> clinical indices -> report.

:mod:`~cinemri.analysis.reconstruct` forms the images, :mod:`~cinemri.analysis.pipeline`
runs ``cinemri analyze``, :mod:`~cinemri.analysis.weights` finds and exports the bundled
checkpoints.
"""

from cinemri.analysis.pipeline import SCHEMA, AnalyzeOptions, analyze, clinical_summary, compare_with_truth
from cinemri.analysis.reconstruct import METHODS, Reconstruction, reconstruct_case
from cinemri.analysis.weights import bundled_path, export_weights, resolve_checkpoint

__all__ = [
    "METHODS", "SCHEMA", "AnalyzeOptions", "Reconstruction", "analyze", "bundled_path", "clinical_summary",
    "compare_with_truth", "export_weights", "reconstruct_case", "resolve_checkpoint",
]
