"""The tables of the equal-time segmentation comparison, from what the runs wrote.

    .venv/bin/python benchmarks/seg_compare_table.py                      # docs/benchmarks.md's tables
    .venv/bin/python benchmarks/seg_compare_table.py --runs runs/seg/compare_real --results benchmarks/results

Reads, per variant, the training record ``<runs>/<variant>/result.json`` (parameters, epochs,
training seconds; written by ``cinemri seg ablate``) and the ACDC-style scores
``<results>/seg_compare_<variant>.json`` (``cinemri seg eval --checkpoint <runs>/<variant>/best.pt
--data ACDC/training --split val --postprocess --crop-to-heart --no-flip-tta --json ...``), and for
each ensemble ``<results>/seg_ensemble_<name>.json``; prints one Markdown table per group: 3D Dice
per structure and their mean at ED and ES, mean HD95 (mm) per structure over both phases, and
LV EF agreement (mean absolute error in points, Pearson r) against the labels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cinemri.labels import STRUCTURES

REPO = Path(__file__).resolve().parents[1]
MODELS = ("unet-combined-aug", "mednext-combined-aug", "mmnet-combined-aug")
LOSSES = ("unet-ce-aug", "unet-dice-aug", "unet-combined-aug", "unet-combined_adaptive-aug")


def _scores(summary: dict) -> str:
    """Dice RV/MYO/LV/mean at ED | at ES, HD95 RV/MYO/LV (both phases), LV EF MAE and r."""
    phases = summary["phases"]
    dice = " | ".join(" / ".join(f"{phases[p][f'dice_{s}']['mean']:.3f}" for s in (*STRUCTURES, "mean"))
                      for p in ("ed", "es"))
    hd95 = " / ".join(f"{phases['all'][f'hd95_{s}_mm']['mean']:.1f}" for s in STRUCTURES)
    ef = summary["clinical"]["lv_ef_pct"]
    return f"{dice} | {hd95} | {ef['mae']:.1f} | {ef['pearson_r']:.3f}"


SCORE_COLUMNS = ("Dice ED: RV / MYO / LV / mean | Dice ES: RV / MYO / LV / mean | HD95 RV / MYO / LV (mm) "
                 "| LV EF MAE | LV EF r |")
SCORE_ALIGN = "--- | --- | --- | ---: | ---: |"


def variant_table(names: tuple[str, ...], runs: Path, results: Path, what: str) -> str:
    lines = [f"| {what} | params | epochs | train (min) | {SCORE_COLUMNS}", f"| --- | ---: | ---: | ---: | {SCORE_ALIGN}"]
    for name in names:
        trained, scored = runs / name / "result.json", results / f"seg_compare_{name}.json"
        if not (trained.is_file() and scored.is_file()):
            lines.append(f"| {name} | (not run: {trained if not trained.is_file() else scored} missing) |")
            continue
        row = json.loads(trained.read_text())
        lines.append(f"| {name} | {row['params']:,} | {row['epochs']} | {row['train_seconds'] / 60:.1f} | "
                     f"{_scores(json.loads(scored.read_text()))} |")
    return "\n".join(lines)


def ensemble_table(results: Path, reference: Path | None) -> str:
    lines = [f"| segmenter | {SCORE_COLUMNS}", f"| --- | {SCORE_ALIGN}"]
    if reference is not None and reference.is_file():
        lines.append(f"| bundled default alone | {_scores(json.loads(reference.read_text()))} |")
    for path in sorted(results.glob("seg_ensemble_*.json")):
        lines.append(f"| ensemble {path.stem.removeprefix('seg_ensemble_')} | {_scores(json.loads(path.read_text()))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "seg" / "compare_real")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--reference", type=Path, default=REPO / "benchmarks" / "results" / "seg_default_val_crop_post.json",
                        help="the bundled default's scores with the same flags (first row of the ensemble table)")
    args = parser.parse_args()
    print(variant_table(MODELS, args.runs, args.results, "architecture"), end="\n\n")
    print(variant_table(LOSSES, args.runs, args.results, "U-Net loss"), end="\n\n")
    print(ensemble_table(args.results, args.reference))


if __name__ == "__main__":
    main()
