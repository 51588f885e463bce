"""What a run shows and records: a tqdm progress bar and per-epoch metrics (CSV, TensorBoard)."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from tqdm import tqdm

from cinemri.files import atomic_write_text


def progress_bar(iterable: Iterable, total: int, desc: str, enabled: bool) -> tqdm:
    """A tqdm bar (it/s is tqdm's own rate) shown only when ``enabled`` and stderr is a TTY."""
    show = enabled and sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=not show, dynamic_ncols=True, leave=False)


class MetricsLog:
    """Per-epoch metrics appended to a CSV file (and TensorBoard scalars when importable).

    Rows are dicts name -> number; a row with new columns rewrites the file with the wider
    header (earlier rows get empty cells). ``truncate_after(epoch)`` drops rows of epochs a
    resumed run is about to repeat.
    """

    def __init__(self, path: str | Path, tensorboard: bool) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        if self.path.is_file():
            with self.path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self.columns = list(reader.fieldnames or [])
                self.rows = [{k: _number(v) for k, v in row.items() if v not in ("", None)} for row in reader]
        self._writer = _tensorboard_writer(self.path.parent) if tensorboard else None

    def truncate_after(self, epoch: int) -> None:
        """Forget rows with ``epoch`` greater than ``epoch`` and rewrite the file."""
        kept = [row for row in self.rows if int(row.get("epoch", 0)) <= epoch]
        if len(kept) != len(self.rows) or not self.path.is_file():
            self.rows = kept
            self._rewrite()

    def append(self, row: Mapping[str, float]) -> None:
        """Record one epoch; ``row`` must hold ``epoch`` and ``step``."""
        row = dict(row)
        self.rows.append(row)
        new = [key for key in row if key not in self.columns]
        if new or not self.path.is_file():
            self.columns += new
            self._rewrite()
        else:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.columns).writerow(row)
        if self._writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    self._writer.add_scalar(key, value, global_step=int(row["step"]))
            self._writer.flush()

    def _rewrite(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _number(text: str) -> float | int | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _tensorboard_writer(log_dir: Path) -> Any:
    """A ``SummaryWriter`` in ``log_dir/tb`` or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(log_dir / "tb"))


def format_metrics(metrics: Mapping[str, float]) -> str:
    """``"loss=0.0123 psnr=31.20"``, for one line of log text."""
    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}" if math.isfinite(value) else f"{key}={value}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)
