"""Accumulator of per-case metric rows with an honest summary (inf and NaN counted, not dropped)."""

from __future__ import annotations

import csv
import io
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cinemri.files import atomic_write_text


@dataclass(frozen=True)
class MetricSummary:
    """Summary of one metric over the cases that report it.

    mean, std and median are over the finite values only; ``n_inf`` and ``n_nan`` say how
    many values were left out of them (e.g. HD95 of a missed structure is +inf).
    std is the sample standard deviation (ddof = 1), NaN with fewer than two finite values.
    """

    n: int
    n_finite: int
    n_inf: int
    n_nan: int
    mean: float
    std: float
    median: float


def summarize(values: np.ndarray) -> MetricSummary:
    """Summary of a 1D array of metric values (float64, may hold inf and NaN)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    nan = float("nan")
    return MetricSummary(
        n=int(values.size),
        n_finite=int(finite.size),
        n_inf=int(np.isinf(values).sum()),
        n_nan=int(np.isnan(values).sum()),
        mean=float(finite.mean()) if finite.size else nan,
        std=float(finite.std(ddof=1)) if finite.size >= 2 else nan,
        median=float(np.median(finite)) if finite.size else nan,
    )


class MetricTable:
    """Per-case metric rows plus a summary; a case may lack some metrics (left blank).

    >>> table = MetricTable()
    >>> table.add("patient001_ed", {"dice_lv": 0.95, "hd95_lv_mm": 3.2})
    >>> table.summary()["dice_lv"].mean
    0.95
    """

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, float]] = {}
        self._metrics: dict[str, None] = {}  # ordered set of metric names, first-seen order

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, case: str, metrics: Mapping[str, float]) -> None:
        """Record the metrics of one case (a new case name; values are real numbers).

        Raises:
            ValueError: empty or duplicate case name, a metric named "case", or a value that
                is not a real number.
        """
        if not isinstance(case, str) or not case:
            raise ValueError(f"case must be a non-empty string, got {case!r}")
        if case in self._rows:
            raise ValueError(f"case {case!r} was already added")
        row: dict[str, float] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name or name == "case":
                raise ValueError(f"metric names must be non-empty strings other than 'case', got {name!r}")
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"metric {name!r} of case {case!r} must be a real number, "
                                 f"got {type(value).__name__} {value!r}")
            row[name] = float(value)
        self._rows[case] = row
        for name in row:
            self._metrics.setdefault(name)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Metric names in the order they were first added."""
        return tuple(self._metrics)

    @property
    def rows(self) -> list[dict[str, str | float]]:
        """One dict per case, {"case": name, metric: value, ...} (copies; missing metrics absent)."""
        return [{"case": case, **row} for case, row in self._rows.items()]

    def values(self, metric: str) -> np.ndarray:
        """(N,) float64 values of one metric over the N cases that report it, in insertion order."""
        if metric not in self._metrics:
            raise ValueError(f"metric {metric!r} is not in the table; it has {list(self._metrics)}")
        return np.array([row[metric] for row in self._rows.values() if metric in row], dtype=np.float64)

    def summary(self) -> dict[str, MetricSummary]:
        """metric name -> :class:`MetricSummary`, in column order."""
        return {name: summarize(self.values(name)) for name in self._metrics}

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the per-case rows as CSV (full float precision, inf/nan spelled out, missing empty).

        The file is written to a temporary file in the same folder and moved into place, so
        a reader never sees a half-written table.
        """
        path = Path(path)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["case", *self._metrics])
        for case, row in self._rows.items():
            writer.writerow([case, *(repr(row[m]) if m in row else "" for m in self._metrics)])
        atomic_write_text(path, buffer.getvalue())

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> MetricTable:
        """Read a table written by :meth:`to_csv`.

        Raises:
            ValueError: the file has no "case" first column or holds a non-numeric value.
        """
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or header[0] != "case":
                raise ValueError(f"{path}: not a metric table, the first column must be 'case', got {header!r}")
            table = cls()
            for line in reader:
                row = {}
                for name, text in zip(header[1:], line[1:]):
                    if text == "":
                        continue
                    try:
                        row[name] = float(text)
                    except ValueError:
                        raise ValueError(f"{path}: case {line[0]!r}, metric {name!r}: "
                                         f"not a number: {text!r}") from None
                table.add(line[0], row)
        return table

    def to_markdown(self, digits: int = 4) -> str:
        """Per-case table followed by a summary table (mean ± std over finite values, counts)."""
        def fmt(v: float) -> str:
            return f"{v:.{digits}f}" if math.isfinite(v) else str(v)

        names = list(self._metrics)
        lines = ["| case | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
        for case, row in self._rows.items():
            lines.append(f"| {case} | " + " | ".join(fmt(row[m]) if m in row else "" for m in names) + " |")
        lines += ["", "| metric | mean ± std | median | n | n_inf | n_nan |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, s in self.summary().items():
            lines.append(f"| {name} | {fmt(s.mean)} ± {fmt(s.std)} | {fmt(s.median)} | "
                         f"{s.n} | {s.n_inf} | {s.n_nan} |")
        return "\n".join(lines) + "\n"
