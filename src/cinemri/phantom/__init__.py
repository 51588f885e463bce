"""Digital cardiac cine phantom: the project's embedded default data.

A short-axis cine stack (base to apex, one R-R interval) with RV/MYO/LV labels in every
frame, receive coil maps, k-space noise level and exact ground-truth clinical indices.
"""

from .dataset import case_seeds, split_names, write_dataset
from .generate import generate, generate_case, simulate_kspace
from .options import GROUPS, PhantomOptions

__all__ = ["GROUPS", "PhantomOptions", "case_seeds", "generate", "generate_case", "simulate_kspace",
           "split_names", "write_dataset"]
