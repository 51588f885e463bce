"""What bf16 autocast does on this CPU: fp32 against bf16, side by side in one run, for the
convolutions, the bundled cascade's inference and a segmentation training step. It shows why
``train.amp: bf16`` means bf16 only where the CPU computes in it natively
(``cinemri.train.engine.cpu_computes_bf16``: oneDNN's bf16 kernels need AVX-512 or AMX; on an
AVX2-only CPU autocast falls back to slow reference kernels).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/cpu_precision.py --out benchmarks/results/cpu_precision.json

Rows, each timed fp32 then bf16 in alternation (one warm-up call of each, median of ``--repeats``):

- conv2d / conv3d forward peak: best GFLOP/s of a 3x3(x3) C -> C convolution over a few shapes
  (``_speed.conv_peak``, the peak the step benchmarks divide by);
- cascade inference: the bundled ``recon_default.pt`` on the central ``--crop`` rows (all columns) of
  ACDC patient090's slice 3 (5x, 1 coil; a window so that the slow precision finishes in seconds),
  its denoisers under each precision (``cascade_slice_method``); the PSNR of each against the fully
  sampled window, to show that the precision changes the time, not the image;
- segmentation step: the default segmenter's U-Net (``configs/seg/default.yaml``) forward + combined
  loss + backward + AdamW on a batch of ``--seg-batch`` 128 x 128 images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from _paths import PATIENT090, REPO
from _speed import alternating, conv_peak, machine_info  # benchmarks/ is sys.path[0] as a script
from cinemri.data.simulate import undersampled_slice
from cinemri.files import write_json
from cinemri.io import read_any
from cinemri.metrics import psnr
from cinemri.pipeline.recon_set import cascade_slice_method
from cinemri.pipeline.weights import bundled_path
from cinemri.recon.inference import load_reconstructor
from cinemri.train.engine import cpu_computes_bf16, resolve_amp

DEFAULT_DATA = PATIENT090
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def cascade_rows(data: Path, crop: int, repeats: int) -> dict:
    """Inference seconds and PSNR of the bundled cascade in each precision on one window."""
    volume = np.abs(read_any(data).image).astype(np.float32)[3]  # (T, H, W)
    y0 = (volume.shape[1] - crop) // 2
    window = np.ascontiguousarray(volume[:, y0:y0 + crop])  # (T, crop, W): all phase-encode lines
    kspace, mask, maps = undersampled_slice(window, 5.0, seed=3)
    loaded = load_reconstructor(bundled_path("recon"))
    methods = {name: cascade_slice_method(loaded.model, dtype) for name, dtype in PRECISIONS.items()}
    seconds, images = alternating({name: (lambda m=m: m(kspace, mask, maps)) for name, m in methods.items()}, repeats)
    truth = torch.from_numpy(window)
    return {name: {"seconds": seconds[name], "psnr_db": psnr(images[name][0], truth)}
            for name in PRECISIONS} | {"shape": list(window.shape)}


def seg_step_rows(batch: int, repeats: int) -> dict:
    """Seconds of one training step of the default segmenter's U-Net in each precision."""
    from cinemri.seg.config import load_seg_config
    from cinemri.seg.models import build_segmenter
    from cinemri.tasks.seg.task import build_loss, supervised_loss

    cfg = load_seg_config([str(REPO / "configs" / "seg" / "default.yaml")])
    torch.manual_seed(0)
    model = build_segmenter(cfg.model.name, cfg.model.args).train()
    criterion = build_loss(cfg.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 1, 128, 128)
    labels = torch.randint(0, 4, (batch, 128, 128))

    def step(dtype: torch.dtype | None) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = supervised_loss(model(images), labels, criterion)
        loss.backward()
        optimizer.step()

    seconds, _ = alternating({name: (lambda d=d: step(d)) for name, d in PRECISIONS.items()}, repeats)
    return {name: {"seconds": seconds[name]} for name in PRECISIONS} | {"batch": [batch, 1, 128, 128]}


def markdown(result: dict) -> str:
    peak2, peak3, cascade, seg = result["conv2d_peak"], result["conv3d_peak"], result["cascade"], result["seg_step"]
    lines = [f"CPU: {result['machine']['cpu_model'] or '?'} ({result['cpu_capability']}); native bf16: "
             f"{result['cpu_computes_bf16']}; `train.amp: bf16` runs in {result['bf16_resolves_to']} here.", "",
             "| measurement | fp32 | bf16 | bf16 / fp32 time |", "| --- | ---: | ---: | ---: |",
             f"| conv2d forward peak (GFLOP/s) | {peak2['fp32_gflops']:.0f} | {peak2['bf16_gflops']:.1f} | "
             f"{peak2['fp32_gflops'] / max(peak2['bf16_gflops'], 1e-9):.1f}x |",
             f"| conv3d forward peak (GFLOP/s) | {peak3['fp32_gflops']:.0f} | {peak3['bf16_gflops']:.1f} | "
             f"{peak3['fp32_gflops'] / max(peak3['bf16_gflops'], 1e-9):.1f}x |",
             f"| bundled cascade, {cascade['shape']} window (s; PSNR dB) | {cascade['fp32']['seconds']:.2f}; "
             f"{cascade['fp32']['psnr_db']:.2f} | {cascade['bf16']['seconds']:.2f}; {cascade['bf16']['psnr_db']:.2f} | "
             f"{cascade['bf16']['seconds'] / cascade['fp32']['seconds']:.1f}x |",
             f"| seg U-Net training step, batch {seg['batch']} (s) | {seg['fp32']['seconds']:.2f} | "
             f"{seg['bf16']['seconds']:.2f} | {seg['bf16']['seconds'] / seg['fp32']['seconds']:.1f}x |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a real cine (default ACDC patient090)")
    parser.add_argument("--crop", type=int, default=48, help="cascade window: central rows (readout)")
    parser.add_argument("--seg-batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cpu_precision.json")
    args = parser.parse_args(argv)
    if not args.data.exists():
        sys.exit(f"{args.data}: not found (pass --data with a cine the project reads)")
    torch.set_num_threads(args.threads)
    result = {"benchmark": "cpu_precision", "command": "python " + " ".join([Path(__file__).name] + sys.argv[1:]),
              "machine": machine_info(args.threads), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "cpu_computes_bf16": cpu_computes_bf16(),
              "bf16_resolves_to": str(resolve_amp("bf16", torch.device("cpu")) or "fp32").replace("torch.", "")}
    result["conv2d_peak"] = conv_peak([(8, 32, 64, 64), (4, 64, 64, 64)], args.repeats)
    result["conv3d_peak"] = conv_peak([(1, 16, 8, 48, 48), (1, 32, 8, 32, 32)], args.repeats)
    print(f"conv peaks done: {result['conv2d_peak']} {result['conv3d_peak']}", file=sys.stderr, flush=True)
    result["cascade"] = cascade_rows(args.data, args.crop, args.repeats)
    result["seg_step"] = seg_step_rows(args.seg_batch, args.repeats)
    result["markdown"] = markdown(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out)  # atomically
    print(result["markdown"])


if __name__ == "__main__":
    main()
