"""Speed and memory of reconstruction on one cine slice: networks vs our CS vs BART ``pics``.

    .venv/bin/python benchmarks/recon_speed.py            # all models, ~10 min on 2 idle cores
    .venv/bin/python benchmarks/recon_speed.py --quick    # main cascade + CS + BART, 1 repeat

Input: the middle slice of phantom case ``--seed`` at the default phantom size (16 frames,
128 x 128, 8 coils), noisy k-space, 5x ``vd_random`` mask with 8 centre lines, k-space
divided by the 99th percentile of the zero-filled magnitude as ``ReconDataset`` does.

Models: the 3-stage cascades (soft DC) and single-stage variants of the 4 denoisers at the
sizes of ``configs/recon/ablation.yaml`` (variants ``cascade_*`` and ``single_*``), or the
documented small defaults in :data:`FALLBACK_OPTIONS` when that file is absent; weights are
untrained (speed does not depend on them), or taken from ``--checkpoint``. Baselines: our
``cs_tv`` (defaults: temporal TV, 50 iterations) and BART ``pics -S -R T:1024:0:0.01 -i 50``
with the phantom's coil maps (when ``bart`` is on PATH).

Method: every model runs in a fresh Python subprocess (same thread count: torch and BART's
OpenMP), one after another within this one run. Inference: ``--warmup`` calls, then the
median of ``--repeats`` (``torch.inference_mode``, eval mode). Training step: forward, L1
loss, backward and AdamW step at batch 1, warm-up then the median of ``--train-repeats``.
Peak memory: the increase of ``ru_maxrss`` (peak resident set size) of the subprocess over
its value after imports and data loading, read after the inference phase and again after
the training phase (model, activations, gradients and optimizer state included; tracemalloc
does not see torch's allocator). For BART it is the peak RSS of the whole ``bart`` process
(``RUSAGE_CHILDREN``). BART's time is the wall time of the ``bart pics`` process (file
writing excluded, process start included).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _speed import machine_info, median_time, peak_mb, run_job, timing_parser  # benchmarks/ is sys.path[0] as a script

REPO = Path(__file__).resolve().parents[1]
ABLATION_CONFIG = REPO / "configs" / "recon" / "ablation.yaml"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "recon_speed.json"

# Sizes used when configs/recon/ablation.yaml is absent (they match it when present).
FALLBACK_OPTIONS: dict[str, dict] = {
    "unet3d": {"base_channels": 16, "depth": 2, "cbam": True, "dropout": 0.0},
    "resnet3d": {"width": 32, "num_blocks": 5},
    "crnn": {"base_channels": 16, "depth": 2, "hidden_channels": 32},
    "unet2d1d": {"base_channels": 16, "depth": 2},
}
MAIN_MODEL = "cascade_unet3d_cbam"


def model_specs(quick: bool) -> dict[str, dict]:
    """{name: build_reconstructor keyword arguments} of the benchmarked networks."""
    names = [f"{kind}_{d}" for kind in ("cascade", "single") for d in FALLBACK_OPTIONS]
    names[0] = MAIN_MODEL
    if quick:
        names = [MAIN_MODEL]
    specs = {}
    if ABLATION_CONFIG.is_file():
        from cinemri.experiments.recon import load_recon_config

        variants = load_recon_config([ABLATION_CONFIG]).ablation.variants
        for name in names:
            specs[name] = load_recon_config([ABLATION_CONFIG], variants[name]).model.model_args()
        return specs
    for name in names:
        denoiser = name.split("_")[1]
        specs[name] = {"denoiser": denoiser, "denoiser_options": FALLBACK_OPTIONS[denoiser],
                       "num_stages": 3 if name.startswith("cascade") else 1, "dc_mode": "soft"}
    return specs


def make_slice(seed: int, acceleration: float, path: Path) -> dict:
    """Write the benchmark slice (kspace, mask, maps, target; see the module doc) to ``path``."""
    import torch

    from cinemri.masks import cartesian_mask
    from cinemri.phantom import generate_case, simulate_kspace
    from cinemri.physics import sense_adjoint

    case = generate_case(seed, slices=3)  # default 16 frames, 128 x 128, 8 coils
    s = case.num_slices // 2
    t, w = case.num_frames, case.image.shape[-1]
    mask = cartesian_mask(t, w, acceleration, 8, "vd_random", seed)  # (T, W)
    kspace = torch.from_numpy(simulate_kspace(case, seed, mask.numpy())[s:s + 1])  # (1, C, T, H, W)
    maps = torch.from_numpy(case.coil_maps[s:s + 1])  # (1, C, H, W)
    mask = mask[None, None, :, None, :]  # (1, 1, T, 1, W)
    p99 = float(torch.quantile(sense_adjoint(kspace, maps, mask).abs().flatten(), 0.99))
    kspace = kspace / p99
    target = torch.from_numpy(case.image[s:s + 1]) / p99  # (1, T, H, W)
    torch.save({"kspace": kspace, "mask": mask, "maps": maps, "target": target}, path)
    return {"phantom_seed": seed, "slice": s, "shape_CTHW": list(kspace.shape[1:]), "acceleration": acceleration,
            "pattern": "vd_random", "center_lines": 8}


def worker(job: dict) -> dict:
    """Run one job in this (fresh) process; returns its numbers."""
    import torch

    torch.set_num_threads(job["threads"])
    data = torch.load(job["data"], weights_only=True)
    kspace, mask, maps, target = data["kspace"], data["mask"], data["maps"], data["target"]
    base = peak_mb()
    out: dict = {"name": job["name"], "load_average_1m": os.getloadavg()[0]}
    if job["kind"] == "bart":
        import bart

        args = (kspace[0].numpy(), maps[0].numpy(), mask[0, 0, :, 0, :].numpy())
        seconds = []
        for i in range(job["warmup"] + job["repeats"]):
            _, sec = bart.pics(*args, threads=job["threads"])
            seconds.append(sec)
        timed = seconds[job["warmup"]:]
        out.update(infer_s=statistics.median(timed), infer_all_s=timed,
                   infer_peak_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0)
        return out
    if job["kind"] == "cs":
        from cinemri.recon import cs_tv

        median, times = median_time(lambda: cs_tv(kspace, mask, maps), job["warmup"], job["repeats"])
        out.update(infer_s=median, infer_all_s=times, infer_peak_mb=peak_mb() - base)
        return out
    from cinemri.recon import build_reconstructor
    from cinemri.recon.losses import l1_loss

    if job["kind"] == "checkpoint":
        from cinemri.experiments.recon import load_reconstructor

        model = load_reconstructor(job["checkpoint"]).model
    else:
        model = build_reconstructor(**job["model_args"])
    out["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.eval()

    def infer() -> None:
        with torch.inference_mode():
            model(kspace, mask, maps)

    median, times = median_time(infer, job["warmup"], job["repeats"])
    out.update(infer_s=median, infer_all_s=times, infer_peak_mb=peak_mb() - base)
    if job["train_repeats"] > 0:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            l1_loss(model(kspace, mask, maps), target).backward()
            optimizer.step()

        median, times = median_time(step, 1, job["train_repeats"])
        out.update(train_s=median, train_all_s=times, train_peak_mb=peak_mb() - base)
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(rows: list[dict]) -> str:
    """The results table; ratios are time(baseline) / time(model), > 1 means faster."""
    by_name = {r["name"]: r for r in rows}
    cs = by_name.get("cs_tv", {}).get("infer_s")
    bart_s = by_name.get("bart_pics", {}).get("infer_s")
    lines = ["| model | params | inference s | speed-up vs CS | speed-up vs BART | train step s | "
             "peak MB (infer) | peak MB (train) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["infer_s"]
        lines.append(
            f"| {r['name']} | {_fmt(r.get('params'), ',')} | {t:.2f} | {_fmt(cs and cs / t, '.1f')} | "
            f"{_fmt(bart_s and bart_s / t, '.2f')} | {_fmt(r.get('train_s'), '.2f')} | "
            f"{_fmt(r.get('infer_peak_mb'), '.0f')} | {_fmt(r.get('train_peak_mb'), '.0f')} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = timing_parser(__doc__, ".venv/bin/python benchmarks/recon_speed.py --quick", train_repeats=2)
    parser.add_argument("--seed", type=int, default=0, help="phantom case and mask seed (default 0)")
    parser.add_argument("--acceleration", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="main cascade + CS + BART, 1 repeat each")
    parser.add_argument("--checkpoint", type=Path, help="also time the trained cascade of this checkpoint")
    parser.add_argument("--no-bart", action="store_true", help="skip BART even when it is installed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.train_repeats < 0:
        parser.error("--threads and --repeats must be >= 1, --warmup and --train-repeats >= 0")
    if args.quick:
        args.repeats, args.train_repeats = 1, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    import bart

    info = machine_info(args.threads)
    info["bart"] = bart.version()
    common = {"threads": args.threads, "warmup": args.warmup, "repeats": args.repeats,
              "train_repeats": args.train_repeats}
    with tempfile.TemporaryDirectory(prefix="cinemri_speed_") as tmp:
        data_path = Path(tmp, "slice.pt")
        setup = make_slice(args.seed, args.acceleration, data_path)
        jobs = [{"kind": "model", "name": name, "model_args": spec}
                for name, spec in model_specs(args.quick).items()]
        if args.checkpoint is not None:
            jobs.append({"kind": "checkpoint", "name": f"checkpoint:{args.checkpoint.name}",
                         "checkpoint": str(args.checkpoint)})
        jobs.append({"kind": "cs", "name": "cs_tv"})
        if bart.available() and not args.no_bart:
            jobs.append({"kind": "bart", "name": "bart_pics"})
        rows = []
        start = time.perf_counter()
        for job in jobs:
            job = {**common, **job, "data": str(data_path)}
            row = run_job(__file__, job)
            row["model_args"] = job.get("model_args")
            rows.append(row)
            print(f"{row['name']}: inference {row['infer_s']:.2f} s, train step "
                  f"{_fmt(row.get('train_s'), '.2f')} s", file=sys.stderr, flush=True)
    info["load_average_1_5_15_end"] = list(os.getloadavg())
    info["total_wall_s"] = time.perf_counter() - start
    table = markdown(rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "recon_speed", "command": " ".join([Path(sys.executable).name] + sys.argv),
              "machine": info, "setup": {**setup, **common, "cs_tv": "defaults (lambda_t 0.003, 50 iterations)",
                                         "bart_command": "pics -S -R T:1024:0:0.01 -i 50 -p <mask>",
                                         "memory": "ru_maxrss increase in a fresh subprocess (BART: its peak RSS)"},
              "results": rows, "markdown": table}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
