"""Figures of ``cinemri seg grad-analysis`` from its numbers (matplotlib, Agg, small PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cinemri.files import atomic_write  # noqa: E402
from cinemri.labels import CLASS_NAMES  # noqa: E402

LOSSES = ("ce", "dice", "combined")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    plt.close(fig)
    return path


def write_figures(numbers: dict[str, Any], out: Path) -> list[Path]:
    """Four PNGs in ``out``: background fraction, per-class magnitude, Dice stability, schedules."""
    points = numbers["points"]
    epochs = [p["epoch"] for p in points]
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, title in ((axes[0], "bg_fraction_l1", "L1 share from background"),
                           (axes[1], "bg_fraction_l2sq", "squared-L2 share from background")):
        for loss in LOSSES:
            ax.plot(epochs, [p[loss][key] for p in points], marker="o", label=loss)
        ax.plot(epochs, [p["ce"]["bg_pixel_fraction"] for p in points], "k--", label="bg pixel share")
        ax.set(xlabel="epoch (0 = init)", ylabel="fraction of |dL/dz|", title=title, ylim=(0, 1.02))
    axes[0].legend(fontsize=8)
    paths.append(_save(fig, out / "grad_background_fraction.png"))

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, loss in zip(axes, ("ce", "dice")):
        for point, style in ((points[0], "o-"), (points[-1], "s--")):
            ax.semilogy(CLASS_NAMES, [point[loss].get(f"mean_l1_{c}", float("nan")) for c in CLASS_NAMES], style,
                        label=f"epoch {point['epoch']}")
        ax.set(title=f"{loss}: mean |dL/dz_i| per pixel", xlabel="pixel class")
        ax.legend(fontsize=8)
    paths.append(_save(fig, out / "grad_per_class.png"))

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for loss in ("ce", "dice"):
        axes[0].plot(epochs, [p[loss]["param"]["mean_cosine"] for p in points], marker="o", label=loss)
        axes[1].semilogy(epochs, [p[loss]["param"]["mean_norm"] for p in points], marker="o", label=loss)
    axes[0].set(xlabel="epoch (0 = init)", title="cosine of dL/dtheta across batches")
    axes[1].set(xlabel="epoch (0 = init)", title="|dL/dtheta| (mean over batches)")
    axes[0].legend(fontsize=8)
    paths.append(_save(fig, out / "grad_dice_stability.png"))

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for name, values in numbers["schedules"].items():
        axes[0].plot(range(len(values)), values, label=name)
    history = numbers["history"]
    if history and "train_w_ce" in history[0]:
        axes[0].plot([h["epoch"] - 1 for h in history], [h["train_w_ce"] for h in history], "k-o",
                     label=f"run ({numbers['config']['schedule']})")
    axes[0].plot(epochs, [p["adaptive_target_w"] for p in points], "r:", marker="x", label="w* = n_D/(n_CE+n_D)")
    axes[0].set(xlabel="epoch", ylabel="CE weight w", title="combined-loss weight", ylim=(0, 1.02))
    axes[0].legend(fontsize=7)
    for loss in ("ce", "dice"):
        axes[1].semilogy(epochs, [p[loss]["norm_l2"] for p in points], marker="o", label=f"|d{loss}/dz|")
    axes[1].semilogy(epochs, [p["w"] * p["ce"]["norm_l2"] for p in points], "--", label="w |dCE/dz|")
    axes[1].semilogy(epochs, [(1 - p["w"]) * p["dice"]["norm_l2"] for p in points], "--", label="(1-w) |dDice/dz|")
    axes[1].set(xlabel="epoch (0 = init)", title="logit-gradient norms")
    axes[1].legend(fontsize=7)
    paths.append(_save(fig, out / "grad_schedules.png"))
    return paths
