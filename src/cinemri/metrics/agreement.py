"""Agreement of paired measurements (predicted vs true clinical indices): correlation, bias and
the spread of the differences, as Bland-Altman analyses report them."""

from __future__ import annotations

import math

import numpy as np


def agreement(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Agreement of paired values (n,): Pearson r, bias = mean(pred - true), sd of the
    differences (ddof 1), mean absolute difference, n. Non-finite pairs are left out."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    keep = np.isfinite(pred) & np.isfinite(true)
    pred, true = pred[keep], true[keep]
    diff = pred - true
    r = float(np.corrcoef(pred, true)[0, 1]) if pred.size >= 2 and pred.std() > 0 and true.std() > 0 else math.nan
    return {"n": int(pred.size), "pearson_r": r, "bias": float(diff.mean()) if diff.size else math.nan,
            "sd": float(diff.std(ddof=1)) if diff.size >= 2 else math.nan,
            "mae": float(np.abs(diff).mean()) if diff.size else math.nan}
