"""Reconstruction quality on real anatomy at 5x: ACDC patient090's 4D cine by default, or any
cine the project reads (``--data``: an ACDC or M&Ms case, a DICOM cine folder, a NIfTI cine).

    .venv/bin/python benchmarks/recon_real_anatomy.py                 # all 7 slices
    .venv/bin/python benchmarks/recon_real_anatomy.py --slices 3      # one slice
    .venv/bin/python benchmarks/recon_real_anatomy.py --checkpoint runs/recon/cascade_unet3d_cbam/best.pt
    .venv/bin/python benchmarks/recon_real_anatomy.py --coils 8       # simulated 8-coil k-space
    .venv/bin/python benchmarks/recon_real_anatomy.py --data ../shared/data/sunnybrook/SCD0000401

Simulation (``cinemri.data.simulate.undersampled_slice``): every slice of the cine (magnitude)
becomes k-space, undersampled by
``cartesian_mask(T, W, 5, 8, "vd_random", seed=slice index)`` (the defaults of
``cinemri.masks.MaskOptions``) along W (patient090: the NIfTI's second in-plane axis, 224
lines). ``--coils 1`` (default): single-coil ``fft2c(|image|)`` (zero phase; coil map of ones).
``--coils N``: the magnitude times a smooth random phase, then N coils of the ``ring`` layout of
``cinemri.data.simulate`` (both drawn with seed = slice index), ``sense_forward``; every method
gets the true maps. No noise is added beyond what the magnitude images hold.

Methods: zero-filled (``cinemri.recon.zero_filled``); ``cs_tv`` with its defaults (temporal
TV, lambda_t 0.003, 50 iterations) and with spatial TV added (lambda_s ``--lambda-s``);
BART ``pics -S -R T:1024:0:0.01 -i 50 -p <mask>`` when ``bart`` is on PATH (k-space laid out
as BART's [x, y, z, coil, ..., time at dim 10], so T:1024 is TV along time; ``-S`` returns
the image in the input's units instead of pics' internal scale, which the PSNR needs and
which does not change the solution; its zero-filled image is checked against ours first);
the trained cascade of ``--checkpoint`` as inference runs it (its denoisers under bf16 autocast on a
CPU with native bf16, else fp32: ``train.engine.resolve_amp``), and in fp32 beside it where that differs
(k-space divided by the 99th percentile of the
zero-filled magnitude as ``ReconDataset`` does, the output multiplied back).

Metrics (cinemri.metrics): PSNR and SSIM of magnitudes against the fully sampled magnitude,
data range = max of the reference over the whole volume (all slices and frames), all
frames, no crop; the mean over slices. Beside them, the CMRxRecon convention
(``cmrxrecon_scores``: every frame divided by its own max, central H/3 x W/2 crop). Time: seconds per slice on this machine with
``--threads`` torch/BART threads (BART: the ``bart pics`` process's wall time).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _paths import PATIENT090, REPO
import bart
from cinemri.data.simulate import undersampled_slice
from cinemri.files import write_json
from cinemri.io import read_any
from cinemri.masks import MaskOptions
from cinemri.metrics import cmrxrecon_scores, psnr, ssim
from cinemri.pipeline.recon_set import cascade_slice_method
from cinemri.recon import cs_tv, zero_filled
from cinemri.recon.inference import load_reconstructor
from recon_speed import machine_info

DEFAULT_DATA = PATIENT090
DEFAULT_OUT = REPO / "benchmarks" / "results" / "recon_real_anatomy.json"
LAMBDA_S = 0.0005  # spatial-TV weight of the "+spatial" variant (cs_tv's docstring value)


def cascade_method(checkpoint: Path, fp32: bool = False, channels_last: bool | None = None,
                   init_iters: int | None = None):
    """The trained cascade as a (kspace, mask, maps) -> image function, p99-normalised, and the
    precision of its denoisers ("bf16" or "fp32"): the one inference gives them on this machine,
    or fp32 with ``fp32`` (DC and FFTs stay fp32 either way, as in training);
    ``channels_last``: the denoisers' memory layout (None: what inference chooses);
    ``init_iters``: iterations of its CS-TV start (None: the checkpoint's)."""
    loaded = load_reconstructor(checkpoint, channels_last=channels_last)
    if init_iters is not None:
        loaded.model.init_iters = init_iters
    autocast = None if fp32 else loaded.autocast
    return cascade_slice_method(loaded.model, autocast), "bf16" if autocast is torch.bfloat16 else "fp32"


def bart_method(threads: int):
    """BART pics as a (kspace, mask, maps) -> image function; records its own process time."""
    seconds: list[float] = []

    def run(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        image, sec = bart.pics(kspace[0].numpy(), maps[0].numpy(), mask[0, 0, :, 0, :].numpy(), threads=threads)
        seconds.append(sec)
        return torch.from_numpy(image)[None]

    return run, seconds


def markdown(summary: dict[str, dict]) -> str:
    lines = ["| method | PSNR dB | SSIM | CMRxRecon PSNR dB | CMRxRecon SSIM | s / slice |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['psnr_mean']:.2f} | {s['ssim_mean']:.4f} | {s['cmrx_psnr_mean']:.2f} | "
                     f"{s['cmrx_ssim_mean']:.4f} | {s['seconds_mean']:.2f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring for the exact protocol.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"a cine the project reads: ACDC patient folder, DICOM folder, ... (default {DEFAULT_DATA})")
    parser.add_argument("--coils", type=int, default=1, help="1: single-coil (default); N: N simulated coils")
    parser.add_argument("--slices", type=int, nargs="+", help="slice indices (default: all)")
    parser.add_argument("--acceleration", type=float, default=MaskOptions.acceleration)
    parser.add_argument("--lambda-s", type=float, default=LAMBDA_S, help="spatial TV of the cs_tv+spatial row")
    parser.add_argument("--threads", type=int, default=2, help="torch and BART threads (default 2)")
    parser.add_argument("--checkpoint", type=Path, help="also run the trained cascade of this checkpoint")
    parser.add_argument("--no-bart", action="store_true", help="skip BART even when it is installed")
    parser.add_argument("--layouts", action="store_true",
                        help="also time the cascade in both memory layouts of its denoisers")
    parser.add_argument("--init-iters", type=int, nargs="+",
                        help="also run the cascade with its CS-TV start at these iteration counts "
                             "(the start is not a weight: the same weights, another starting image)")
    parser.add_argument("--no-cs", action="store_true",
                        help="skip the two cs_tv rows (slow; the same slices, masks and coils give the same figures)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"--data {args.data} does not exist (the shared data is not on this machine?)")
    if args.coils < 1:
        parser.error(f"--coils must be >= 1, got {args.coils}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.init_iters and (args.checkpoint is None or min(args.init_iters) < 1):
        parser.error("--init-iters needs --checkpoint and counts >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    info["bart"] = bart.version()
    case = read_any(args.data)
    volume = np.abs(case.image).astype(np.float32)  # (S, T, H, W) magnitude
    data_range = float(volume.max())  # whole volume, all slices and frames
    slices = args.slices if args.slices is not None else list(range(volume.shape[0]))
    if any(not 0 <= s < volume.shape[0] for s in slices):
        raise SystemExit(f"error: --slices {slices} outside 0..{volume.shape[0] - 1}")

    methods = {"zero-filled": zero_filled}
    if not args.no_cs:
        methods["cs_tv (temporal TV, defaults)"] = cs_tv
        methods[f"cs_tv + spatial TV (lambda_s {args.lambda_s:g})"] = lambda k, m, s: cs_tv(k, m, s, lambda_s=args.lambda_s)
    bart_seconds: list[float] = []
    use_bart = bart.available() and not args.no_bart
    if use_bart:
        methods["BART pics -R T:1024:0:0.01 -i 50"], bart_seconds = bart_method(args.threads)
    if args.checkpoint is not None:
        name = f"trained cascade ({args.checkpoint.name}"
        method, precision = cascade_method(args.checkpoint)
        methods[f"{name}, {precision})"] = method
        if precision != "fp32":
            methods[f"{name}, fp32)"] = cascade_method(args.checkpoint, fp32=True)[0]
        for iters in args.init_iters or []:
            methods[f"{name}, {precision}), {iters} start iterations"] = cascade_method(
                args.checkpoint, init_iters=iters)[0]
        if args.layouts:  # the inference default against the other memory layout, side by side
            for on in (False, True):
                methods[f"{name}, {precision}), {'channels-last' if on else 'NCDHW'}"] = cascade_method(
                    args.checkpoint, channels_last=on)[0]

    per_slice: dict[str, list[dict]] = {name: [] for name in methods}
    layout_check = []
    for s in slices:
        kspace, mask, maps = undersampled_slice(volume[s], args.acceleration, seed=s, coils=args.coils)
        reference = volume[s]  # (T, H, W)
        if use_bart:  # BART's zero-filled image must equal ours if the layout is right
            ours = zero_filled(kspace, mask, maps)[0].numpy()
            theirs = bart.zero_filled(kspace[0].numpy(), maps[0].numpy(), threads=args.threads)
            layout_check.append(float(np.abs(ours - theirs).max() / np.abs(ours).max()))
        for name, method in methods.items():
            start = time.perf_counter()
            image = method(kspace, mask, maps)[0]  # (T, H, W) complex64
            seconds = time.perf_counter() - start
            if name.startswith("BART"):
                seconds = bart_seconds[-1]
            cmrx = cmrxrecon_scores(image, torch.from_numpy(reference))
            per_slice[name].append({"slice": s, "psnr": psnr(image, reference, data_range),
                                    "ssim": ssim(image, reference, data_range), "cmrx_psnr": cmrx["psnr"],
                                    "cmrx_ssim": cmrx["ssim"], "seconds": seconds})
            print(f"slice {s} {name}: {per_slice[name][-1]['psnr']:.2f} dB, {seconds:.2f} s",
                  file=sys.stderr, flush=True)

    summary = {name: {key + "_mean": float(np.mean([r[key] for r in rows])) for key in ("psnr", "ssim", "cmrx_psnr", "cmrx_ssim", "seconds")}
               for name, rows in per_slice.items()}
    table = markdown(summary)
    print(table)
    info["load_average_1_5_15_end"] = list(os.getloadavg())
    result = {
        "benchmark": "recon_real_anatomy", "command": " ".join([Path(sys.executable).name] + sys.argv),
        "machine": info,
        "setup": {"data": str(args.data), "shape_STHW": list(volume.shape), "slices": slices,
                  "acceleration": args.acceleration, "mask": f"cartesian_mask(T, W, R, {MaskOptions.center_lines}, {MaskOptions.pattern!r}, "
                  "seed=slice index)",
                  "coils": ("single coil, maps of ones, k-space = fft2c(|image|)" if args.coils == 1 else
                            f"{args.coils} simulated ring coils and smooth phase (seed = slice index), true maps"),
                  "cmrxrecon_metrics": "each frame / its own max, central H/3 x W/2, data range 1",
                  "metrics": "magnitude; data range = max of the reference over the whole volume "
                  f"({data_range:g}); all frames; no crop; mean over slices",
                  "bart_command": "pics -S -R T:1024:0:0.01 -i 50 -p <mask> (dims [H, W, 1, C, ..., T at dim 10])",
                  "bart_zero_filled_max_rel_diff": max(layout_check) if layout_check else None},
        "summary": summary, "per_slice": per_slice, "markdown": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out)  # NaN as null, atomically
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
