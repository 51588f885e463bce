"""Ejection fraction from 5x reconstructions of real cine, against the ejection fraction of the
fully sampled images, both segmented by the same segmenter (issue: within 2 points), or each by the
one ``cinemri analyze`` would use (``--recon-seg-checkpoint src/cinemri/weights/seg_recon.pt``).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/recon_ef_real.py --split runs/seg/default_unet/split.txt
    .venv/bin/python benchmarks/recon_ef_real.py --patients patient090 patient011 --methods model cs

For every ACDC patient (default: the "val" patients of ``--split``, i.e. patients the bundled
segmenter never trained on; the bundled cascade never saw ACDC at all), every slice of the 4D cine
(magnitude) becomes k-space as ``recon_real_anatomy.py`` simulates it (``undersampled_slice``: 5x
``vd_random`` masks of the project's defaults seeded by the slice index, ``--coils``), is
reconstructed by each of ``--methods`` -- ``model``: the cascade of ``--recon-checkpoint`` in its
inference precision (bf16 where it trained in bf16), on the k-space divided by the 99th
percentile of the zero-filled magnitude as in training; ``cs``: ``cs_tv`` with its defaults
(temporal TV, 50 iterations); ``zero_filled`` -- and the magnitude cine is segmented, every
frame, by ``--seg-checkpoint`` through the path ``cinemri analyze`` takes (the checkpoint's
test-time settings); the reconstructions by ``--recon-seg-checkpoint`` instead when it is
given. LV and RV EDV, ESV and EF at the ED and ES frames of Info.cfg.

Reported per method over the patients: mean absolute difference, bias and sd of LV EF (and LV
EDV, ESV, RV EF) against the same indices from the fully sampled images (what the
reconstruction changes) and against the ground-truth labels (the whole chain); the patients for
whose reconstruction ``analyze`` would print plausibility warnings, and the LV EF agreement over
the others (what a user who heeds the warnings gets); the PSNR of the
reconstruction (magnitude, the patient's 4D maximum as data range, all frames); seconds per slice.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _paths import ACDC_TRAINING, REPO
from analyze_acdc import chosen_patients
from cinemri.files import write_json
from cinemri.io import read_acdc
from cinemri.metrics import psnr
from cinemri.metrics.agreement import agreement
from cinemri.pipeline.analysis import AnalyzeOptions, clinical_summary, indices_dict, segment
from cinemri.pipeline.recon_set import METHODS, reconstruct_slices, slice_method
from cinemri.recon.inference import load_reconstructor
from cinemri.seg.inference import load_segmenter
from recon_speed import machine_info

DEFAULT_DATA = ACDC_TRAINING
DEFAULT_OUT = REPO / "benchmarks" / "results" / "recon_ef_real.json"
WEIGHTS = REPO / "src" / "cinemri" / "weights"
INDICES = ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "rv_ef_pct")


def ef_of(magnitude: np.ndarray, case, seg_model, seg_cfg) -> dict[str, Any]:
    """Indices of INDICES from segmenting ``magnitude`` (S, T, H, W) at the case's ED/ES frames,
    and the plausibility warnings ``cinemri analyze`` would print for that segmentation."""
    image_case = replace(case, image=magnitude.astype(np.complex64), kspace=None, mask=None)
    segmentation, _ = segment(image_case, seg_model, seg_cfg, AnalyzeOptions(figures=False))
    try:  # analyze's summary: the indices at the file's ED/ES frames, and its warnings
        summary, warnings = clinical_summary(segmentation.labels, image_case, segmentation.confidence)
        indices = summary["indices"]
    except ValueError as error:  # e.g. no LV in any frame: analyze stops with this line
        indices = indices_dict(segmentation.labels, case.spacing, case.ed_frame, case.es_frame)
        warnings = [str(error)]
    return {**{k: float(indices[k]) if indices[k] is not None else math.nan for k in INDICES}, "warnings": warnings}


def run_patient(folder: Path, methods: dict[str, Any], seg_model, seg_cfg, acceleration: float,
                coils: int, recon_seg: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """{"patient", "truth", "fully_sampled", method: {indices..., "psnr_db", "seconds_per_slice"}};
    ``recon_seg``: (model, config) of the segmenter for the reconstructions (None: ``seg_model``)."""
    recon_model, recon_cfg = recon_seg if recon_seg is not None else (seg_model, seg_cfg)
    case = read_acdc(folder)
    magnitude = np.abs(case.image).astype(np.float32)  # (S, T, H, W)
    truth = indices_dict(case.labels, case.spacing, case.ed_frame, case.es_frame)
    record: dict[str, Any] = {"patient": folder.name, "shape": list(magnitude.shape),
                              "truth": {k: float(truth[k]) for k in INDICES},
                              "fully_sampled": ef_of(magnitude, case, seg_model, seg_cfg)}
    data_range = float(magnitude.max())
    for name, method in methods.items():
        recon, seconds = reconstruct_slices(magnitude, method, acceleration, range(len(magnitude)), coils)
        quality = float(np.mean([psnr(torch.from_numpy(recon[s]), torch.from_numpy(magnitude[s]), data_range)
                                 for s in range(magnitude.shape[0])]))
        record[name] = {**ef_of(recon, case, recon_model, recon_cfg), "psnr_db": quality,
                        "seconds_per_slice": seconds}
    return record


def summarize(records: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Per method: agreement of each index with the fully sampled images' and with the truth;
    mean PSNR and seconds per slice. The fully sampled row: agreement with the truth."""
    out: dict[str, Any] = {"fully_sampled": {"vs_truth": {
        k: agreement(np.array([r["fully_sampled"][k] for r in records]), np.array([r["truth"][k] for r in records]))
        for k in INDICES}}}
    for name in names:
        pred = {k: np.array([r[name][k] for r in records]) for k in INDICES}
        out[name] = {
            "vs_fully_sampled": {k: agreement(pred[k], np.array([r["fully_sampled"][k] for r in records]))
                                 for k in INDICES},
            "vs_truth": {k: agreement(pred[k], np.array([r["truth"][k] for r in records])) for k in INDICES},
            "psnr_db": float(np.mean([r[name]["psnr_db"] for r in records])),
            "seconds_per_slice": float(np.mean([r[name]["seconds_per_slice"] for r in records])),
            "warned": [r["patient"] for r in records if r[name].get("warnings")],
            "lv_ef_vs_fully_sampled_unwarned": agreement(
                *(np.array([r[key]["lv_ef_pct"] for r in records if not r[name].get("warnings")])
                  for key in (name, "fully_sampled"))),
        }
    return out


def markdown(summary: dict[str, Any], names: list[str]) -> str:
    def f(x: float, spec: str) -> str:
        return "—" if x is None or not math.isfinite(x) else format(x, spec)

    lines = ["| images | PSNR dB | s / slice | LV EF vs fully sampled: MAE, bias ± sd | LV ESV vs fully sampled "
             "(ml): bias ± sd | LV EF vs truth: MAE, bias ± sd |", "|---|---:|---:|---|---|---|"]
    full = summary["fully_sampled"]["vs_truth"]["lv_ef_pct"]
    lines.append(f"| fully sampled | – | – | – | – | {f(full['mae'], '.1f')}, {f(full['bias'], '+.1f')} ± "
                 f"{f(full['sd'], '.1f')} |")
    for name in names:
        s = summary[name]
        ef, esv, truth = s["vs_fully_sampled"]["lv_ef_pct"], s["vs_fully_sampled"]["lv_esv_ml"], \
            s["vs_truth"]["lv_ef_pct"]
        lines.append(f"| {name} | {f(s['psnr_db'], '.2f')} | {f(s['seconds_per_slice'], '.2f')} | "
                     f"{f(ef['mae'], '.1f')}, {f(ef['bias'], '+.1f')} ± {f(ef['sd'], '.1f')} | "
                     f"{f(esv['bias'], '+.1f')} ± {f(esv['sd'], '.1f')} | "
                     f"{f(truth['mae'], '.1f')}, {f(truth['bias'], '+.1f')} ± {f(truth['sd'], '.1f')} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"ACDC training folder (default {DEFAULT_DATA})")
    parser.add_argument("--split", type=Path, help="split file whose 'val' ACDC patients are run")
    parser.add_argument("--patients", nargs="+", help="patients to run instead of the split's val ones")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["model", "zero_filled"])
    parser.add_argument("--recon-checkpoint", type=Path, default=WEIGHTS / "recon_default.pt")
    parser.add_argument("--seg-checkpoint", type=Path, default=WEIGHTS / "seg_default.pt")
    parser.add_argument("--recon-seg-checkpoint", type=Path, default=None,
                        help="segmenter of the reconstructions (default: --seg-checkpoint)")
    parser.add_argument("--coils", type=int, default=1, help="1: single-coil (default); N: N simulated coils")
    parser.add_argument("--acceleration", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder (the ACDC training set is expected at {DEFAULT_DATA})")
    args.patients = chosen_patients(parser, args.patients, args.split, args.data)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    seg_model, seg_cfg = load_segmenter(args.seg_checkpoint)
    recon_seg = load_segmenter(args.recon_seg_checkpoint) if args.recon_seg_checkpoint is not None else None
    recon = load_reconstructor(args.recon_checkpoint) if "model" in args.methods else None
    methods = {name: slice_method(name, recon) for name in args.methods}
    machine = machine_info(args.threads)
    start = time.perf_counter()
    records = []
    for patient in args.patients:
        record = run_patient(args.data / patient, methods, seg_model, seg_cfg, args.acceleration, args.coils,
                             recon_seg)
        records.append(record)
        row = ", ".join(f"{n} {record[n]['lv_ef_pct']:.1f}" for n in args.methods)
        print(f"{patient}: LV EF truth {record['truth']['lv_ef_pct']:.1f}, fully sampled "
              f"{record['fully_sampled']['lv_ef_pct']:.1f}, {row}", file=sys.stderr, flush=True)
    summary = summarize(records, list(args.methods))
    table = markdown(summary, list(args.methods))
    print(table)
    for name in args.methods:
        unwarned = summary[name]["lv_ef_vs_fully_sampled_unwarned"]
        print(f"{name}: analyze warns for {len(summary[name]['warned'])} patient(s) {summary[name]['warned']}; "
              f"LV EF vs fully sampled over the others: MAE {unwarned['mae']:.1f}, n {unwarned['n']}")
    write_json({"benchmark": "recon_ef_real", "command": " ".join([Path(sys.executable).name] + sys.argv),
                "machine": {**machine, "total_wall_s": time.perf_counter() - start,
                            "load_average_end": list(os.getloadavg())},
                "setup": {"data": str(args.data), "patients": args.patients, "coils": args.coils,
                          "acceleration": args.acceleration, "recon_checkpoint": str(args.recon_checkpoint),
                          "seg_checkpoint": str(args.seg_checkpoint),
                          "recon_seg_checkpoint": str(args.recon_seg_checkpoint or args.seg_checkpoint),
                          "ed_es": "the frames of Info.cfg"},
                "summary": summary, "per_patient": records, "markdown": table}, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
