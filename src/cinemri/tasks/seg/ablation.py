"""``cinemri seg ablate``: models x losses x augmentation on/off with equal budgets.

Every variant is the base experiment with its ``model`` section, its ``loss`` section and
``augment.enabled`` replaced; all share ``train`` (epochs, steps per epoch, batch size, LR,
``time_budget_min``: equal wall time) and the data split. Each trains into ``OUT/<model>-<loss>-<aug|noaug>/`` and is scored on the
validation cases (3D Dice per structure at ED and ES, HD95); ``result.json`` marks it done.
A rerun skips done variants and resumes an unfinished one from its ``last.pt``
(:func:`cinemri.tasks.ablation.run_variants`, shared with the reconstruction ablation).
Outputs: ``ablation.md`` (table), ``ablation.json``, ``ablation.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cinemri.files import atomic_write, atomic_write_text, check_output_dir, write_json
from cinemri.labels import STRUCTURES
from cinemri.seg.config import SegExperiment
from cinemri.tasks.ablation import run_variants, shared_budget
from cinemri.tasks.seg.evaluate import evaluate
from cinemri.tasks.seg.task import train
from cinemri.train import build, config_to_dict, load_config


@dataclass
class AblationSection:
    """``models``: label -> a model section ({name, args}); ``losses``: label -> a loss
    section; ``augment``: the augmentation settings to try; ``eval_max_cases``: validation
    cases scored per variant (null = all)."""

    models: dict[str, dict[str, Any]] = field(default_factory=lambda: {"unet": {"name": "unet"}})
    losses: dict[str, dict[str, Any]] = field(default_factory=lambda: {"ce": {"kind": "ce"}, "dice": {"kind": "dice"},
                                                                       "combined": {"kind": "combined"}})
    augment: list[bool] = field(default_factory=lambda: [True, False])
    eval_max_cases: int | None = None


@dataclass
class AblationExperiment(SegExperiment):
    ablation: AblationSection = field(default_factory=AblationSection)


def variants(cfg: AblationExperiment, out: Path) -> dict[str, SegExperiment]:
    """label -> the experiment of every (model, loss, augment) combination (validated now)."""
    raw = config_to_dict(cfg)
    section = raw.pop("ablation")
    found = {}
    for model_label, model in section["models"].items():
        for loss_label, loss in section["losses"].items():
            for augment in section["augment"]:
                label = f"{model_label}-{loss_label}-{'aug' if augment else 'noaug'}"
                variant = json.loads(json.dumps(raw))
                variant["model"], variant["loss"] = model, loss
                variant["augment"]["enabled"] = augment
                variant["train"]["out_dir"] = str(out / label)
                found[label] = build(SegExperiment, variant, source=f"ablation variant {label}")
    return found


def ablate(files: Sequence[str], out_dir: str | Path, overrides: Sequence[str] = ()) -> str:
    """Run (or resume) the ablation; returns the Markdown table (also in ``ablation.md``).

    ``out_dir`` is checked before any work (:func:`cinemri.files.check_output_dir`); every file
    is written atomically, JSON with NaN/inf as null (:func:`cinemri.files.write_json`).
    """
    out = check_output_dir(out_dir)
    cfg = load_config(AblationExperiment, files, overrides)
    out.mkdir(parents=True, exist_ok=True)

    def run(label: str, variant: SegExperiment, resume: Path | None) -> dict[str, Any]:
        start = time.perf_counter()
        fit_result = train(variant, resume=resume)
        seconds = time.perf_counter() - start
        checkpoint = fit_result.best_checkpoint or fit_result.last_checkpoint
        summary = evaluate(checkpoint, split="val", max_cases=cfg.ablation.eval_max_cases)
        scores = summary["phases"]["all"]
        row = {k: scores[k]["mean"] for k in ("dice_rv", "dice_myo", "dice_lv", "dice_mean",
                                              "hd95_rv_mm", "hd95_myo_mm", "hd95_lv_mm")}
        row.update(params=sum(p.numel() for p in fit_result.model.parameters()), train_seconds=seconds,
                   epochs=fit_result.epochs_completed, cases=len(summary["cases"]))
        return row

    results = run_variants(variants(cfg, out), run)
    table = budget_line(cfg) + "\n\n" + markdown_table(results)
    atomic_write_text(out / "ablation.md", table + "\n")
    write_json(results, out / "ablation.json")
    _plot(results, out / "ablation.png")
    return table


def budget_line(cfg: AblationExperiment) -> str:
    """The budget every variant shared, in words."""
    return f"Same budget for every variant: {shared_budget(cfg.train)}; scored on the validation cases."


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per variant: Dice RV/MYO/LV/mean (3D, ED and ES pooled), HD95 mean (mm), params, time."""
    lines = ["| variant | Dice RV | Dice MYO | Dice LV | Dice mean | HD95 mean (mm) | params | train time (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, r in results.items():
        hd = [r[f"hd95_{s}_mm"] for s in STRUCTURES if isinstance(r[f"hd95_{s}_mm"], (int, float))]
        hd_text = f"{sum(hd) / len(hd):.2f}" if hd else "n/a"
        lines.append(f"| {label} | {r['dice_rv']:.3f} | {r['dice_myo']:.3f} | {r['dice_lv']:.3f} | "
                     f"{r['dice_mean']:.3f} | {hd_text} | {r['params']:,} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def _plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(labels) + 2), 3.2))
    ax.bar(range(len(labels)), [results[k]["dice_mean"] for k in labels])
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="mean 3D Dice (val)", ylim=(0, 1))
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    plt.close(fig)
