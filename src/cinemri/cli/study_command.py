"""`cinemri study acceleration`: a thin wrapper of cinemri.pipeline.study."""

from __future__ import annotations

import sys
from pathlib import Path

from cinemri.cli.options import add_dataclass_flags, collect_dataclass_flags


def register(subparsers, formatter) -> None:
    from cinemri.pipeline.reconstruct import METHODS
    from cinemri.pipeline.study import StudyOptions

    group = subparsers.add_parser("study", formatter_class=formatter, help="task-based evaluation studies",
                                  description="Studies that follow a change through to the clinical numbers.")
    commands = group.add_subparsers(dest="study_command", metavar="COMMAND")

    p = commands.add_parser(
        "acceleration", formatter_class=formatter,
        help="sweep the acceleration: image quality, Dice and EF/EDV/ESV/mass errors per method and R",
        description="Undersample every case of a phantom split at each acceleration, reconstruct it with each "
                    "method, segment it and compare PSNR/SSIM, Dice and the clinical indices with the phantom's "
                    "ground truth; one more row segments the fully sampled image. Writes cases.csv, "
                    "summary.md, study.json and study.png into --out.",
        epilog="examples:\n  cinemri study acceleration --data data/phantom --out runs/study\n"
               "  cinemri study acceleration --data data/phantom --out runs/study_quick --accelerations 2 5 10 "
               "--methods zero_filled cs --max-cases 3 --slices 4")
    p.add_argument("--data", required=True, type=Path, help="phantom folder with split.json (`cinemri phantom`)")
    p.add_argument("--out", required=True, type=Path, help="folder for cases.csv, summary.md, study.json, study.png")
    p.add_argument("--recon-checkpoint", type=Path, default=None,
                   help="cascade checkpoint for --methods model (default: the bundled weights)")
    p.add_argument("--seg-checkpoint", type=Path, default=None,
                   help="segmentation checkpoint, the same for every method so that the study compares "
                        "reconstructions (default: the bundled default segmenter)")
    default_r = " ".join(f"{r:g}" for r in StudyOptions.accelerations)
    p.add_argument("--accelerations", nargs="+", type=float, default=None, metavar="R",
                   help=f"accelerations to sweep, each > 1 (default: {default_r})")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                   help=f"reconstruction methods (default: {' '.join(StudyOptions.methods)})")
    add_dataclass_flags(p, StudyOptions, skip=("accelerations", "methods"), helps={
        "split": "part of split.json to use (train, val, test)",
        "max_cases": "use only the first N cases of the split (default: all)",
        "slices": "use only the central N slices of each case (default: all)",
        "cs_iters": "iterations of the CS-TV baseline",
        "seed": "seed of the undersampling masks",
        "pattern": "undersampling pattern of the masks (vd_random or equispaced)",
        "center_lines": "fully sampled central phase-encode lines of every mask",
    })
    p.set_defaults(run=_run_acceleration)
    group.set_defaults(run=lambda args: group.print_help())


def options_from_args(args):
    """The :class:`StudyOptions` of the flags the user gave (the dataclass's defaults otherwise)."""
    from cinemri.pipeline.study import StudyOptions

    given = collect_dataclass_flags(args, StudyOptions)
    for name in ("accelerations", "methods"):
        if getattr(args, name) is not None:
            given[name] = tuple(getattr(args, name))
    return StudyOptions(**given)


def _run_acceleration(args) -> None:
    from cinemri.pipeline.study import acceleration_study

    result = acceleration_study(args.data, args.out, recon_checkpoint=args.recon_checkpoint,
                                seg_checkpoint=args.seg_checkpoint, options=options_from_args(args),
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    print((args.out / result["files"]["summary"]).read_text())
    print("files: " + ", ".join(str(args.out / name) for name in result["files"].values()))
