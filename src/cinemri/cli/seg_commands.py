"""`cinemri seg train | eval | predict | ablate | grad-analysis`."""

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
