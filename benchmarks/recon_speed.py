"""Speed and memory of reconstruction on one cine slice: networks vs our CS vs BART ``pics``.

    .venv/bin/python benchmarks/recon_speed.py            # all models, ~10 min on 2 idle cores
    .venv/bin/python benchmarks/recon_speed.py --quick    # main cascade + CS + BART, 1 repeat
    .venv/bin/python benchmarks/recon_speed.py --step     # training step before/after, FLOPs, % of peak
    .venv/bin/python benchmarks/recon_speed.py --step --tiny   # the same in seconds (shows it works)

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

``--step``: the training step of the main cascade (3 stages, 3D U-Net + CBAM, soft DC, L1,
AdamW), recipe by recipe, each in a fresh subprocess:

- ``before``: today's recipe (configs/recon/cascade_unet3d_cbam.yaml): batch 2 of phantom
  slices cropped to 64 readout rows x 128 (``--crop-rows``), 16 frames, 8 coils, fp32;
- ``before_bf16``: the same under bf16 autocast around the denoisers (DC and FFT in fp32);
- ``strips_fp32``: the new recipe (configs/recon/cascade_real.yaml) in fp32: batch 4 of
  readout strips of 48 rows x 160 (``--strip-rows``, ``--strip-width``) with simulated coils
  and augmentation;
- ``after``: the new recipe in bf16 (what cascade_real.yaml trains with);
- ``after_channels_last``: ``after`` with the denoisers in channels-last 3D memory format.

Per recipe: model FLOPs of one step (``torch.utils.flop_counter.FlopCounterMode`` over one
forward + backward, counted in fp32; FFTs and element-wise ops are not counted), the median
step time (forward, loss, backward, AdamW; after ``--warmup`` steps, ``--train-repeats``
timed), achieved GFLOP/s and its fraction of the machine's measured conv3d throughput of the
step's precision (the best GFLOP/s of 3x3x3 ``conv3d`` forwards over a few shapes, fp32 and
bf16, measured in this run), voxels per second (B x T x H x W / step time; the recipes
differ in size) and the time to make one sample (``ReconDataset.__getitem__``, which the
training process pays in series with num_workers 0).
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

from _speed import achieved, conv_peak, machine_info, median_time, peak_mb, run_job, timing_parser  # benchmarks/ is sys.path[0] as a script
from cinemri.files import write_json

REPO = Path(__file__).resolve().parents[1]
ABLATION_CONFIG = REPO / "configs" / "recon" / "ablation.yaml"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "recon_speed.json"
DEFAULT_STEP_OUT = REPO / "benchmarks" / "results" / "recon_speed_step.json"

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
        from cinemri.recon.config import load_recon_config

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

    from cinemri.masks import MaskOptions, cartesian_mask
    from cinemri.phantom import generate_case, simulate_kspace
    from cinemri.physics import sense_adjoint

    masks = MaskOptions(acceleration=acceleration)  # the project's default pattern and centre
    case = generate_case(seed, slices=3)  # default 16 frames, 128 x 128, 8 coils
    s = case.num_slices // 2
    t, w = case.num_frames, case.image.shape[-1]
    mask = cartesian_mask(t, w, acceleration, masks.center_lines, masks.pattern, seed)  # (T, W)
    kspace = torch.from_numpy(simulate_kspace(case, seed, mask.numpy())[s:s + 1])  # (1, C, T, H, W)
    maps = torch.from_numpy(case.coil_maps[s:s + 1])  # (1, C, H, W)
    mask = mask[None, None, :, None, :]  # (1, 1, T, 1, W)
    p99 = float(torch.quantile(sense_adjoint(kspace, maps, mask).abs().flatten(), 0.99))
    kspace = kspace / p99
    target = torch.from_numpy(case.image[s:s + 1]) / p99  # (1, T, H, W)
    torch.save({"kspace": kspace, "mask": mask, "maps": maps, "target": target}, path)
    return {"phantom_seed": seed, "slice": s, "shape_CTHW": list(kspace.shape[1:]), "acceleration": acceleration,
            "pattern": masks.pattern, "center_lines": masks.center_lines}


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
        from cinemri.recon.inference import load_reconstructor

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


PEAK_SHAPES = ((2, 16, 16, 48, 160), (2, 32, 16, 24, 80), (2, 64, 16, 12, 40))  # (B, C, T, H, W)
TINY_PEAK_SHAPES = ((2, 4, 4, 8, 16),)


def peak_worker(job: dict) -> dict:
    """Best GFLOP/s of a 3x3x3 conv3d forward (C -> C channels) over the job's shapes, fp32 and bf16."""
    import torch

    torch.set_num_threads(job["threads"])
    return {"name": "peak", "shapes": [list(s) for s in job["shapes"]],
            **conv_peak([tuple(s) for s in job["shapes"]], job["repeats"])}


def step_worker(job: dict) -> dict:
    """Time the training step of one recipe (see the module docstring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cinemri.data import ReconDataset, ReconOptions, collate_recon
    from cinemri.data.simulate import AugmentOptions, SimulationOptions
    from cinemri.recon import build_reconstructor
    from cinemri.recon.losses import l1_loss

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    if job["strips"]:
        augment = AugmentOptions(flip=True, rot90=True, time_reverse=True, time_shift=True,
                                 crop=(job["strip_width"], job["strip_width"]), frames=job["frames"])
        options = ReconOptions(mask_mode="per_epoch", center_lines=job["center_lines"], augment=augment,
                               strip_rows=job["strip_rows"],
                               simulation=SimulationOptions(coils=(job["coils"], job["coils"]), replace_maps=True))
    else:
        options = ReconOptions(mask_mode="per_epoch", center_lines=job["center_lines"],
                               crop=(job["crop_rows"], job["size"]))
    dataset = ReconDataset([job["case"]], options)

    def sample(i: int):
        dataset.set_epoch(i // len(dataset))
        return dataset[i % len(dataset)]

    prep_s, _ = median_time(lambda: sample(0), 1, 3)
    batch = collate_recon([sample(i) for i in range(job["batch"])])
    model = build_reconstructor(**job["model_args"], channels_last=job["channels_last"])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=job["bf16"]):
            loss = l1_loss(model(batch.kspace, batch.mask, batch.maps), batch.target)
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:  # fp32 count: the FLOPs do not depend on the dtype
        l1_loss(model(batch.kspace, batch.mask, batch.maps), batch.target).backward()
    optimizer.zero_grad(set_to_none=True)
    median, times = median_time(step, job["warmup"], job["train_repeats"])
    shape = list(batch.kspace.shape)  # (B, C, T, H, W)
    return {"name": job["name"], "batch_shape_BCTHW": shape, "bf16": job["bf16"],
            "channels_last": job["channels_last"], "strips": job["strips"],
            "params": sum(p.numel() for p in model.parameters()), "step_flops": counter.get_total_flops(),
            "train_s": median, "train_all_s": times, "voxels_per_s": shape[0] * shape[2] * shape[3] * shape[4] / median,
            "prepare_s": prep_s, "load_average_1m": os.getloadavg()[0]}


def step_markdown(rows: list[dict], peak: dict) -> str:
    """Before/after table: step time, GFLOP/step, GFLOP/s, % of the measured conv3d peak."""
    base = rows[0]["voxels_per_s"]
    lines = [f"Measured conv3d peak: fp32 {peak['fp32_gflops']:.0f} GFLOP/s, bf16 {peak['bf16_gflops']:.0f} GFLOP/s.",
             "", "| recipe | batch (B, C, T, H, W) | precision | GFLOP/step | step s | GFLOP/s | % of peak | "
             "voxels/s | x before | sample s |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        gflops, percent = achieved(r, peak)
        precision = ("bf16" if r["bf16"] else "fp32") + (", channels-last" if r["channels_last"] else "")
        lines.append(f"| {r['name']} | {tuple(r['batch_shape_BCTHW'])} | {precision} | {r['step_flops'] / 1e9:.2f} | "
                     f"{r['train_s']:.3f} | {gflops:.1f} | {percent:.0f} % | "
                     f"{r['voxels_per_s']:,.0f} | {r['voxels_per_s'] / base:.2f} | {r['prepare_s']:.3f} |")
    return "\n".join(lines)


def run_step(args: argparse.Namespace, info: dict) -> None:
    """``--step``: before/after training-step recipes side by side (see the module docstring)."""
    from cinemri.recon.config import load_recon_config
    from cinemri.io import write_case
    from cinemri.phantom import generate_case

    model_args = load_recon_config([REPO / "configs" / "recon" / "cascade_unet3d_cbam.yaml"]).model.model_args()
    if args.base_channels is not None:
        model_args["denoiser_options"]["base_channels"] = args.base_channels
    common = {"threads": args.threads, "warmup": args.warmup, "repeats": args.repeats,
              "train_repeats": max(1, args.train_repeats), "model_args": model_args, "coils": args.coils,
              "frames": args.frames, "size": args.size, "crop_rows": args.crop_rows, "strip_rows": args.strip_rows,
              "strip_width": args.strip_width, "center_lines": args.center_lines}
    recipes = [("before", False, False, False, args.batch_before), ("before_bf16", False, True, False, args.batch_before),
               ("strips_fp32", True, False, False, args.batch_after), ("after", True, True, False, args.batch_after),
               ("after_channels_last", True, True, True, args.batch_after)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cinemri_step_") as tmp:
        extra = {"supersample": 1} if args.tiny else {}
        case = generate_case(args.seed, slices=3, frames=args.frames, height=args.size, width=args.size,
                             coils=args.coils, **extra)
        path = write_case(case, Path(tmp, "case.h5"))
        shapes = TINY_PEAK_SHAPES if args.tiny else PEAK_SHAPES
        peak = run_job(__file__, {**common, "kind": "peak", "name": "peak", "shapes": shapes})
        print(f"conv3d peak: fp32 {peak['fp32_gflops']:.0f}, bf16 {peak['bf16_gflops']:.0f} GFLOP/s",
              file=sys.stderr, flush=True)
        rows = []
        for name, strips, bf16, channels_last, batch in recipes:
            job = {**common, "kind": "step", "name": name, "strips": strips, "bf16": bf16,
                   "channels_last": channels_last, "batch": batch, "case": str(path)}
            rows.append(run_job(__file__, job))
            print(f"{name}: step {rows[-1]['train_s']:.3f} s", file=sys.stderr, flush=True)
    info["load_average_1_5_15_end"] = list(os.getloadavg())
    info["total_wall_s"] = time.perf_counter() - start
    table = step_markdown(rows, peak)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "recon_speed --step", "command": " ".join([Path(sys.executable).name] + sys.argv),
              "machine": info, "setup": {k: v for k, v in common.items()}, "peak": peak, "results": rows,
              "markdown": table}
    write_json(result, args.out)  # NaN as null, atomically
    print(f"wrote {args.out}", file=sys.stderr)


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
    from cinemri.masks import MaskOptions

    parser = timing_parser(__doc__, ".venv/bin/python benchmarks/recon_speed.py --quick", train_repeats=2)
    parser.add_argument("--seed", type=int, default=0, help="phantom case and mask seed (default 0)")
    parser.add_argument("--acceleration", type=float, default=MaskOptions.acceleration)
    parser.add_argument("--quick", action="store_true", help="main cascade + CS + BART, 1 repeat each")
    parser.add_argument("--checkpoint", type=Path, help="also time the trained cascade of this checkpoint")
    parser.add_argument("--no-bart", action="store_true", help="skip BART even when it is installed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    step = parser.add_argument_group("--step: training step before/after (see the module docstring)")
    step.add_argument("--step", action="store_true", help="time training-step recipes instead of inference")
    step.add_argument("--tiny", action="store_true",
                      help="tiny sizes that run in seconds (4 frames, 32 x 32, 2 coils, width-4 U-Nets)")
    step.add_argument("--frames", type=int, default=16, help="frames T (default 16)")
    step.add_argument("--size", type=int, default=128, help="phantom H = W (default 128)")
    step.add_argument("--coils", type=int, default=8, help="coils C (default 8)")
    step.add_argument("--crop-rows", type=int, default=64, help="before: readout rows of the crop (default 64)")
    step.add_argument("--strip-rows", type=int, default=48, help="after: readout strip rows (default 48)")
    step.add_argument("--strip-width", type=int, default=160, help="after: augmentation crop W (default 160)")
    step.add_argument("--batch-before", type=int, default=2, help="before: batch (default 2)")
    step.add_argument("--batch-after", type=int, default=4, help="after: batch (default 4)")
    step.add_argument("--center-lines", type=int, default=8, help="fully sampled centre lines (default 8)")
    step.add_argument("--base-channels", type=int, default=None, help="U-Net width (default: the config's 16)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.frames, args.size, args.coils, args.crop_rows, args.strip_rows = 4, 32, 2, 16, 8
        args.strip_width, args.center_lines, args.base_channels = 32, 4, args.base_channels or 4
        args.train_repeats = min(args.train_repeats, 1)
    if args.step and args.out == DEFAULT_OUT:
        args.out = DEFAULT_STEP_OUT
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.train_repeats < 0:
        parser.error("--threads and --repeats must be >= 1, --warmup and --train-repeats >= 0")
    if args.quick:
        args.repeats, args.train_repeats = 1, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps({"peak": peak_worker, "step": step_worker}.get(job["kind"], worker)(job)))
        return
    if args.step:
        run_step(args, machine_info(args.threads))
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
    write_json(result, args.out)  # NaN as null, atomically
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
