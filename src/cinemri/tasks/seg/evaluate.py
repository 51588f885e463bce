"""``cinemri seg eval``: challenge-style scores of a checkpoint on labelled cases.

As the ACDC challenge scored (Bernard et al., IEEE TMI 2018): per volume (all slices of one
phase, 3D), at ED and ES separately, Dice of RV, MYO and LV and their mean, HD95 and
Hausdorff in mm with the slice distance as the third spacing (see cinemri.metrics for the
empty-structure rules); and the clinical indices (LV/RV EDV, ESV, EF, LV mass) from the
predicted vs the ground-truth labels: Pearson r, bias (mean of predicted - true) and the
standard deviation of the differences. Labels are scored on each case's original grid.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cinemri.clinical import INDEX_KEYS, compute_indices
from cinemri.files import check_output_dir, check_output_file, json_safe, write_json
from cinemri.io import read_any
from cinemri.metrics import MetricTable, segmentation_scores
from cinemri.metrics.agreement import agreement
from cinemri.seg.inference import load_segmenter, predict_case, test_time_options
from cinemri.tasks.seg.data import CaseRef, discover_cases, split_cases

SPLITS = ("val", "train", "test", "all")


def phase_scores(pred: np.ndarray, true: np.ndarray, spacing) -> dict[str, float]:
    """Scores of one phase: pred, true (S, H, W) integer labels; spacing (dz, dy, dx) mm.
    Returns segmentation_scores' keys plus "dice_mean" (mean of RV, MYO, LV Dice)."""
    scores = segmentation_scores(pred, true, spacing)
    scores["dice_mean"] = float(np.mean([scores["dice_rv"], scores["dice_myo"], scores["dice_lv"]]))
    return scores


def _select(cfg, data: list[str] | None, split: str) -> list[CaseRef]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return discover_cases(list(data) if data else list(cfg.data.train) + list(cfg.data.val))
    if split == "test":  # the held-out role of a split.json (phantom datasets); never trained on
        return [r for r in discover_cases(list(data) if data else list(cfg.data.train)) if r.role == "test"]
    train, val = split_cases(cfg.data, data)
    return val if split == "val" else train


def evaluate(checkpoint: str | os.PathLike, data: list[str] | None = None, *, split: str = "val",
             out_dir: str | os.PathLike | None = None, json_path: str | os.PathLike | None = None,
             test_time: Mapping[str, bool | None] | None = None, device: str = "cpu",
             max_cases: int | None = None) -> dict[str, Any]:
    """Score ``checkpoint`` on the ``split`` of ``data``
    (default: the checkpoint's own sources).

    split: "val" / "train" (the checkpoint's split rule applied to ``data``), "test" (the
    cases a folder's split.json holds out) or "all".
    Writes to ``out_dir`` (when given): ``per_case.csv`` (one row per case and phase),
    ``clinical.csv`` (predicted and true indices per case), ``summary.json``; and the summary
    to ``json_path``. ``test_time``: test-time options that replace the checkpoint's ``eval``
    ones (:func:`cinemri.seg.inference.test_time_options`; None values keep them).
    Returns the summary: {"checkpoint", "split", "cases", "test_time", "tta", "lcc",
    "phases": {"ed"|"es"|"all": {metric: {"mean", "std", "median", "n", "n_inf"}}},
    "clinical": {index: agreement}}.
    ``out_dir`` and ``json_path`` are checked before any work (:func:`cinemri.files.check_output_dir`);
    every file is written atomically, JSON with NaN/inf as null (:func:`cinemri.files.write_json`).
    Raises ValueError for an unreadable checkpoint, cases without ED/ES labels, or an ``out_dir``
    that is a file; OSError when ``out_dir`` cannot be written.
    """
    if out_dir is not None:
        check_output_dir(out_dir)  # before any work: not a file, writable
    if json_path is not None:
        check_output_file(json_path, "--json")
    model, cfg = load_segmenter(checkpoint, device)
    options = test_time_options(cfg, **dict(test_time or {}))
    refs = _select(cfg, data, split)[:max_cases]
    if not refs:
        raise ValueError(f"no case to evaluate in split {split!r} of {data or cfg.data.train}")
    tables = {"ed": MetricTable(), "es": MetricTable(), "all": MetricTable()}
    clinical_rows: dict[str, dict[str, float]] = {}
    for ref in refs:
        case = read_any(ref.path)
        if case.labels is None or case.ed_frame is None or case.es_frame is None:
            raise ValueError(f"{ref.path}: evaluation needs labels and ED/ES frames")
        frames = [case.ed_frame, case.es_frame]
        missing = [f for f in frames if f not in case.labelled_frames]
        if missing:
            raise ValueError(f"{ref.path}: frame(s) {missing} (ED/ES) have no ground truth")
        pred = predict_case(model, case, cfg, frames, test_time=options, device=device)  # (S, T, H, W)
        for phase, t in (("ed", case.ed_frame), ("es", case.es_frame)):
            scores = phase_scores(pred[:, t], case.labels[:, t], case.spacing)
            tables[phase].add(f"{case.name}_{phase}", scores)
            tables["all"].add(f"{case.name}_{phase}", scores)
        row = {}
        for who, labels in (("pred", pred), ("true", case.labels)):
            for key, value in compute_indices(labels, case.spacing, case.ed_frame, case.es_frame).as_dict().items():
                row[f"{who}_{key}"] = value
        clinical_rows[case.name] = row
    summary: dict[str, Any] = {
        "checkpoint": str(checkpoint), "split": split, "cases": [r.name for r in refs],
        "test_time": dataclasses.asdict(options), "tta": options.flip_tta, "lcc": options.largest_component,
        "phases": {phase: {k: {"mean": s.mean, "std": s.std, "median": s.median, "n": s.n, "n_inf": s.n_inf}
                           for k, s in table.summary().items() if not k.startswith("n_")}
                   for phase, table in tables.items()},
        "clinical": {key: agreement(np.array([r[f"pred_{key}"] for r in clinical_rows.values()]),
                                    np.array([r[f"true_{key}"] for r in clinical_rows.values()]))
                     for key in INDEX_KEYS},
    }
    summary = json_safe(summary)  # NaN/inf as null (the one rule of cinemri.files); n_inf keeps the count
    if out_dir is not None:
        out = Path(out_dir)
        tables["all"].to_csv(out / "per_case.csv")  # MetricTable.to_csv writes atomically
        clinical = MetricTable()
        for name, row in clinical_rows.items():
            clinical.add(name, row)
        clinical.to_csv(out / "clinical.csv")
        write_json(summary, out / "summary.json")
    if json_path is not None:
        write_json(summary, json_path)
    return summary
