"""Ablation: train every variant of a config with the same budget, evaluate, tabulate, plot.

The config's ``ablation.variants`` maps a variant name to its overrides
(``"section.key=value"``, applied after the config files and the command-line overrides).
Variants may change the model, the loss and the optimiser settings, never the training
budget or the data: overrides of ``train.epochs``, ``train.max_steps_per_epoch``,
``train.batch_size``, ``train.time_budget_min``, ``train.out_dir`` or ``data.*`` are refused.
With ``train.time_budget_min`` every variant trains for the same wall time (each completes
its LR schedule in it; faster variants take more steps). Each variant trains in
``<out>/<name>/`` (resuming from its ``last.pt`` when interrupted) and is scored on
``ablation.eval_split`` from its last checkpoint; every variant's config and denoiser
options are checked before the first one trains; ``<out>/<name>/result.json`` marks it
done, so a rerun skips it. Zero filling and CS-TV are scored once, with the first variant's
evaluation (same cases and masks), into ``<out>/baselines.json``. The train / done-marker /
resume loop is :func:`cinemri.tasks.ablation.run_variants`, shared with the segmentation ablation.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cinemri.files import atomic_write, atomic_write_text, check_output_dir, write_json
from cinemri.recon import build_denoiser
from cinemri.recon.config import load_recon_config
from cinemri.tasks.ablation import run_variants, shared_budget
from cinemri.tasks.recon.evaluate import EvalOptions, evaluate
from cinemri.tasks.recon.task import ReconTask
from cinemri.train import fit

FIXED_KEYS = ("train.epochs", "train.max_steps_per_epoch", "train.batch_size", "train.out_dir", "train.time_budget_min")
FIXED_SECTIONS = ("data.", "ablation.")
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


def check_variants(variants: dict[str, list[str]]) -> None:
    """ValueError naming the variant whose name or overrides break the equal-budget rule."""
    if not variants:
        raise ValueError("ablation.variants is empty; list {name: [overrides]} in the config")
    for name, overrides in variants.items():
        if not _NAME.fullmatch(name):
            raise ValueError(f"ablation variant name {name!r} must use only letters, digits and _ . + -")
        for override in overrides:
            key = override.partition("=")[0].strip()
            if key in FIXED_KEYS or key.startswith(FIXED_SECTIONS):
                raise ValueError(f"ablation variant {name!r}: override {override!r} would change the training "
                                 "budget or the data; set it for all variants (config or --set)")


def _train_seconds(metrics_csv: Path) -> float:
    """Sum of the per-epoch ``time_s`` column of an engine metrics file."""
    with open(metrics_csv, newline="") as handle:
        return float(sum(float(row["time_s"]) for row in csv.DictReader(handle) if row.get("time_s")))


def _train_steps(metrics_csv: Path) -> int | None:
    """The optimizer steps a run took: the last ``step`` of an engine metrics file (None without one)."""
    if not metrics_csv.is_file():
        return None
    with open(metrics_csv, newline="") as handle:
        steps = [int(float(row["step"])) for row in csv.DictReader(handle) if row.get("step")]
    return steps[-1] if steps else None


def ablate(files: str | os.PathLike | Sequence[str | os.PathLike], out_dir: str | os.PathLike,
           overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run every variant of the config (see the module docstring); write the table and plot.

    Writes ``<out>/ablation.md`` (Markdown table), ``<out>/ablation.json`` and
    ``<out>/ablation.png`` (PSNR and SSIM bars, mean ± std over the evaluated cases).
    returns {"variants": {name: row}, "baselines": {...}, "table": path, "plot": path}.

    ``out_dir`` is checked before any work (:func:`cinemri.files.check_output_dir`); JSON files
    hold NaN as null (:func:`cinemri.files.write_json`).

    Raises:
        ValueError: a bad config, an empty or budget-changing variant list, missing data, an
            ``out_dir`` that is a file; OSError: ``out_dir`` cannot be written.
    """
    out = check_output_dir(out_dir)
    config = load_recon_config(files, overrides)
    check_variants(config.ablation.variants)
    configs = {}  # every variant checked before anything trains
    for name, variant in config.ablation.variants.items():
        configs[name] = load_recon_config(files, [*overrides, *variant, f"train.out_dir={out / name}"])
        build_denoiser(configs[name].model.denoiser, configs[name].model.denoiser_options)
    baselines_path = out / "baselines.json"

    def run(name: str, cfg: Any, resume: Path | None) -> dict[str, Any]:
        fit(ReconTask(cfg), cfg, resume=resume)
        last = Path(cfg.train.out_dir) / cfg.train.last_name
        with_baselines = not baselines_path.is_file()
        options = EvalOptions(split=cfg.ablation.eval_split, max_cases=cfg.ablation.max_eval_cases,
                              max_slices_per_case=cfg.data.max_slices_per_case, cs=with_baselines,
                              cs_iters=cfg.ablation.cs_iters, figures=with_baselines)
        scores = evaluate(last, cfg.data.root, out_dir=Path(cfg.train.out_dir) / "eval", options=options)
        if with_baselines:
            write_json({k: v for k, v in scores["methods"].items() if k != "model"}, baselines_path)
        model = scores["methods"]["model"]
        return {"overrides": list(config.ablation.variants[name]), "params": model["params"],
                "train_seconds": _train_seconds(Path(cfg.train.out_dir) / cfg.train.metrics_name),
                "seconds_per_slice": model["seconds_per_slice"], "summary": model["summary"],
                "cases": len(scores["cases"])}

    rows = run_variants(configs, run)
    for name, row in rows.items():  # read back from each run's metrics, finished earlier or now
        row["steps"] = _train_steps(Path(configs[name].train.out_dir) / configs[name].train.metrics_name)
    baselines = json.loads(baselines_path.read_text()) if baselines_path.is_file() else {}
    table = out / "ablation.md"
    atomic_write_text(table, markdown_table(rows, baselines, config))
    plot = ablation_plot(rows, baselines, out / "ablation.png")
    result = {"variants": rows, "baselines": baselines, "table": str(table), "plot": str(plot)}
    write_json(result, out / "ablation.json")
    return result


def _number(value: float | None) -> float:
    """A summary value as a float: null (how JSON files hold NaN) is NaN."""
    return math.nan if value is None else float(value)


def _pm(summary: dict[str, float], digits: int) -> str:
    mean, std = _number(summary["mean"]), _number(summary["std"])
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if math.isfinite(std) else f"{mean:.{digits}f}"


def _worst(summary: dict[str, Any]) -> str:
    """The worst-phase PSNR cell ("–" for rows scored before that metric existed)."""
    return _pm(summary["psnr_worst_frame"], 2) if "psnr_worst_frame" in summary else "–"


def markdown_table(rows: dict[str, dict[str, Any]], baselines: dict[str, Any], config: Any) -> str:
    """The ablation as a Markdown table (mean ± std over cases), with the shared budget stated."""
    d = config.data
    lines = [
        "# Reconstruction ablation",
        "",
        f"Same budget for every variant: {shared_budget(config.train)}; data {d.root} "
        f"(train cases {d.max_train_cases or 'all'}, slices/case {d.max_slices_per_case or 'all'}), "
        f"R = {d.acceleration:g} {d.pattern}. Scored on split '{config.ablation.eval_split}': magnitude, "
        "data range = max of the reference case, SSIM = mean of per-frame 2D SSIMs (7x7), all frames; "
        "worst phase = the lowest PSNR of one frame of the case (usually end systole).",
        "",
        "| variant | overrides | params | train time (s) | steps | inference (s/slice) | PSNR (dB) | SSIM | NMSE "
        "| worst phase PSNR (dB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, base in baselines.items():
        s = base["summary"]
        lines.append(f"| {name} | – | – | – | – | {base['seconds_per_slice']:.3f} | {_pm(s['psnr'], 2)} | "
                     f"{_pm(s['ssim'], 4)} | {_pm(s['nmse'], 4)} | {_worst(s)} |")
    for name, row in rows.items():
        s = row["summary"]
        overrides = "<br>".join(f"`{o}`" for o in row["overrides"]) or "(config as is)"
        steps = row.get("steps")
        lines.append(f"| {name} | {overrides} | {row['params']:,} | {row['train_seconds']:.0f} | "
                     f"{'–' if steps is None else steps} | {row['seconds_per_slice']:.3f} | "
                     f"{_pm(s['psnr'], 2)} | {_pm(s['ssim'], 4)} | "
                     f"{_pm(s['nmse'], 4)} | {_worst(s)} |")
    return "\n".join(lines) + "\n"


def ablation_plot(rows: dict[str, dict[str, Any]], baselines: dict[str, Any], out_path: str | os.PathLike) -> Path:
    """Bar chart of PSNR and SSIM (mean ± std over cases) per variant and baseline (PNG)."""
    entries = {**{k: v["summary"] for k, v in baselines.items()}, **{k: v["summary"] for k, v in rows.items()}}
    names = list(entries)
    fig = Figure(figsize=(max(6.0, 0.6 * len(names) + 2), 6.0), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(names))
    colors = ["#999999" if n in baselines else "#0072B2" for n in names]
    for ax, metric, label in zip(axes, ("psnr", "ssim"), ("PSNR (dB)", "SSIM")):
        means = [_number(entries[n][metric]["mean"]) for n in names]
        stds = [float(np.nan_to_num(_number(entries[n][metric]["std"]))) for n in names]
        ax.bar(x, means, yerr=stds, color=colors, capsize=3)
        finite = [m for m in means if math.isfinite(m)]
        if finite:
            low = min(finite) - max(stds + [0.0]) - (1.0 if metric == "psnr" else 0.02)
            ax.set_ylim(bottom=max(0.0, low))
        ax.set_ylabel(label)
    axes[-1].set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    axes[0].set_title("mean ± std over evaluated cases (grey: baselines)", fontsize=9)
    fig.tight_layout()
    return atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png"))

