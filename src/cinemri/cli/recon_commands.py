"""`cinemri recon train | eval | predict | ablate`: thin wrappers of cinemri.tasks.recon and
cinemri.pipeline.predict."""

from __future__ import annotations

import math
from pathlib import Path

from cinemri.cli.options import (add_config_flags, add_dataclass_flags, add_training_data_flag, collect_dataclass_flags,
                                 overrides_with_data, print_epoch)

RECON_SOURCES = ("cases, DICOM series, folders of cases, phantom folders with split.json; "
                 "data.val_names pick the validation subjects")


def register(subparsers, formatter) -> None:
    from cinemri.tasks.recon.evaluate import EvalOptions

    group = subparsers.add_parser("recon", formatter_class=formatter, help="train, evaluate and apply reconstruction models",
                                  description="Dynamic (cine) reconstruction from undersampled k-space.")
    commands = group.add_subparsers(dest="recon_command", metavar="COMMAND")

    p = commands.add_parser(
        "train", formatter_class=formatter, help="train a reconstruction model from YAML configs",
        epilog="examples:\n  cinemri recon train --config configs/recon/cascade_unet3d_cbam.yaml\n"
               "  cinemri recon train --config configs/recon/cascade_unet3d_cbam.yaml --set train.epochs=5 "
               "--set train.out_dir=runs/quick\n"
               "  cinemri recon train --config configs/recon/cascade_unet3d_cbam.yaml "
               "--resume runs/recon/cascade_unet3d_cbam/last.pt\n"
               "  cinemri recon train --config configs/recon/cascade_real.yaml "
               "--data /data/sunnybrook data/phantom")
    add_config_flags(p)
    add_training_data_flag(p, RECON_SOURCES)
    p.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from (last.pt)")
    p.set_defaults(run=_run_train)

    p = commands.add_parser(
        "eval", formatter_class=formatter,
        help="score a model, zero filling and CS-TV (PSNR, SSIM, NMSE per case) and draw a comparison",
        epilog="example:\n  cinemri recon eval --checkpoint runs/recon/cascade_unet3d_cbam/best.pt "
               "--data data/phantom --split test --acceleration 5 --json results/recon_eval.json "
               "--out results/recon_eval")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint of `cinemri recon train`")
    p.add_argument("--data", required=True, nargs="+", type=Path,
                   help="a folder with split.json (or just .h5 cases), a case folder (DICOM series) or a "
                        "folder of them, or case files")
    p.add_argument("--json", type=Path, default=None, help="also write the result JSON here")
    p.add_argument("--out", type=Path, default=None, help="folder for metrics.json/.csv, comparison.png/.gif")
    add_dataclass_flags(p, EvalOptions, helps={
        "split": "part of split.json to score (train, val, test), when --data is a folder with one",
        "acceleration": "undersampling factor R (default: the checkpoint's data.acceleration)",
        "max_cases": "score only the first N cases of the split (default: all)",
        "max_slices_per_case": "score only the central N slices of each case (default: all)",
        "cs": "also score the CS-TV baseline",
        "cs_lambda_t": "CS-TV temporal weight, relative to max |zero-filled|",
        "cs_lambda_s": "CS-TV spatial weight, relative to max |zero-filled|",
        "cs_iters": "CS-TV iterations",
        "figures": "write comparison.png and comparison.gif into --out",
    })
    p.set_defaults(run=_run_eval)

    p = commands.add_parser(
        "predict", formatter_class=formatter,
        help="reconstruct a case (.h5, CMRxRecon .mat, ...) into a case .h5 at the input's size",
        epilog="examples:\n  cinemri recon predict data/phantom/phantom_1484405855.h5 --checkpoint best.pt "
               "--out recon.h5 --acceleration 5\n"
               "  cinemri recon predict AccFactor08/P001/cine_sax.mat --checkpoint best.pt --out recon.h5")
    p.add_argument("input", type=Path, help="cinemri case .h5, CMRxRecon .mat or any case `cinemri info` reads "
                   "(magnitude images get simulated coils)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint of `cinemri recon train` (default: the bundled reconstruction weights)")
    p.add_argument("--out", required=True, type=Path, help="output case .h5")
    p.add_argument("--acceleration", type=float, default=None,
                   help="undersample a fully sampled input at this rate first")
    p.add_argument("--mask", type=Path, default=None, help="CMRxRecon mask .mat for undersampled k-space")
    p.add_argument("--name", default=None,
                   help="case name stored in the output (default: the input's); names must be unique in a data set")
    p.set_defaults(run=_run_predict)

    p = commands.add_parser(
        "ablate", formatter_class=formatter,
        help="train and score every variant of ablation.variants with one budget; Markdown table + plot",
        epilog="example:\n  cinemri recon ablate --config configs/recon/ablation.yaml --out runs/recon/ablation "
               "--set train.epochs=4 --set data.max_train_cases=8")
    add_config_flags(p, "YAML files with ablation.variants",
                      "override for every variant, e.g. train.epochs=2 (repeatable)")
    add_training_data_flag(p, RECON_SOURCES)
    p.add_argument("--out", required=True, type=Path, help="folder: one sub-folder per variant, table, plot")
    p.set_defaults(run=_run_ablate)
    group.set_defaults(run=lambda args: group.print_help())


def _run_train(args) -> None:
    from cinemri.tasks.recon.task import train

    result = train(args.config, overrides_with_data(args), resume=args.resume, on_epoch_end=print_epoch)
    best = f"; best {result.best_metric:.6g} at epoch {result.best_epoch}" if result.best_metric is not None else ""
    print(f"trained {result.epochs_completed} epochs ({result.global_step} steps){best}")
    print(f"last checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint}")


def _fmt(summary: dict) -> str:
    mean, std = summary["mean"], summary["std"]
    return f"{mean:.4g} ± {std:.2g}" if math.isfinite(std) else f"{mean:.4g}"


def _run_eval(args) -> None:
    from cinemri.tasks.recon.evaluate import EvalOptions, evaluate

    options = EvalOptions(**collect_dataclass_flags(args, EvalOptions))
    result = evaluate(args.checkpoint, args.data if len(args.data) > 1 else args.data[0], out_dir=args.out,
                      json_path=args.json, options=options)
    print(f"{len(result['cases'])} cases, R={result['acceleration']:g}; {result['conventions']}")
    for name, entry in result["methods"].items():
        s = entry["summary"]
        print(f"{name:>12}: PSNR {_fmt(s['psnr'])} dB  SSIM {_fmt(s['ssim'])}  NMSE {_fmt(s['nmse'])}  "
              f"{entry['seconds_per_slice']:.3f} s/slice")
    if args.json is None and args.out is None:
        from cinemri.files import json_text

        print(json_text({k: v["summary"] for k, v in result["methods"].items()}, indent=None))  # NaN as null


def _run_predict(args) -> None:
    from cinemri.pipeline.predict import predict_recon
    from cinemri.pipeline.weights import resolve_checkpoint

    checkpoint = resolve_checkpoint(args.checkpoint, "recon")
    print(predict_recon(args.input, checkpoint, args.out, acceleration=args.acceleration, mask_path=args.mask,
                        name=args.name))


def _run_ablate(args) -> None:
    from cinemri.tasks.recon.ablation import ablate

    result = ablate(args.config, args.out, overrides_with_data(args))
    print(Path(result["table"]).read_text())
    print(f"table: {result['table']}\nplot: {result['plot']}")
