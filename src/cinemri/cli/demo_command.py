"""`cinemri demo`: the main job on the embedded phantom (what `make demo` runs).

Generates a few phantom cases, then runs `cinemri analyze` on a held-out case with the
bundled weights: 5x undersampling, the cascade reconstruction, segmentation of every frame,
clinical indices against the phantom's ground truth, and report.html.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def register(subparsers, formatter) -> None:
    from cinemri.masks import MaskOptions

    p = subparsers.add_parser(
        "demo", formatter_class=formatter,
        help="phantom cases -> 5x k-space -> cascade -> segmentation -> EF, with report.html",
        epilog="example:\n  cinemri demo --out demo_output",
    )
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.add_argument("--cases", type=int, default=6, help="phantom cases to generate")
    p.add_argument("--seed", type=int, default=0, help="seed of the phantom cases and the undersampling masks")
    p.add_argument("--acceleration", type=float, default=MaskOptions.acceleration,
                   help="undersampling factor R of the k-space the cascade reconstructs")
    p.set_defaults(run=_run_demo)


def _run_demo(args) -> None:
    from cinemri.pipeline import AnalyzeOptions, analyze
    from cinemri.cli.analyze_command import summary_text
    from cinemri.phantom import write_dataset

    start = time.perf_counter()
    data_dir = args.out / "phantom"
    write_dataset(data_dir, args.cases, args.seed, workers=2)
    split = json.loads((data_dir / "split.json").read_text())
    name = (split.get("test") or split["train"])[0]
    print(f"phantom cases: {data_dir} ({args.cases} cases, split.json); analysing held-out case {name}")
    out = args.out / "analyze" / name
    results = analyze(data_dir / f"{name}.h5", out, options=AnalyzeOptions(acceleration=args.acceleration))
    print(summary_text(results, out))
    idx, truth = results["indices"], results["ground_truth"]["indices"]
    print(f"LV EF {idx['lv_ef_pct']:.1f} % (ground truth {truth['lv_ef_pct']:.1f} %), "
          f"open {out / 'report.html'} in a browser  [{time.perf_counter() - start:.0f} s]")
