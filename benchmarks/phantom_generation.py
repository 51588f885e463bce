"""How long the digital phantom takes to generate and write (default size), on this machine.

    .venv/bin/python benchmarks/phantom_generation.py --cases 100 --workers 2 --out /tmp/phantom_bench

Prints a Markdown table and writes benchmarks/results/phantom_generation.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from cinemri.files import write_json
from cinemri.phantom import generate_case, write_dataset


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg_1min": os.getloadavg()[0], "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/phantom_bench"))
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "phantom_generation.json")
    args = parser.parse_args()

    start = time.perf_counter()
    generate_case(12345)  # one case in this process, generation only (no file)
    one_case_s = time.perf_counter() - start

    shutil.rmtree(args.out, ignore_errors=True)
    start = time.perf_counter()
    paths = write_dataset(args.out, args.cases, seed=0, workers=args.workers)
    total_s = time.perf_counter() - start
    size_mb = sum(p.stat().st_size for p in paths) / 1e6

    result = {"cases": args.cases, "workers": args.workers, "one_case_generate_s": round(one_case_s, 2),
              "total_s": round(total_s, 1), "per_case_s": round(total_s / args.cases, 2),
              "disk_mb_total": round(size_mb, 1), "machine": machine()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.json)  # NaN as null, atomically
    print("| cases | workers | one case (generate only) | total (generate + write) | per case | disk |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {args.cases} | {args.workers} | {one_case_s:.1f} s | {total_s:.0f} s | {total_s / args.cases:.2f} s "
          f"| {size_mb:.0f} MB |")


if __name__ == "__main__":
    main()
