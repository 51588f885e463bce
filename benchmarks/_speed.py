"""What the speed benchmarks share: machine description, peak memory, median timing, and
running one job in a fresh subprocess of the calling script (same thread count for every job)."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def machine_info(threads: int) -> dict:
    """CPU model, core counts, torch/python versions, threads, UTC date and load average."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1_5_15_start": list(os.getloadavg()),
    }


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def median_time(fn, warmup: int, repeats: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def alternating(calls: dict, repeats: int) -> tuple[dict[str, float], dict]:
    """Median seconds of each of ``calls`` (name -> no-argument function), timed in alternation
    so that a machine's drift hits all alike: one warm-up call of each, then ``repeats`` rounds.
    Returns (medians, the warm-up calls' results)."""
    outputs = {name: call() for name, call in calls.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outputs


def conv_peak(shapes: list[tuple[int, ...]], repeats: int) -> dict[str, float]:
    """The machine's convolution throughput: best GFLOP/s of a 3x3 (2D) or 3x3x3 (3D) C -> C
    convolution forward over ``shapes`` (B, C, *spatial), in fp32 and under bf16 autocast.

    Returns {"fp32_gflops", "bf16_gflops"}; FLOPs = 2 B C^2 3^d prod(spatial).
    """
    import torch

    out = {}
    for dtype_name, amp in (("fp32", False), ("bf16", True)):
        best = 0.0
        for shape in shapes:
            batch, channels, *spatial = shape
            layer = torch.nn.Conv2d if len(spatial) == 2 else torch.nn.Conv3d
            conv = layer(channels, channels, 3, padding=1, bias=False)
            x = torch.randn(*shape)
            flops = 2.0 * batch * channels * channels * 3 ** len(spatial) * math.prod(spatial)

            def forward() -> None:
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    conv(x)

            median, _ = median_time(forward, 1, max(2, repeats))
            best = max(best, flops / median / 1e9)
        out[f"{dtype_name}_gflops"] = best
    return out


def achieved(row: dict, peak: dict) -> tuple[float, float]:
    """(GFLOP/s, % of the measured conv peak of the row's precision) of a timed training step
    (``row``: "step_flops", "train_s", "bf16"; ``peak``: :func:`conv_peak`'s result)."""
    gflops = row["step_flops"] / row["train_s"] / 1e9
    return gflops, 100.0 * gflops / (peak["bf16_gflops"] if row["bf16"] else peak["fp32_gflops"])


def run_job(script: str | Path, job: dict) -> dict:
    """Run ``script --worker JOB`` in a fresh subprocess; returns the worker's JSON (its last line)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]), MKL_NUM_THREADS=str(job["threads"]))
    done = subprocess.run([sys.executable, str(Path(script).resolve()), "--worker", json.dumps(job)],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"job {job['name']} failed: {tail[-1] if tail else done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])



def timing_parser(doc: str, example: str, train_repeats: int) -> argparse.ArgumentParser:
    """A parser with the options every speed benchmark shares: threads, warm-up and repeats."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"example: {example}")
    parser.add_argument("--threads", type=int, default=2, help="torch (and BART) threads (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed inference calls, median (default 3)")
    parser.add_argument("--train-repeats", type=int, default=train_repeats,
                        help=f"timed training steps, median; 0 skips (default {train_repeats})")
    return parser
