"""Anatomical post-processing on small label maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cinemri.seg.postprocess import heart_postprocess, postprocess_frames

RV, MYO, LV = 1, 2, 3


def heart(slices: int = 3, size: int = 41) -> np.ndarray:
    """(S, H, W): an LV disc ringed by myocardium and an RV crescent touching the ring."""
    y, x = np.mgrid[:size, :size]
    r = np.hypot(y - 20, x - 22)
    r_rv = np.hypot(y - 20, x - 9)
    plane = np.zeros((size, size), np.uint8)
    plane[(r_rv < 8) & (r >= 9)] = RV
    plane[(r >= 5) & (r < 9)] = MYO
    plane[r < 5] = LV
    return np.repeat(plane[None], slices, axis=0)


def test_a_clean_heart_is_unchanged():
    labels = heart()
    assert np.array_equal(heart_postprocess(labels), labels)


def test_stray_lv_and_myo_far_from_the_heart_are_dropped():
    labels = heart()
    labels[1, 35:39, 35:39] = LV  # a second, smaller LV blob (stomach, say)
    labels[1, 2:5, 35:39] = MYO  # myocardium touching no LV
    out = heart_postprocess(labels)
    assert np.array_equal(out, heart())


def test_every_rv_blob_touching_the_myocardium_is_kept_the_far_one_dropped():
    labels = heart()
    labels[labels == RV] = 0
    labels[0, 8:20, 12:14] = RV  # blob 1 touching the ring (ring starts at x = 13 on row 20)
    labels[2, 20:32, 12:14] = RV  # blob 2 on another slice, also touching
    labels[:, 0:6, 0:9] = RV  # a larger blob far away: largest-component alone would keep it
    out = heart_postprocess(labels)
    assert (out[0, 8:20, 12:14] == RV).sum() > 0 and (out[2, 20:32, 12:14] == RV).sum() > 0
    assert not (out[:, 0:6, 0:9] == RV).any()


def test_no_rv_touching_keeps_the_largest():
    labels = heart()
    labels[labels == RV] = 0
    labels[0, 0:3, 0:3] = RV
    labels[0, 36:41, 0:6] = RV  # larger
    out = heart_postprocess(labels)
    assert (out == RV).sum() == 30 and (out[0, 36:41, 0:6] == RV).all()


def test_holes_in_the_lv_cavity_become_lv():
    labels = heart()
    labels[1, 19:22, 21:24] = MYO  # papillary muscle inside the cavity
    labels[2, 20, 22] = 0  # a background hole
    out = heart_postprocess(labels)
    assert np.array_equal(out, heart())


def test_frames_and_validation():
    cine = np.stack([heart(), heart()], axis=1)  # (S, T, H, W)
    cine[0, 1, 35:39, 35:39] = LV
    out = postprocess_frames(cine, frames=[0])
    assert np.array_equal(out[:, 0], heart()) and (out[0, 1, 35:39, 35:39] == LV).all()  # frame 1 untouched
    assert np.array_equal(postprocess_frames(cine)[:, 1], heart())
    with pytest.raises(ValueError, match="labels"):
        heart_postprocess(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="touch_px"):
        heart_postprocess(heart(), touch_px=0)
    assert not heart_postprocess(np.zeros((2, 5, 5), np.uint8)).any()
