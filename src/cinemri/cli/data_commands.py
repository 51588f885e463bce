"""`cinemri phantom`, `cinemri show`, `cinemri info`: make, look at and inspect data."""

from __future__ import annotations

import json
from pathlib import Path

from cinemri.cli.options import add_dataclass_flags, collect_dataclass_flags


def register(subparsers, formatter) -> None:
    from cinemri.phantom import PhantomOptions

    p = subparsers.add_parser(
        "phantom", formatter_class=formatter,
        help="generate digital cardiac cine phantom cases (HDF5) and a train/val/test split",
        description="Generate phantom cases: one HDF5 file per case plus split.json.",
        epilog="example:\n  cinemri phantom --out data/phantom --cases 100 --seed 0 --workers 2",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--cases", type=int, default=10, help="number of cases")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole set (case i gets its own seed)")
    p.add_argument("--workers", type=int, default=1, help="processes generating in parallel")
    add_dataclass_flags(p, PhantomOptions)
    p.set_defaults(run=_run_phantom)

    p = subparsers.add_parser(
        "show", formatter_class=formatter,
        help="write a slice x ED/ES montage with contours and a cine GIF of a case",
        epilog="example:\n  cinemri show data/phantom/phantom_00000.h5 --out figures/",
    )
    p.add_argument("case", type=Path, help="a case file or folder in any supported format (see `cinemri info`)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--crop-to-heart", action="store_true",
                   help="crop the montage to the labelled heart (+20 mm), for full field-of-view data")
    p.set_defaults(run=_run_show)

    p = subparsers.add_parser(
        "info", formatter_class=formatter,
        help="what a reader finds in an input (case .h5, CMRxRecon .mat, ACDC folder, M&Ms case, DICOM cine folder)",
        epilog="examples:\n  cinemri info data/phantom/phantom_00000.h5\n"
               "  cinemri info ACDC/training/patient001 --json\n"
               "  cinemri info sunnybrook/SCD0000101  # DICOM cine series, one file per image",
    )
    p.add_argument("path", type=Path)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_run_info)


def _run_phantom(args) -> None:
    from cinemri.phantom import PhantomOptions, write_dataset

    if args.cases < 1:
        raise ValueError(f"--cases must be >= 1, got {args.cases}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    paths = write_dataset(args.out, args.cases, args.seed, workers=args.workers,
                          **collect_dataclass_flags(args, PhantomOptions))
    print(f"wrote {len(paths)} cases and split.json to {args.out}")


def _run_show(args) -> None:
    from cinemri.io import read_any
    from cinemri.report import show_case

    for path in show_case(read_any(args.case), args.out, crop_to_heart=args.crop_to_heart):
        print(path)


def _run_info(args) -> None:
    from cinemri.io import inspect

    info = inspect(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        print(f"{key:<{width}}  {value}")
