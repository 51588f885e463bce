"""`cinemri demo`: the main job on the embedded phantom (what `make demo` runs)."""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers, formatter) -> None:
    p = subparsers.add_parser(
        "demo", formatter_class=formatter,
        help="generate phantom cases, show one held-out case (montage + cine GIF), print where they are",
        epilog="example:\n  cinemri demo --out demo_output",
    )
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.add_argument("--cases", type=int, default=6, help="phantom cases to generate")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_demo)


def _run_demo(args) -> None:
    from cinemri.io import read_case
    from cinemri.phantom import write_dataset
    from cinemri.report import show_case

    data_dir = args.out / "phantom"
    write_dataset(data_dir, args.cases, args.seed, workers=2)
    split = json.loads((data_dir / "split.json").read_text())
    name = (split.get("test") or split["train"])[0]
    case = read_case(data_dir / f"{name}.h5")
    figures = show_case(case, args.out / "figures", crop_to_heart=True)
    print(f"phantom cases: {data_dir} ({args.cases} cases, split.json)")
    print(f"held-out case {name} ({case.group}): " +
          ", ".join(f"{k}={v:.1f}" for k, v in case.indices.items()))
    for path in figures:
        print(f"figure: {path}")
