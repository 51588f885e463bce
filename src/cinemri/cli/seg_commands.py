"""`cinemri seg train | eval | predict | ablate | grad-analysis | recon-set`."""

from __future__ import annotations

import argparse
from pathlib import Path

from cinemri.cli.options import add_config_flags, add_training_data_flag, overrides_with_data, print_epoch

SEG_SOURCES = "ACDC root or patient folders, M&Ms cases, case .h5 files or folders"


def register(subparsers, formatter) -> None:
    seg = subparsers.add_parser("seg", formatter_class=formatter, help="segmentation: train, evaluate, predict, "
                                "ablate, analyse loss gradients")
    sub = seg.add_subparsers(dest="seg_command", metavar="SEG_COMMAND")
    seg.set_defaults(run=lambda args: seg.print_help())

    p = sub.add_parser("train", formatter_class=formatter, help="train a segmenter (config: configs/seg/*.yaml)",
                       epilog="examples:\n  cinemri seg train --config configs/seg/unet.yaml\n"
                              "  cinemri seg train --config configs/seg/unet.yaml --set train.epochs=5 "
                              "--set data.train=[/data/ACDC/training]\n"
                              "  torchrun --nproc-per-node 4 -m cinemri seg train --config configs/seg/unet.yaml")
    add_config_flags(p)
    add_training_data_flag(p, SEG_SOURCES)
    p.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from (e.g. OUT/last.pt)")
    p.set_defaults(run=_run_train)

    p = sub.add_parser("eval", formatter_class=formatter,
                       help="ACDC-style scores: 3D Dice/HD95/HD at ED and ES, EF/EDV/ESV/mass agreement",
                       epilog="example:\n  cinemri seg eval --checkpoint runs/seg/acdc_unet/best.pt "
                              "--data ACDC/training --split val \\\n"
                              "      --json eval.json --out eval/")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="segmentation checkpoint (default: the bundled segmenter)")
    p.add_argument("--data", nargs="+", default=None, help="ACDC folder(s) or case files (default: the "
                   "checkpoint's own data.train)")
    p.add_argument("--split", choices=("val", "train", "test", "all"), default="val",
                   help="val/train: the checkpoint's split rule applied to --data; test: the held-out cases "
                        "of a split.json (phantom); all: every case")
    p.add_argument("--json", type=Path, default=None, help="write the summary JSON here")
    p.add_argument("--out", type=Path, default=None, help="folder for per_case.csv, clinical.csv, summary.json")
    _add_test_time_flags(p)
    p.add_argument("--max-cases", type=int, default=None, help="score only the first N cases")
    p.set_defaults(run=_run_eval)

    p = sub.add_parser("predict", formatter_class=formatter,
                       help="label maps (NIfTI with the input's affine and shape, plus a case .h5)",
                       epilog="examples:\n"
                              "  cinemri seg predict ACDC/testing/patient101 --checkpoint best.pt --out pred/\n"
                              "  cinemri seg predict image.nii.gz --checkpoint best.pt --out pred/")
    p.add_argument("input", type=Path, help="ACDC patient folder, M&Ms case, NIfTI image or case .h5")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="segmentation checkpoint (default: the bundled segmenter)")
    p.add_argument("--out", required=True, type=Path,
                   help="folder for the label maps (NIfTI in the input's geometry) and the case .h5")
    _add_test_time_flags(p)
    p.set_defaults(run=_run_predict)

    p = sub.add_parser("ablate", formatter_class=formatter,
                       help="models x losses x augmentation with equal budgets -> Markdown table + plot",
                       epilog="example:\n"
                              "  cinemri seg ablate --config configs/seg/ablation.yaml --out runs/seg/ablation")
    add_config_flags(p)
    add_training_data_flag(p, SEG_SOURCES)
    p.add_argument("--out", required=True, type=Path,
                   help="folder: one sub-folder per variant, ablation.md, ablation.json and the plot")
    p.set_defaults(run=_run_ablate)

    p = sub.add_parser("grad-analysis", formatter_class=formatter,
                       help="gradients of CE, Dice, combined w.r.t. logits and parameters, by class",
                       epilog="example:\n  cinemri seg grad-analysis --config configs/seg/grad_analysis.yaml "
                              "--out runs/seg/grad_analysis")
    add_config_flags(p)
    p.add_argument("--out", required=True, type=Path, help="folder for the gradient figures and grad_analysis.json")
    p.set_defaults(run=_run_grad)

    p = sub.add_parser(
        "recon-set", formatter_class=formatter,
        help="labelled cines as 5x reconstructions show them: training cases for a segmenter of reconstructed images",
        description="Every labelled magnitude cine of --data becomes single-coil k-space, undersampled (the "
                    "benchmarks' masks, seeded per case and slice), reconstructed by each of --methods and written "
                    "with its labelled frames and ground truth as OUT/<name>_r<R>_<method>.h5, with a split.json "
                    "naming them all 'train'. Add OUT to `seg train --data` beside the original images. A rerun "
                    "keeps the files already written.",
        epilog="example:\n  cinemri seg recon-set --data ACDC/training --split runs/seg/default_unet/split.txt "
               "--out data/acdc_r5\n  cinemri seg train --config configs/seg/default.yaml --data ACDC/training "
               "data/phantom_seg data/acdc_r5")
    p.add_argument("--data", nargs="+", required=True, help=f"labelled cines: {SEG_SOURCES}")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--split", type=Path, default=None,
                   help="a segmentation run's split.txt: only its 'train' cases (keep validation cases out)")
    p.add_argument("--methods", nargs="+", choices=("model", "cs", "zero_filled"), default=["model", "cs"],
                   help="reconstructions: the cascade of --recon-checkpoint, CS-TV, zero filling")
    p.add_argument("--recon-checkpoint", type=Path, default=None,
                   help="reconstruction checkpoint for 'model' (default: the bundled cascade)")
    p.add_argument("--acceleration", type=float, default=5.0, help="undersampling factor R")
    p.add_argument("--cs-iters", type=int, default=50, help="iterations of CS-TV")
    p.add_argument("--seed", type=int, default=0, help="seed of the masks (with the case name and slice)")
    p.set_defaults(run=_run_recon_set)


def _add_test_time_flags(p) -> None:
    p.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average the softmax over H/W flips (default: the checkpoint's eval.flip_tta)")
    p.add_argument("--largest-component", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the largest connected component per structure (default: eval.largest_component)")
    p.add_argument("--postprocess", action=argparse.BooleanOptionalAction, default=None,
                   help="anatomical post-processing: LV largest component, MYO touching the LV, RV touching the "
                        "MYO, LV holes filled (default: the checkpoint's eval.postprocess)")
    p.add_argument("--crop-to-heart", action=argparse.BooleanOptionalAction, default=None,
                   help="segment a training-size window around the heart found by a first pass (default: the "
                        "checkpoint's eval.crop_to_heart)")
    p.add_argument("--device", default="cpu", help="torch device")


def _test_time(args) -> dict:
    return {"flip_tta": args.flip_tta, "largest_component": args.largest_component,
            "postprocess": args.postprocess, "crop_to_heart": args.crop_to_heart}


def _run_train(args) -> None:
    from cinemri.tasks.seg.task import train_from_files

    result = train_from_files(args.config, overrides_with_data(args), resume=args.resume, on_epoch_end=print_epoch)
    print(f"trained {result.epochs_completed} epochs; best {result.best_metric} at epoch {result.best_epoch}; "
          f"checkpoints: {result.best_checkpoint or result.last_checkpoint}")


def _run_eval(args) -> None:
    from cinemri.pipeline.weights import resolve_checkpoint
    from cinemri.tasks.seg.evaluate import evaluate

    summary = evaluate(resolve_checkpoint(args.checkpoint, "seg"), args.data, split=args.split, out_dir=args.out, json_path=args.json,
                       test_time=_test_time(args), device=args.device, max_cases=args.max_cases)
    for phase in ("ed", "es"):
        scores = summary["phases"][phase]
        print(f"{phase.upper()}: " + "  ".join(f"{k}={scores[k]['mean']:.3f}" for k in
                                               ("dice_rv", "dice_myo", "dice_lv", "dice_mean")))
    ef = summary["clinical"]["lv_ef_pct"]
    print(f"LV EF: r={ef['pearson_r']}, bias={ef['bias']} +- {ef['sd']} % ({len(summary['cases'])} cases)")


def _run_predict(args) -> None:
    from cinemri.pipeline.predict import predict_seg

    for path in predict_seg(args.input, args.checkpoint, args.out, test_time=_test_time(args), device=args.device):
        print(path)


def _run_ablate(args) -> None:
    from cinemri.tasks.seg.ablation import ablate

    table = ablate(args.config, args.out, overrides_with_data(args))
    print(table)


def _run_grad(args) -> None:
    from cinemri.tasks.seg.grad import grad_analysis
    from cinemri.files import json_text

    numbers = grad_analysis(args.config, args.out, args.overrides)
    first = numbers["points"][0]
    print(json_text({"init_ce_bg_fraction_l1": first["ce"]["bg_fraction_l1"],
                     "init_bg_pixel_fraction": first["ce"]["bg_pixel_fraction"],
                     "figures": numbers["figures"]}), end="")


def _run_recon_set(args) -> None:
    import sys

    from cinemri.io import read_any
    from cinemri.pipeline.recon_set import write_reconstructed_set
    from cinemri.pipeline.weights import resolve_checkpoint
    from cinemri.recon.inference import load_reconstructor
    from cinemri.tasks.seg.data import discover_cases
    from cinemri.tasks.seg.task import read_split_file

    refs = discover_cases(args.data)
    if args.split is not None:
        keep = set(read_split_file(args.split)["train"])
        refs = [r for r in refs if r.name in keep]
        if not refs:
            raise ValueError(f"no case of {args.data} is a 'train' case of {args.split}")
    recon = load_reconstructor(resolve_checkpoint(args.recon_checkpoint, "recon")) if "model" in args.methods else None
    files = write_reconstructed_set([lambda path=r.path: read_any(path) for r in refs], args.out, args.methods,
                                    recon=recon, acceleration=args.acceleration, seed=args.seed,
                                    cs_iters=args.cs_iters, progress=lambda line: print(line, file=sys.stderr,
                                                                                        flush=True))
    print(f"wrote {len(files)} cases ({len(refs)} cines x {len(args.methods)} methods) and split.json to {args.out}")
