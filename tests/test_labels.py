"""The label convention of cinemri.labels (ACDC's) and the M&Ms map."""

from __future__ import annotations

from cinemri import labels


def test_label_values_follow_acdc():
    assert (labels.BACKGROUND, labels.RV, labels.MYO, labels.LV) == (0, 1, 2, 3)
    assert dict(labels.STRUCTURES) == {"rv": 1, "myo": 2, "lv": 3}
    assert [labels.CLASS_NAMES[v] for v in labels.STRUCTURES.values()] == list(labels.STRUCTURES)
    assert len(labels.CLASS_NAMES) == len(labels.LABEL_VALUES) == labels.NUM_CLASSES
    assert set(labels.DESCRIPTIONS) == set(labels.STRUCTURES.values())  # every structure has a name for readers
    # M&Ms stores 1 LV, 2 MYO, 3 RV; the map is its own inverse
    mnms = {"lv": 1, "myo": 2, "rv": 3}
    assert all(labels.MNMS_TO_ACDC[mnms[name]] == value for name, value in labels.STRUCTURES.items())
    assert [labels.MNMS_TO_ACDC[v] for v in labels.MNMS_TO_ACDC] == [0, 1, 2, 3]
