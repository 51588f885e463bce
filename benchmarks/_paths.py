"""Where the benchmarks find the real data by default: the shared data folder beside the
checkout (``../shared/data``, its README lists the sets). Every script also takes ``--data``."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ACDC_ROOT = SHARED_DATA / "acdc"  # holds training/<patient>
ACDC_TRAINING = ACDC_ROOT / "training"
PATIENT090 = ACDC_TRAINING / "patient090"  # the real-anatomy test no model trains on
