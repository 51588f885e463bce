"""Figures of the digital phantom for docs/phantom.md and the README.

    .venv/bin/python docs/figures/phantom_figures.py

Writes docs/figures/phantom_groups.png (one case per group: ED, ES, zero-filled 5x at ED,
labels at ED) and docs/figures/phantom_montage.png (cinemri.report.slice_montage of a NOR case),
and prints the zero-filled PSNR of each case.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cinemri.masks import MaskOptions, cartesian_mask  # noqa: E402
from cinemri.metrics import psnr  # noqa: E402
from cinemri.phantom import GROUPS, generate_case, simulate_kspace  # noqa: E402
from cinemri.physics import sense_adjoint  # noqa: E402
from cinemri.report import slice_montage  # noqa: E402

OUT = Path(__file__).parent


def main() -> None:
    fig, axes = plt.subplots(len(GROUPS), 4, figsize=(10, 2.6 * len(GROUPS)))
    for row, group in enumerate(GROUPS):
        case = generate_case(100 + row, group=group)
        s = case.num_slices // 2
        masks = MaskOptions()  # the project's default 5x vd_random mask, 8 centre lines
        mask = cartesian_mask(case.num_frames, case.image.shape[-1], masks.acceleration, masks.center_lines,
                              masks.pattern, seed=row)  # (T, W)
        kspace = simulate_kspace(case, seed=row)  # (S, C, T, H, W) fully sampled + noise
        maps = torch.from_numpy(case.coil_maps)
        full = sense_adjoint(torch.from_numpy(kspace), maps)            # (S, T, H, W) noisy reference
        zero_filled = sense_adjoint(torch.from_numpy(kspace), maps, mask)  # (S, T, H, W)
        value = psnr(zero_filled.flatten(0, 1), full.flatten(0, 1))  # (S*T, H, W), range = case max
        print(f"{group}: zero-filled 5x PSNR {value:.1f} dB, indices {case.indices}")
        vmax = np.percentile(full[s].abs().numpy(), 99.5)
        panels = [(full[s, case.ed_frame].abs(), "ED"), (full[s, case.es_frame].abs(), f"ES (t={case.es_frame})"),
                  (zero_filled[s, case.ed_frame].abs(), f"zero-filled 5x ({value:.1f} dB)"),
                  (case.labels[s, case.ed_frame], "labels ED")]
        for col, (image, title) in enumerate(panels):
            ax = axes[row, col]
            if col == 3:
                ax.imshow(image, cmap="viridis", vmin=0, vmax=3, interpolation="nearest")
            else:
                ax.imshow(image, cmap="gray", vmin=0, vmax=vmax)
            ax.set_title(f"{group} · {title}" if col == 0 else title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "phantom_groups.png", dpi=80)
    slice_montage(generate_case(100, group="NOR"), OUT / "phantom_montage.png", crop_to_heart=True)


if __name__ == "__main__":
    main()
