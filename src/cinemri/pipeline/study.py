"""``cinemri study acceleration``: what undersampling does to the numbers a cardiologist reads.

For every case of a phantom split (fully sampled image + coil maps + labels + exact indices),
every acceleration R and every reconstruction method, the case is undersampled with a mask
seeded from (seed, case name, slice) -- so at one R every method sees the same k-space --,
reconstructed (:func:`~cinemri.pipeline.reconstruct.reconstruct_case`), segmented
(:func:`~cinemri.pipeline.analysis.segment`) and measured against the phantom's ground truth
(:func:`~cinemri.pipeline.analysis.clinical_summary`, :func:`~cinemri.pipeline.analysis.compare_with_truth`).
One more row per case segments the fully sampled image: the error that segmentation alone causes.

A case that fails for one method and R with an expected per-case error -- a ``ValueError`` (an R
the mask cannot reach, an empty LV, ...) or an unreadable case file -- is recorded with its stage
and reason, counted in its row of the table, in ``n_failed`` / ``failures`` of ``study.json`` and
listed in ``summary.md``; the study goes on. Any other error (a torch ``RuntimeError``, a
programming error) is not a property of the case: it stops the study and propagates.

Files written into ``out_dir``: ``cases.csv`` (one row per case x method x R, rewritten after every
case so an interrupted study keeps what it measured), ``summary.md``, ``study.json`` (schema
``cinemri.study.acceleration/1``) and ``study.png``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cinemri import __version__
from cinemri.case import Case
from cinemri.clinical import INDEX_KEYS
from cinemri.data import split_cases
from cinemri.files import atomic_write, check_output_dir, write_json
from cinemri.io import read_case
from cinemri.labels import STRUCTURES
from cinemri.masks import MaskOptions
from cinemri.metrics.aggregate import summarize
from cinemri.pipeline.analysis import AnalyzeOptions, clinical_summary, compare_with_truth, image_quality, segment
from cinemri.pipeline.reconstruct import METHODS, reconstruct_case, with_image
from cinemri.pipeline.weights import resolve_checkpoint
from cinemri.recon import CSOptions
from cinemri.recon.inference import is_undersampled, load_reconstructor
from cinemri.seg.inference import load_segmenter

SCHEMA = "cinemri.study.acceleration/1"
FULLY_SAMPLED = "fully_sampled"
PHASES = ("ed", "es")
RELATIVE_KEYS = ("lv_edv_ml", "lv_esv_ml", "lv_mass_g", "rv_edv_ml", "rv_esv_ml")
METRIC_COLUMNS = (
    "psnr_db", "ssim", "nmse",
    *(f"dice_{n}_{p}" for p in PHASES for n in STRUCTURES), "dice_mean",
    *(f"hd95_{n}_{p}_mm" for p in PHASES for n in STRUCTURES),
    "lv_ef_abs_err_pct", "rv_ef_abs_err_pct", *(f"{k.rsplit('_', 1)[0]}_rel_err_pct" for k in RELATIVE_KEYS),
    *(f"{k}_{part}" for k in INDEX_KEYS for part in ("pred", "truth", "err")),
    "recon_seconds", "seg_seconds",
)
CONVENTIONS = {
    "image_quality": "PSNR/SSIM/NMSE of the magnitude of all slices and frames of a case against the fully "
                     "sampled image (noise included); data range = max of that reference; SSIM 7x7 window",
    "masks": "Cartesian masks seeded from (seed, case name, slice); every method sees the same mask at one R; "
             "'acceleration' is the nominal R, 'achieved_acceleration' the mean achieved R over slices",
    "truth": "the phantom's exact indices (from its labels, as cinemri.clinical computes them) at the file's "
             "ED/ES; with `slices` set, the indices of the phantom labels of those slices",
    "errors": "<index>_err = predicted - truth (mL, g; EF in percentage points); <index>_rel_err_pct = "
              "100 (predicted - truth) / truth; *_ef_abs_err_pct = |EF error|",
    "dice": "whole stack at ED and at ES per structure, 1 when absent from both; dice_mean = mean of the 6 "
            "(RV/MYO/LV x ED/ES)",
    "segmentation": "as `cinemri analyze` (AnalyzeOptions defaults): flip TTA, post-processing and largest "
                    "connected component as the checkpoint's eval section",
    "summary": "mean ± sample sd over the cases with a finite value: image quality over every reconstructed "
               "case, clinical numbers over the cases that could be measured; failures counted per row",
}


@dataclass(frozen=True)
class StudyOptions:
    """Options of :func:`acceleration_study`; every default lives here.

    accelerations: nominal R values (each > 1); methods: reconstructions among "zero_filled",
    "cs", "model"; split: the split of ``split.json`` to use; max_cases: its first N cases
    (None: all); slices: the central N slices of each case (None: all); cs_iters: iterations
    of the CS baseline; seed, pattern, center_lines: the undersampling masks, the same for
    every method and checkpoint (the study compares methods on identical k-space).
    """

    accelerations: tuple[float, ...] = (2.0, 4.0, 5.0, 6.0, 8.0, 10.0)
    methods: tuple[str, ...] = ("zero_filled", "cs", "model")
    split: str = "test"
    max_cases: int | None = None
    slices: int | None = None
    cs_iters: int = CSOptions.num_iters
    seed: int = 0
    pattern: str = MaskOptions.pattern
    center_lines: int = MaskOptions.center_lines

    def __post_init__(self) -> None:
        try:
            accelerations = tuple(float(r) for r in self.accelerations)
        except (TypeError, ValueError):
            accelerations = ()
        if not accelerations or not all(r > 1.0 for r in accelerations) or len(set(accelerations)) < len(accelerations):
            raise ValueError(f"accelerations must be distinct values > 1 (the fully sampled row is always added), "
                             f"got {self.accelerations!r}")
        methods = tuple(self.methods)
        if not methods or any(m not in METHODS for m in methods) or len(set(methods)) != len(methods):
            raise ValueError(f"methods must be distinct names among {METHODS}, got {self.methods!r}")
        for name, low in (("max_cases", 1), ("slices", 1), ("cs_iters", 1)):
            value = getattr(self, name)
            if value is None and name != "cs_iters":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}{' or None' if name != 'cs_iters' else ''}, "
                                 f"got {value!r}")
        MaskOptions(accelerations[0], self.pattern, self.center_lines)  # validates the mask settings now, not per case
        object.__setattr__(self, "accelerations", accelerations)
        object.__setattr__(self, "methods", methods)


def central_slices(case: Case, count: int) -> Case:
    """``case`` cut to its central ``count`` slices [(S - k) // 2, (S - k) // 2 + k), k = min(S, count).

    The recorded whole-heart indices no longer apply, so they are dropped: the truth is then
    computed from the labels of the kept slices (see :func:`compare_with_truth`).
    """
    s = case.num_slices
    k = min(s, count)
    start = (s - k) // 2
    cut = {name: getattr(case, name)[start:start + k]  # slice axis first in every array
           for name in ("image", "labels", "coil_maps", "kspace") if getattr(case, name) is not None}
    return replace(case, **cut, indices={})


def _load_case(path: Path, options: StudyOptions) -> Case:
    """The case at ``path``, checked for what the study needs.

    Raises:
        ValueError: unreadable, already undersampled, or without labels at its ED and ES.
    """
    case = read_case(path)
    if is_undersampled(case):
        raise ValueError(f"{path}: holds undersampled k-space; the study undersamples fully sampled data itself")
    ed_es = {case.ed_frame, case.es_frame}
    if case.labels is None or None in ed_es or not ed_es <= set(case.labelled_frames):
        raise ValueError(f"{path}: has no ground-truth labels at its ED and ES frames; nothing to compare with")
    return case if options.slices is None else central_slices(case, options.slices)


def score_labels(labels: np.ndarray, case: Case) -> tuple[dict[str, float], list[str]]:
    """(flat metrics of :data:`METRIC_COLUMNS` from Dice to index errors, warnings) of ``labels``.

    labels: (S, T, H, W) uint8 of every frame.
    Raises ValueError (from :func:`clinical_summary`) when nothing can be measured, e.g. no LV.
    """
    summary, warnings = clinical_summary(labels, case)
    truth = compare_with_truth(labels, case, summary["ed_es"]["ed_frame"], summary["ed_es"]["es_frame"])
    if truth is None:  # _load_case checked for labels at ED/ES, so this is a programming error
        raise ValueError(f"{case.source or case.name}: no ground truth to compare with")
    metrics: dict[str, float] = {}
    for phase in PHASES:
        for name in STRUCTURES:
            metrics[f"dice_{name}_{phase}"] = truth["dice"][phase][name]
            metrics[f"hd95_{name}_{phase}_mm"] = truth["hd95_mm"][phase][name]
    metrics["dice_mean"] = float(np.mean([metrics[f"dice_{n}_{p}"] for p in PHASES for n in STRUCTURES]))
    for key in INDEX_KEYS:
        true, err = truth["indices"][key], truth["errors"][key]
        metrics.update({f"{key}_pred": true + err, f"{key}_truth": true, f"{key}_err": err})
    for key in RELATIVE_KEYS:
        true = metrics[f"{key}_truth"]
        metrics[f"{key.rsplit('_', 1)[0]}_rel_err_pct"] = 100.0 * metrics[f"{key}_err"] / true if true > 0 else math.nan
    metrics["lv_ef_abs_err_pct"] = abs(metrics["lv_ef_pct_err"])
    metrics["rv_ef_abs_err_pct"] = abs(metrics["rv_ef_pct_err"])
    return metrics, warnings


def _record(case: str, group: str | None, method: str, acceleration: float) -> dict[str, Any]:
    """An empty, successful record of one run (one row of cases.csv)."""
    return {"case": case, "group": group, "method": method, "acceleration": acceleration,
            "achieved_acceleration": None, "status": "ok", "stage": None, "reason": None, "warnings": [],
            "metrics": {}}


def _run_one(case: Case, method: str, acceleration: float, recon, seg_model, seg_cfg,
             options: StudyOptions) -> dict[str, Any]:
    """One record: ``case`` reconstructed with ``method`` at ``acceleration`` (1 and
    FULLY_SAMPLED: the reference itself), segmented and scored. A ValueError (what a bad case or
    an unreachable R raises) becomes the record's ``status``/``stage``/``reason``; what was
    measured before it is kept. Other exceptions propagate."""
    record = _record(case.name, case.group, method, acceleration)
    stage = "reconstruction"
    try:
        fully = method == FULLY_SAMPLED
        result = reconstruct_case(case, "zero_filled" if fully else method, recon=recon, acceleration=acceleration,
                                  undersample=not fully, seed=options.seed, pattern=options.pattern,
                                  center_lines=options.center_lines,
                                  cs_iters=options.cs_iters)
        record["achieved_acceleration"] = result.acceleration
        record["metrics"]["recon_seconds"] = result.seconds
        quality = image_quality(result)
        if quality is not None:
            q = quality[result.method]
            record["metrics"].update(psnr_db=q["psnr_db"], ssim=q["ssim"], nmse=q["nmse"])
        stage = "segmentation"
        segmentation, seconds = segment(with_image(case, result.image), seg_model, seg_cfg, AnalyzeOptions())
        labels = segmentation.labels
        record["metrics"]["seg_seconds"] = seconds
        stage = "indices"
        metrics, record["warnings"] = score_labels(labels, case)
        record["metrics"].update(metrics)
    except ValueError as err:  # a property of this case and R: record it, go on (anything else propagates)
        record.update(status="failed", stage=stage, reason=_one_line(err))
    return record


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def acceleration_study(data_root: str | os.PathLike, out_dir: str | os.PathLike, *,
                       recon_checkpoint: str | os.PathLike | None = None,
                       seg_checkpoint: str | os.PathLike | None = None,
                       options: StudyOptions = StudyOptions(),
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the study on ``options.split`` of ``data_root/split.json`` and write its files.

    Checkpoints default to the bundled phantom weights; the reconstruction checkpoint is only
    read when "model" is among the methods. ``progress`` receives one line per finished case.
    Returns the content of ``study.json`` (NaN written as null).

    ``out_dir`` is checked before any work (:func:`cinemri.files.check_output_dir`) and created
    once the split and checkpoints are read.

    Raises:
        ValueError: a bad split file or checkpoint, an ``out_dir`` that is a file (study-wide
            problems). Expected per-case failures (ValueError, an unreadable case) are
            recorded and counted, not raised; any other error propagates.
        OSError: ``out_dir`` cannot be written.
    """
    start = time.perf_counter()
    out = check_output_dir(out_dir)
    files = split_cases(data_root, options.split, max_cases=options.max_cases)
    recon_path = resolve_checkpoint(recon_checkpoint, "recon") if "model" in options.methods else None
    recon = load_reconstructor(recon_path) if recon_path is not None else None
    seg_path = resolve_checkpoint(seg_checkpoint, "seg")
    seg_model, seg_cfg = load_segmenter(seg_path)
    out.mkdir(parents=True, exist_ok=True)
    runs = [(FULLY_SAMPLED, 1.0)] + [(m, r) for r in options.accelerations for m in options.methods]
    records: list[dict[str, Any]] = []
    for number, path in enumerate(files, 1):
        case_start = time.perf_counter()
        try:
            case = _load_case(path, options)
        except (ValueError, OSError) as err:  # unreadable case: every run of it fails for the same reason
            done = [{**_record(path.stem, None, m, r), "status": "failed", "stage": "read", "reason": _one_line(err)}
                    for m, r in runs]
        else:
            done = [_run_one(case, m, r, recon, seg_model, seg_cfg, options) for m, r in runs]
        records += done
        write_csv(records, out / "cases.csv")
        if progress is not None:
            failed = sum(rec["status"] != "ok" for rec in done)
            progress(f"case {number}/{len(files)} {path.stem}: {len(done)} runs, {failed} failed "
                     f"({time.perf_counter() - case_start:.0f} s)")
    rows = summarize_records(records, runs)
    header = {"data": str(data_root), "split": options.split, "cases": [p.stem for p in files],
              "recon_checkpoint": str(recon_path) if recon_path else None, "seg_checkpoint": str(seg_path)}
    atomic_write(out / "summary.md", lambda tmp: tmp.write_text(markdown_summary(rows, header, options)))
    study_plot(rows, out / "study.png")
    failures = [{"case": rec["case"], "method": rec["method"], "acceleration": rec["acceleration"],
                 "stage": rec["stage"], "reason": rec["reason"]} for rec in records if rec["status"] != "ok"]
    result = {"schema": SCHEMA, "cinemri_version": __version__, **header,
              "options": asdict(options), "conventions": CONVENTIONS,
              "n_runs": len(records), "n_failed": len(failures), "failures": failures,
              "rows": rows, "records": records,
              "seconds": time.perf_counter() - start,
              "files": {"csv": "cases.csv", "summary": "summary.md", "json": "study.json", "plot": "study.png"}}
    write_json(result, out / "study.json")
    return json.loads((out / "study.json").read_text())  # what the file holds: NaN as null


def write_csv(records: list[dict[str, Any]], path: Path) -> Path:
    """One line per record: identity and status columns, then :data:`METRIC_COLUMNS` (empty
    where not measured, nan/inf spelled out), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    identity = ("case", "group", "method", "acceleration", "achieved_acceleration", "status", "stage", "reason")
    writer.writerow([*identity, "n_warnings", *METRIC_COLUMNS])
    for rec in records:
        cells = ["" if rec[k] is None else rec[k] for k in identity]
        metrics = rec["metrics"]
        writer.writerow([*cells, len(rec["warnings"]),
                         *(repr(float(metrics[m])) if m in metrics else "" for m in METRIC_COLUMNS)])
    return atomic_write(path, lambda tmp: tmp.write_text(buffer.getvalue()))


def summarize_records(records: list[dict[str, Any]], runs: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """One summary per (method, R) of ``runs``: case and failure counts, the failures, and
    :class:`~cinemri.metrics.aggregate.MetricSummary` (as dicts) of every metric measured."""
    rows = []
    for method, r in runs:
        group = [rec for rec in records if rec["method"] == method and rec["acceleration"] == r]
        failures = [{"case": rec["case"], "stage": rec["stage"], "reason": rec["reason"]}
                    for rec in group if rec["status"] != "ok"]
        metrics = {}
        for name in METRIC_COLUMNS:
            values = [rec["metrics"][name] for rec in group if name in rec["metrics"]]
            if values:
                metrics[name] = asdict(summarize(np.asarray(values)))
        rows.append({"method": method, "acceleration": r, "n_cases": len(group), "n_failed": len(failures),
                     "failures": failures, "metrics": metrics})
    return rows


TABLE_COLUMNS = (("psnr_db", "PSNR (dB)", 2), ("ssim", "SSIM", 3), ("dice_mean", "Dice mean", 3),
                 ("lv_ef_abs_err_pct", "abs LV EF error (points)", 1), ("lv_edv_rel_err_pct", "LV EDV error (%)", 1))


def _mean_sd(summary: dict[str, Any] | None, digits: int) -> str:
    if summary is None or not math.isfinite(summary["mean"]):
        return "–"
    text = f"{summary['mean']:.{digits}f}"
    return text + (f" ± {summary['std']:.{digits}f}" if math.isfinite(summary["std"]) else "")


def markdown_summary(rows: list[dict[str, Any]], header: dict[str, Any], options: StudyOptions) -> str:
    """The summary table (mean ± sd per method x R, failures counted), conventions and failures."""
    lines = ["# Acceleration study", "",
             f"{len(header['cases'])} case(s) of split `{header['split']}` in `{header['data']}`; masks "
             f"`{options.pattern}` seed {options.seed}, {options.center_lines} centre lines; CS {options.cs_iters} "
             f"iterations; slices "
             f"{'all' if options.slices is None else f'central {options.slices}'}.",
             f"Checkpoints: recon `{header['recon_checkpoint']}`, seg `{header['seg_checkpoint']}`.",
             f"{sum(row['n_failed'] for row in rows)} of {sum(row['n_cases'] for row in rows)} runs failed"
             + (" (listed below)." if any(row["n_failed"] for row in rows) else "."), "",
             "| method | R | cases | failed | " + " | ".join(c[1] for c in TABLE_COLUMNS) + " |",
             "|" + " --- |" * (4 + len(TABLE_COLUMNS))]
    for row in rows:
        cells = [row["method"], f"{row['acceleration']:g}", str(row["n_cases"]), str(row["n_failed"])]
        cells += [_mean_sd(row["metrics"].get(key), digits) for key, _, digits in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Conventions:", ""] + [f"- {key}: {text}" for key, text in CONVENTIONS.items()]
    failures = [(row, f) for row in rows for f in row["failures"]]
    if failures:
        lines += ["", "Failures:", ""]
        lines += [f"- {f['case']}, {row['method']} R={row['acceleration']:g} ({f['stage']}): {f['reason']}"
                  for row, f in failures]
    return "\n".join(lines) + "\n"


PLOT_PANELS = (("psnr_db", "PSNR (dB)"), ("dice_mean", "mean Dice"), ("lv_ef_abs_err_pct", "|LV EF error| (points)"),
               ("lv_edv_rel_err_pct", "LV EDV error (%)"))
METHOD_COLOURS = {"zero_filled": "#7f7f7f", "cs": "#0072B2", "model": "#D55E00"}  # Okabe-Ito where it matters


def study_plot(rows: list[dict[str, Any]], out_path: str | os.PathLike) -> Path:
    """Four panels over R (PSNR, mean Dice, |LV EF error|, LV EDV error %): mean ± sd per method,
    the fully sampled row as a dashed horizontal line (no PSNR: it is the reference)."""
    fig = Figure(figsize=(13.0, 3.8), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(PLOT_PANELS))
    methods = list(dict.fromkeys(row["method"] for row in rows if row["method"] != FULLY_SAMPLED))
    for ax, (key, title) in zip(axes, PLOT_PANELS):
        for method in methods:
            points = [(row["acceleration"], row["metrics"][key]) for row in rows
                      if row["method"] == method and key in row["metrics"]]
            points = [(r, s["mean"], s["std"]) for r, s in points if math.isfinite(s["mean"])]
            if not points:
                continue
            r, mean, sd = (np.array(v, dtype=float) for v in zip(*points))
            colour = METHOD_COLOURS.get(method)
            ax.plot(r, mean, "o-", color=colour, label=method, markersize=4)
            ax.fill_between(r, mean - np.nan_to_num(sd), mean + np.nan_to_num(sd), color=colour, alpha=0.15)
        fully = next((row for row in rows if row["method"] == FULLY_SAMPLED), None)
        if fully is not None and key in fully["metrics"] and math.isfinite(fully["metrics"][key]["mean"]):
            ax.axhline(fully["metrics"][key]["mean"], color="black", linestyle="--", linewidth=1, label="fully sampled")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(sorted({row["acceleration"] for row in rows if row["method"] != FULLY_SAMPLED}))
        ax.set_xlabel("acceleration R")
        ax.grid(alpha=0.3)
    legend = {}  # label -> handle over all panels: a method may appear only where it was measured
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    fig.suptitle("mean ± sd over cases; dashed: segmentation of the fully sampled image", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend below the panels
    return atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png", facecolor="white"))
