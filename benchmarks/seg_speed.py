"""Training and inference speed (images/s) and memory of the segmentation networks.

    .venv/bin/python benchmarks/seg_speed.py --threads 1     # ~3-5 min on a loaded 2-core machine

Models: ``unet``, ``mednext`` and ``mmnet`` built by :func:`cinemri.seg.models.build_segmenter`
with the ``model.args`` of ``configs/seg/<name>.yaml`` (deep supervision on, as trained), untrained
weights (speed does not depend on them). Input: a batch of ``--batch`` (default 16) random
single-channel ``--size`` x ``--size`` (default 160) images with random labels 0-3, the batch and
crop of the unet/mednext configs, the same for every model so images/s compare. MMNet's config
trains at batch 8 and 128 x 128 (cheaper per step): ``--config-sizes`` adds a row at that size.

``--recipes`` times the *training step as trained* instead: the previous recipe (``unet.yaml``,
fp32, 160² centre crops) against the bundled default's (``default.yaml``: bf16 autocast, 128²
heart crops from 176² stored images), with the variants in between, each step including the
heart crop, the config's augmentation, forward, loss, backward and AdamW. It also measures the
machine's convolution throughput (the best GFLOP/s of large 3x3 ``conv2d`` forwards, fp32 and
bf16) and reports the fraction of it that each step reaches: model FLOPs of forward + backward
(``torch.utils.flop_counter``, counted once in fp32) / median step time / peak of the step's dtype.

Method (as ``recon_speed.py``): every model runs in a fresh Python subprocess with the same
thread count (torch ``set_num_threads`` and ``OMP_NUM_THREADS``), one after another within one
run. Inference: eval mode, ``torch.inference_mode``, ``--warmup`` calls then the median of
``--repeats``. Training step: train mode, forward, the config's combined CE + Dice loss
(``cinemri.tasks.seg.task.build_loss``) summed over the deep-supervision outputs with
weights 2^-i as in training, backward, AdamW step (the config's lr and weight decay); one
warm-up step then the median of ``--train-repeats``. Not included: data loading, augmentation,
gradient clipping, AMP (CPU runs fp32). images/s = batch / median seconds. Peak memory: the
increase of ``ru_maxrss`` over its value after imports and model building, read after the
inference phase and again after the training phase.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _speed import achieved, conv_peak, machine_info, median_time, peak_mb, run_job, timing_parser  # benchmarks/ is sys.path[0] as a script

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "seg"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "seg_speed.json"
MODELS = ("unet", "mednext", "mmnet")


def worker(job: dict) -> dict:
    """Time one model in this (fresh) process; returns its numbers."""
    import torch

    from cinemri.seg.config import load_seg_config
    from cinemri.tasks.seg.task import build_loss, supervised_loss
    from cinemri.seg.models import build_segmenter

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    cfg = load_seg_config([job["config"]])
    model = build_segmenter(cfg.model.name, cfg.model.args)
    criterion = build_loss(cfg.loss)
    b, size = job["batch"], job["size"]
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(b, 1, size, size, generator=gen)  # (B, 1, H, W)
    labels = torch.randint(0, 4, (b, size, size), generator=gen)  # (B, H, W) int64
    base = peak_mb()
    out: dict = {"name": job["name"], "model": cfg.model.name, "model_args": dict(cfg.model.args), "batch": b,
                 "size": size, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                 "load_average_1m": os.getloadavg()[0]}
    model.eval()

    def infer() -> None:
        with torch.inference_mode():
            model(images)

    median, times = median_time(infer, job["warmup"], job["repeats"])
    out.update(infer_s=median, infer_all_s=times, infer_images_per_s=b / median, infer_peak_mb=peak_mb() - base)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = supervised_loss(model(images), labels, criterion)
        loss.backward()
        optimizer.step()

    median, times = median_time(step, 1, job["train_repeats"])
    out.update(train_s=median, train_all_s=times, train_images_per_s=b / median, train_peak_mb=peak_mb() - base)
    return out


RECIPES = (  # name, config, stored image size, autocast bf16, channels-last
    ("before: unet.yaml fp32 160²", "unet.yaml", 160, False, False),
    ("unet.yaml bf16 160²", "unet.yaml", 160, True, False),
    ("default.yaml fp32 128² heart crop", "default.yaml", 176, False, False),
    ("after: default.yaml bf16 128² heart crop", "default.yaml", 176, True, False),
    ("default.yaml bf16 128² + channels-last", "default.yaml", 176, True, True),
)
PEAK_SHAPES = ((16, 32, 128), (16, 64, 128), (16, 128, 64))  # (batch, channels in = out, size)


def peak_worker(job: dict) -> dict:
    """Best GFLOP/s of a 3x3 conv2d forward over PEAK_SHAPES, fp32 and bf16 (autocast)."""
    import torch

    torch.set_num_threads(job["threads"])
    shapes = [(b, c, n, n) for b, c, n in PEAK_SHAPES]
    return {"name": "peak", "shapes": [list(s) for s in shapes], **conv_peak(shapes, job["repeats"] + 2)}


def recipe_worker(job: dict) -> dict:
    """Time one training-step recipe (crop + augmentation + forward/backward + AdamW)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cinemri.seg.config import load_seg_config
    from cinemri.tasks.seg.task import build_loss, supervised_loss
    from cinemri.seg.augment import augment_batch, heart_crop
    from cinemri.seg.models import build_segmenter

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    cfg = load_seg_config([job["config"]])
    model = build_segmenter(cfg.model.name, cfg.model.args)
    criterion = build_loss(cfg.loss)
    b, size = job["batch"], job["stored"]
    gen = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = size / 2 + (torch.rand(b, 2, generator=gen) - 0.5) * size / 4  # (B, 2) hearts near the centre
    radius = ((y[None] - centres[:, 0, None, None]) ** 2 + (x[None] - centres[:, 1, None, None]) ** 2).sqrt()
    labels = torch.zeros(b, size, size, dtype=torch.int64)  # (B, H, W): LV disc, MYO ring, RV crescent
    labels[(radius >= 14) & (radius < 24) & (x[None] < centres[:, 1, None, None] - 8)] = 1
    labels[(radius >= 10) & (radius < 14)] = 2
    labels[radius < 10] = 3
    images = (labels.float() + 0.3 * torch.randn(b, size, size, generator=gen)).unsqueeze(1)  # (B, 1, H, W)
    if job["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    aug_gen = torch.Generator().manual_seed(1)

    def prepare() -> tuple:
        im, lab = images, labels
        if cfg.augment.crop is not None:
            im, lab = heart_crop(im, lab, cfg.augment.crop, cfg.augment.crop_jitter, aug_gen)
        if cfg.augment.enabled:
            im, lab = augment_batch(im, lab, cfg.augment.options, aug_gen)
        if job["channels_last"]:
            im = im.contiguous(memory_format=torch.channels_last)
        return im, lab

    def step() -> None:
        im, lab = prepare()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=job["bf16"]):
            loss = supervised_loss(model(im), lab, criterion)
        loss.backward()
        optimizer.step()

    model.train()
    im, lab = prepare()
    with FlopCounterMode(display=False) as counter:  # fp32 count: the FLOPs do not depend on the dtype
        supervised_loss(model(im), lab, criterion).backward()
    optimizer.zero_grad(set_to_none=True)
    median, times = median_time(step, 1, job["train_repeats"])
    prep_median, _ = median_time(prepare, 1, job["train_repeats"])
    return {"name": job["name"], "config": Path(job["config"]).name, "model_args": dict(cfg.model.args),
            "batch": b, "input": list(im.shape[-2:]), "bf16": job["bf16"], "channels_last": job["channels_last"],
            "params": sum(p.numel() for p in model.parameters()), "step_flops": counter.get_total_flops(),
            "train_s": median, "train_all_s": times, "train_images_per_s": b / median,
            "prepare_s": prep_median, "load_average_1m": os.getloadavg()[0]}


def recipes_markdown(rows: list[dict], peak: dict) -> str:
    """Recipe table: images/s, achieved GFLOP/s and the fraction of the measured conv peak."""
    base = rows[0]["train_images_per_s"]
    lines = [f"Measured conv2d peak: fp32 {peak['fp32_gflops']:.0f} GFLOP/s, bf16 {peak['bf16_gflops']:.0f} GFLOP/s.",
             "", "| recipe | model input | train img/s | x before | GFLOP/step | GFLOP/s | % of peak | "
             "crop+augment s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        gflops, percent = achieved(r, peak)
        lines.append(f"| {r['name']} | {r['batch']} x {r['input'][0]}² | {r['train_images_per_s']:.1f} | "
                     f"{r['train_images_per_s'] / base:.2f} | {r['step_flops'] / 1e9:.1f} | {gflops:.0f} | "
                     f"{percent:.0f} % | {r['prepare_s']:.3f} |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The results table; "x unet" is images/s relative to the unet row of the same size."""
    ref = {(r["batch"], r["size"]): r for r in rows if r["name"] == "unet"}
    lines = ["| model | params | batch x size | train img/s | x unet | infer img/s | x unet | "
             "peak MB (infer) | peak MB (train) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        u = ref.get((r["batch"], r["size"]))
        rel_train = f"{r['train_images_per_s'] / u['train_images_per_s']:.2f}" if u else "-"
        rel_infer = f"{r['infer_images_per_s'] / u['infer_images_per_s']:.2f}" if u else "-"
        lines.append(f"| {r['name']} | {r['params']:,} | {r['batch']} x {r['size']}² | "
                     f"{r['train_images_per_s']:.1f} | {rel_train} | {r['infer_images_per_s']:.1f} | {rel_infer} | "
                     f"{r['infer_peak_mb']:.0f} | {r['train_peak_mb']:.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = timing_parser(__doc__, ".venv/bin/python benchmarks/seg_speed.py --threads 1", train_repeats=3)
    parser.add_argument("--batch", type=int, default=16, help="images per batch (default 16)")
    parser.add_argument("--size", type=int, default=160, help="image height = width (default 160)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--config-sizes", action="store_true",
                        help="also time mmnet at its config's batch and crop (8 x 128²)")
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. 'machine loaded')")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    parser.add_argument("--recipes", action="store_true",
                        help="time the training step as trained, before/after (see above) instead of the models")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.threads, args.batch, args.size, args.repeats, args.train_repeats) < 1 or args.warmup < 0:
        parser.error("--threads, --batch, --size, --repeats and --train-repeats must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        kind = job.get("kind", "model")
        print(json.dumps({"model": worker, "recipe": recipe_worker, "peak": peak_worker}[kind](job)))
        return
    if args.recipes:
        run_recipes(args)
        return

    from cinemri.files import write_json

    info = machine_info(args.threads)
    common = {"threads": args.threads, "warmup": args.warmup, "repeats": args.repeats,
              "train_repeats": args.train_repeats}
    jobs = [{"name": m, "config": str(CONFIGS / f"{m}.yaml"), "batch": args.batch, "size": args.size}
            for m in args.models]
    if args.config_sizes and "mmnet" in args.models:
        jobs.append({"name": "mmnet (config 8 x 128²)", "config": str(CONFIGS / "mmnet.yaml"), "batch": 8,
                     "size": 128})
    rows = []
    start = time.perf_counter()
    for job in jobs:
        row = run_job(__file__, {**common, **job})
        rows.append(row)
        print(f"{row['name']}: train {row['train_images_per_s']:.1f} img/s, inference "
              f"{row['infer_images_per_s']:.1f} img/s", file=sys.stderr, flush=True)
    info["load_average_1_5_15_end"] = list(os.getloadavg())
    info["total_wall_s"] = time.perf_counter() - start
    table = markdown(rows)
    print(table)
    result = {"benchmark": "seg_speed", "command": " ".join([Path(sys.executable).name] + sys.argv),
              "note": args.note, "machine": info,
              "setup": {**common, "batch": args.batch, "size": args.size, "input": "random N(0,1) images, labels 0-3",
                        "train_step": "forward + combined CE+Dice over deep-supervision outputs + backward + AdamW "
                                      "(no augmentation, clipping or AMP)",
                        "memory": "ru_maxrss increase in a fresh subprocess after building the model"},
              "results": rows, "markdown": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


def run_recipes(args: argparse.Namespace) -> None:
    from cinemri.files import write_json

    out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("seg_step_recipes.json")
    info = machine_info(args.threads)
    common = {"threads": args.threads, "repeats": args.repeats, "train_repeats": args.train_repeats,
              "batch": args.batch}
    start = time.perf_counter()
    peak = run_job(__file__, {**common, "kind": "peak", "name": "peak"})
    print(f"conv2d peak: fp32 {peak['fp32_gflops']:.0f}, bf16 {peak['bf16_gflops']:.0f} GFLOP/s", file=sys.stderr)
    rows = []
    for name, config, stored, bf16, channels_last in RECIPES:
        row = run_job(__file__, {**common, "kind": "recipe", "name": name, "config": str(CONFIGS / config),
                                 "stored": stored, "bf16": bf16, "channels_last": channels_last})
        rows.append(row)
        print(f"{name}: {row['train_images_per_s']:.1f} img/s", file=sys.stderr, flush=True)
    info["load_average_1_5_15_end"] = list(os.getloadavg())
    info["total_wall_s"] = time.perf_counter() - start
    table = recipes_markdown(rows, peak)
    print(table)
    write_json({"benchmark": "seg_step_recipes", "command": " ".join([Path(sys.executable).name] + sys.argv),
                "note": args.note, "machine": info, "peak": peak, "results": rows, "markdown": table}, out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
