"""``cinemri analyze`` on real ACDC patients, scored the way the ACDC challenge scored.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/analyze_acdc.py          # the val patients of acdc_unet
    .venv/bin/python benchmarks/analyze_acdc.py --patients patient011 patient015 --threads 2

For each patient (default: the "val" lines of ``runs/seg/acdc_unet/split.txt``, i.e. cases the
checkpoint never trained on) :func:`cinemri.pipeline.analyze` runs on the ACDC folder
``--data/training/<patient>`` (images only: nothing is reconstructed) with ``--seg-checkpoint``
and the default :class:`~cinemri.pipeline.AnalyzeOptions` (largest connected component on, no
flip TTA), figures only for the first patient (its ``report.html`` is kept under ``--out-dir``).
ED/ES are the frames named in the patient's Info.cfg (the pipeline uses the file's frames);
truth indices are computed from the ACDC labels at those frames, as ``results.json`` records.

Aggregate over the patients that did not raise (Bernard et al., IEEE TMI 37(11):2514-2525,
2018, doi:10.1109/TMI.2018.2837502): for LV EDV, LV ESV, LV EF, RV EDV, RV ESV, RV EF and LV
mass the Pearson r of predicted vs true, bias = mean(pred - true) and the sd of the
differences (ddof 1); mean Dice per structure at ED and ES (3D, the whole stack); mean HD95 in
mm (3D, slice distance as the third spacing; a case where it is undefined, null in
results.json, is left out and counted). Also counted: patients where ``analyze`` raised, and
patients whose results carry warnings (``results["warnings"]``, and Python warnings).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _paths import ACDC_ROOT, REPO  # benchmarks/ is sys.path[0] as a script
from cinemri.labels import STRUCTURES
from cinemri.tasks.seg.task import read_split_file

DEFAULT_DATA = ACDC_ROOT
DEFAULT_CHECKPOINT = REPO / "runs" / "seg" / "acdc_unet" / "best.pt"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "analyze_acdc.json"
DEFAULT_OUT_DIR = REPO / "runs" / "analyze_acdc"

# The challenge's clinical indices: results.json key -> table label.
INDICES = {"lv_edv_ml": "LV EDV (ml)", "lv_esv_ml": "LV ESV (ml)", "lv_ef_pct": "LV EF (%)",
           "rv_edv_ml": "RV EDV (ml)", "rv_esv_ml": "RV ESV (ml)", "rv_ef_pct": "RV EF (%)",
           "lv_mass_g": "LV mass (g)"}
PHASES = ("ed", "es")


def val_patients(split_file: Path) -> list[str]:
    """The ACDC patients (names ``patient...``) of the "val" lines of a split file ("train NAME" /
    "val NAME"); other validation cases of the run (phantom cases) are left out."""
    if not split_file.is_file():
        raise ValueError(f"{split_file}: split file not found (give --patients or --split)")
    names = [name for name in read_split_file(split_file)["val"] if name.startswith("patient")]
    if not names:
        raise ValueError(f"{split_file}: no 'val' lines")
    return names


def chosen_patients(parser: argparse.ArgumentParser, patients: list[str] | None, split: Path | None,
                    root: Path) -> list[str]:
    """``patients`` when given, else the "val" patients of ``split``; each must be a folder of
    ``root``. A problem ends the script through ``parser.error`` (one line)."""
    if patients is None:
        if split is None:
            parser.error("give --split (a split file) or --patients")
        try:
            patients = val_patients(split)
        except ValueError as err:
            parser.error(str(err))
    missing = [p for p in patients if not (root / p).is_dir()]
    if missing:
        parser.error(f"no patient folder under {root} for {missing}")
    return patients


def _value(x: Any) -> float:
    """A results.json number (None for NaN) as a float."""
    return math.nan if x is None else float(x)


def _mean(values: list[float]) -> dict[str, float | int]:
    """{"mean", "n", "n_missing"} of values, NaN left out and counted."""
    arr = np.asarray(values, np.float64)
    finite = arr[np.isfinite(arr)]
    return {"mean": float(finite.mean()) if finite.size else math.nan, "n": int(finite.size),
            "n_missing": int(arr.size - finite.size)}


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Challenge-style summary of analyze results (dicts as in results.json, with ground_truth).

    Returns {"n_cases", "clinical": {index: {"n", "pearson_r", "bias", "sd", "mae"}} (pred =
    ``indices``, truth = ``ground_truth.indices``; pairs with a null are left out),
    "dice": {phase: {structure: {"mean", "n", "n_missing"}}}, "hd95_mm": the same}.

    Raises:
        ValueError: a result without ground truth (named by its case).
    """
    from cinemri.metrics.agreement import agreement

    for res in results:
        if not res.get("ground_truth"):
            raise ValueError(f"{res.get('case', {}).get('name', '?')}: results carry no ground_truth")
    clinical = {}
    for key in INDICES:
        pred = [_value(r["indices"][key]) for r in results]
        true = [_value(r["ground_truth"]["indices"][key]) for r in results]
        clinical[key] = agreement(np.asarray(pred), np.asarray(true))
    scores: dict[str, Any] = {}
    for metric in ("dice", "hd95_mm"):
        scores[metric] = {phase: {s: _mean([_value(r["ground_truth"][metric][phase][s]) for r in results])
                                  for s in STRUCTURES} for phase in PHASES}
    confidence = [_value((r.get("segmentation") or {}).get("confidence")) for r in results]
    finite = [c for c in confidence if math.isfinite(c)]
    return {"n_cases": len(results), "clinical": clinical, **scores,
            "confidence": {"mean": float(np.mean(finite)) if finite else math.nan,
                           "min": float(np.min(finite)) if finite else math.nan, "n": len(finite)}}


def run_patient(folder: Path, out_dir: Path, checkpoint: Path, figures: bool) -> dict[str, Any]:
    """analyze one patient; {"patient", "seconds", "error" or "results", "warnings", "python_warnings"}."""
    from cinemri.pipeline import AnalyzeOptions, analyze

    record: dict[str, Any] = {"patient": folder.name}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = analyze(folder, out_dir, seg_checkpoint=checkpoint, options=AnalyzeOptions(figures=figures))
        except Exception as err:  # a benchmark counts failures instead of stopping at the first
            record.update(error=f"{type(err).__name__}: {err}", results=None, warnings=[])
        else:
            record.update(error=None, results=results, warnings=list(results["warnings"]))
    record["python_warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    record["seconds"] = time.perf_counter() - start
    return record


def _f(value: float, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def markdown(summary: dict[str, Any], counts: dict[str, int]) -> str:
    """Two tables (clinical agreement; Dice and HD95) and a line of counts."""
    lines = ["| index | n | Pearson r | bias ± sd | MAE |", "|---|---:|---:|---:|---:|"]
    for key, label in INDICES.items():
        a = summary["clinical"][key]
        lines.append(f"| {label} | {a['n']} | {_f(a['pearson_r'], '.3f')} | {_f(a['bias'], '+.1f')} ± "
                     f"{_f(a['sd'], '.1f')} | {_f(a['mae'], '.1f')} |")
    lines += ["", "| structure | Dice ED | Dice ES | HD95 ED (mm) | HD95 ES (mm) |", "|---|---:|---:|---:|---:|"]
    for s in STRUCTURES:
        d, h = summary["dice"], summary["hd95_mm"]
        lines.append(f"| {s.upper()} | {_f(d['ed'][s]['mean'], '.3f')} | {_f(d['es'][s]['mean'], '.3f')} | "
                     f"{_f(h['ed'][s]['mean'], '.1f')} | {_f(h['es'][s]['mean'], '.1f')} |")
    conf = summary.get("confidence", {})
    lines += ["", f"Segmentation confidence (mean winning-class probability over labelled pixels): mean "
                  f"{_f(conf.get('mean', math.nan), '.3f')}, lowest {_f(conf.get('min', math.nan), '.3f')}."]
    lines += ["", f"{counts['patients']} patients: {counts['scored']} scored, {counts['raised']} raised, "
                  f"{counts['warned']} with warnings in results.json, {counts['python_warned']} with Python warnings."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/analyze_acdc.py")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"ACDC root holding training/<patient> (default {DEFAULT_DATA})")
    parser.add_argument("--seg-checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                        help=f"segmentation checkpoint (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--split", type=Path, help="split file whose 'val' patients are run "
                        "(default: split.txt beside the checkpoint)")
    parser.add_argument("--patients", nargs="+", help="patients to run instead of the split's val ones")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help=f"analyze outputs, one folder per patient (default {DEFAULT_OUT_DIR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder: the ACDC data is not on this machine "
                     "(it is expected at ../shared/data/acdc, beside the repository)")
    if not args.seg_checkpoint.is_file():
        parser.error(f"--seg-checkpoint {args.seg_checkpoint} is not a file")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    args.patients = chosen_patients(parser, args.patients, args.split or args.seg_checkpoint.parent / "split.txt",
                                    args.data / "training")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    load_start = list(os.getloadavg())
    start = time.perf_counter()
    records = []
    for i, patient in enumerate(args.patients):
        record = run_patient(args.data / "training" / patient, args.out_dir / patient, args.seg_checkpoint,
                             figures=i == 0)
        records.append(record)
        res = record["results"]
        status = record["error"] or (f"LV EF {_f(res['indices']['lv_ef_pct'], '.1f')} % "
                                     f"(truth {_f(_value(res['ground_truth']['indices']['lv_ef_pct']), '.1f')}), "
                                     f"{len(record['warnings'])} warning(s)")
        print(f"{patient}: {record['seconds']:.1f} s, {status}", file=sys.stderr, flush=True)
    scored = [r["results"] for r in records if r["results"] is not None and r["results"].get("ground_truth")]
    counts = {"patients": len(records), "scored": len(scored),
              "raised": sum(r["error"] is not None for r in records),
              "warned": sum(bool(r["warnings"]) for r in records),
              "python_warned": sum(bool(r["python_warnings"]) for r in records)}
    summary = aggregate(scored) if scored else None
    table = markdown(summary, counts) if summary else f"no patient could be scored: {counts}"
    print(table)
    per_patient = []
    for r in records:
        res = r["results"] or {}
        gt = res.get("ground_truth") or {}
        per_patient.append({
            "patient": r["patient"], "group": res.get("case", {}).get("group"), "seconds": r["seconds"],
            "error": r["error"], "warnings": r["warnings"], "python_warnings": r["python_warnings"],
            "ed_es": res.get("ed_es"), "pred": {k: res["indices"][k] for k in INDICES} if res else None,
            "truth": gt.get("indices") and {k: gt["indices"][k] for k in INDICES},
            "dice": gt.get("dice"), "hd95_mm": gt.get("hd95_mm")})
    from cinemri.files import write_json

    result = {
        "benchmark": "analyze_acdc",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "machine": {"cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
                    "python": platform.python_version(),
                    "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "load_average_1_5_15_start": load_start, "load_average_1_5_15_end": list(os.getloadavg()),
                    "total_wall_s": time.perf_counter() - start},
        "setup": {"seg_checkpoint": str(args.seg_checkpoint), "data": str(args.data), "patients": args.patients,
                  "options": "AnalyzeOptions() defaults (largest_component on, no flip TTA, cpu); figures for "
                             f"{args.patients[0]} only",
                  "ed_es": "the frames of Info.cfg", "truth": "indices from the ACDC labels at ED/ES",
                  "scores": "Dice and HD95 (mm) of the 3D stack at ED and ES; HD95 null cases left out",
                  "agreement": "pearson r, bias = mean(pred - truth), sd (ddof 1), mae over scored patients",
                  "report": str(args.out_dir / args.patients[0] / "report.html")},
        "counts": counts, "summary": summary, "per_patient": per_patient, "markdown": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
