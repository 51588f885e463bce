"""`cinemri phantom`, `cinemri show`, `cinemri info`: make, look at and inspect data."""

from __future__ import annotations

import sys
from pathlib import Path

from cinemri.cli.options import add_dataclass_flags, collect_dataclass_flags


def register(subparsers, formatter) -> None:
    from cinemri.phantom import GROUPS, PhantomOptions
    from cinemri.phantom.dataset import FILE_FORMATS, MAX_CASES, MAX_WORKERS

    p = subparsers.add_parser(
        "phantom", formatter_class=formatter,
        help="generate digital cardiac cine phantom cases (HDF5, or CMRxRecon .mat) and a train/val/test split",
        description="Generate phantom cases: one file per case, phantom_<case seed>.h5 (case i of the set "
                    "gets its own seed, derived from --seed), plus split.json. With --format cmrxrecon each case "
                    "is its fully sampled multi-coil k-space as a CMRxRecon cine file, phantom_<case seed>.mat "
                    "(MATLAB v7.3, variable kspace_full; no labels or geometry, as in CMRxRecon). Every file is "
                    "written atomically; --out is checked before any case is generated.",
        epilog="examples:\n  cinemri phantom --out data/phantom --cases 100 --seed 0 --workers 2\n"
               "  cinemri phantom --out data/small --cases 5 --height 96 --width 96 --fov-mm 320 "
               "--slice-distance-mm 8 10\n"
               "  ls data/phantom  # phantom_1484405855.h5 ... (the names of --seed 0) and split.json\n"
               "  cinemri phantom --out data/cmrx --cases 1 --format cmrxrecon  # phantom_1484405855.mat\n"
               "  cinemri analyze data/cmrx/phantom_1484405855.mat --out runs/analyze/cmrx",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--cases", type=int, default=10, help=f"number of cases, 1 to {MAX_CASES}")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole set (case i gets its own seed)")
    p.add_argument("--workers", type=int, default=1, help=f"processes generating in parallel, 1 to {MAX_WORKERS}")
    p.add_argument("--format", dest="file_format", choices=FILE_FORMATS, default=FILE_FORMATS[0],
                   help="h5: the cinemri case (image, coil maps, labels, exact indices); cmrxrecon: a CMRxRecon "
                        "cine .mat of the case's simulated fully sampled k-space")
    add_dataclass_flags(p, PhantomOptions, helps={
        "height": "image rows H (readout), 32 to 512",
        "width": "image columns W (phase encode), 32 to 512",
        "frames": "cardiac phases T over one R-R interval, 4 to 100",
        "slices": "short-axis slices S, 3 to 20 (default: drawn per case, 8 to 10)",
        "coils": "receive coils C, 1 to 32",
        "group": "diagnostic group, one of " + " ".join(GROUPS) + " (default: cycled over all five)",
        "snr": "blood SNR of the fully sampled image (default: drawn per case, 60 to 120)",
        "supersample": "render geometry this many times finer and average down (partial volume), 1 to 8",
        "fov_mm": "field of view along H in mm, 100 to 600: one value, or LOW HIGH to draw per case",
        "slice_distance_mm": "slice-to-slice distance in mm, 2 to 20: one value, or LOW HIGH to draw per case",
    })
    p.set_defaults(run=_run_phantom)

    p = subparsers.add_parser(
        "show", formatter_class=formatter,
        help="write a slice x ED/ES montage with contours and a cine GIF of a case",
        epilog="examples:\n  cinemri show data/phantom/phantom_1484405855.h5 --out figures/  "
               "# a case of `cinemri phantom --out data/phantom --seed 0`\n"
               "  cinemri show ACDC/training/patient001 --out figures/ --crop-to-heart",
    )
    p.add_argument("case", type=Path, help="a case file or folder in any supported format (see `cinemri info`)")
    p.add_argument("--out", required=True, type=Path, help="output folder for the montage PNG and the cine GIF")
    p.add_argument("--crop-to-heart", action="store_true",
                   help="crop the montage to the labelled heart (+20 mm), for full field-of-view data; "
                        "needs labels (ground truth) in the input")
    p.set_defaults(run=_run_show)

    p = subparsers.add_parser(
        "info", formatter_class=formatter,
        help="what a reader finds in an input (case .h5, CMRxRecon .mat, ACDC folder, M&Ms case, DICOM cine folder)",
        epilog="examples:\n  cinemri info data/phantom/phantom_1484405855.h5  "
               "# a case of `cinemri phantom --out data/phantom --seed 0`\n"
               "  cinemri info ACDC/training/patient001 --json\n"
               "  cinemri info sunnybrook/SCD0000101  # DICOM cine series, one file per image",
    )
    p.add_argument("path", type=Path, help="a case file or folder in any supported format")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_run_info)


def _run_phantom(args) -> None:
    from cinemri.phantom import PhantomOptions, write_dataset

    if args.cases < 1:
        raise ValueError(f"--cases must be >= 1, got {args.cases}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    paths = write_dataset(args.out, args.cases, args.seed, workers=args.workers, file_format=args.file_format,
                          **collect_dataclass_flags(args, PhantomOptions))
    print(f"wrote {len(paths)} cases and split.json to {args.out}")


def _run_show(args) -> None:
    from cinemri.files import check_output_dir
    from cinemri.io import read_any
    from cinemri.report import labelled_frames, show_case

    check_output_dir(args.out)
    case = read_any(args.case)
    if args.crop_to_heart and not labelled_frames(case):
        print(f"cinemri: note: --crop-to-heart needs labels and {args.case} has none; the montage shows the "
              "whole field of view (run `cinemri analyze` for a montage cropped to the segmented heart)",
              file=sys.stderr)
    for path in show_case(case, args.out, crop_to_heart=args.crop_to_heart):
        print(path)


def input_info(path) -> dict:
    """What ``cinemri info PATH`` shows: :func:`cinemri.io.describe` of the input plus, when it
    has labels at its ED and ES, the clinical indices of those labels
    (:func:`cinemri.clinical.label_indices`)."""
    from cinemri.clinical import label_indices
    from cinemri.io import describe_case, detect_format, read_any
    from cinemri.io import describe as describe_input

    fmt = detect_format(path)
    if fmt == "cmrxrecon-mask":
        return describe_input(path)
    case = read_any(path)
    info = describe_case(case, fmt, path)
    indices = label_indices(case)
    if indices is not None:
        info["indices"] = indices
    return info


def _run_info(args) -> None:
    from cinemri.files import json_text

    info = input_info(args.path)
    if args.json:
        print(json_text(info), end="")  # valid JSON: NaN/inf as null
        return
    numbering = info.pop("frame_numbering", None)
    for key in ("ed_frame", "es_frame"):  # one line each: the input's own number, labelled, and the index
        number = info.pop(f"{key}_number", None)
        if info.get(key) is not None and number is not None:
            info[key] = f"{number} ({numbering}; 0-based index {info[key]})"
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        print(f"{key:<{width}}  {value}")
