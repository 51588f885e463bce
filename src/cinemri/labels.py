"""Segmentation labels, declared once: ACDC's values, their names, and the M&Ms remapping.

Every label map in cinemri follows ACDC: 0 background, 1 RV cavity, 2 LV myocardium,
3 LV cavity. Papillary muscles and trabeculations inside the LV belong to the LV cavity,
as in ACDC's ground truth. Other datasets are remapped on load (M&Ms: 1 LV, 2 MYO, 3 RV).
"""

from __future__ import annotations

from types import MappingProxyType

BACKGROUND, RV, MYO, LV = 0, 1, 2, 3
NUM_CLASSES = 4  # K: background and the three structures
LABEL_VALUES: tuple[int, ...] = (BACKGROUND, RV, MYO, LV)  # every valid value; also the identity remap

# short name of each class, indexed by label value (keys of results.json, metric names)
CLASS_NAMES: tuple[str, ...] = ("bg", "rv", "myo", "lv")
# short name -> label value of the three structures, in label order
STRUCTURES = MappingProxyType({name: value for value, name in enumerate(CLASS_NAMES) if value != BACKGROUND})
# label value -> what a reader calls it (tables, reports)
DESCRIPTIONS = MappingProxyType({RV: "RV cavity", MYO: "LV myocardium", LV: "LV cavity"})

# M&Ms (1 LV, 2 MYO, 3 RV) file value -> ACDC label; the map is its own inverse
MNMS_TO_ACDC: tuple[int, ...] = (BACKGROUND, LV, MYO, RV)
