"""Screenshot a ``cinemri analyze`` report with headless Chromium and check it is not blank.

The report must open in a browser with nothing but the file: this renders it from a
``file://`` URL in a sandboxed headless Chromium (no server, no network needed), then checks
that Chromium exited 0 and that the PNG shows something (not one flat colour).

    .venv/bin/python benchmarks/report_screenshot.py runs/analyze_demo/report.html --out /tmp/report.png

Chromium is optional (Debian/Ubuntu: ``apt-get install chromium``); no test needs it.
Exit status: 0 when the screenshot looks right, 1 when a check failed, 2 without Chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MIN_INK_FRACTION = 0.01  # at least 1 % of the pixels must differ from the background colour


def find_browser() -> str | None:
    """Path of the first headless-capable Chromium on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(browser: str, report: Path, out: Path, width: int, height: int, timeout_s: float) -> float:
    """Render ``report`` to ``out`` (PNG); returns the seconds Chromium took. Raises on failure."""
    with tempfile.TemporaryDirectory() as profile:  # a throwaway profile: no state from earlier runs
        cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={width},{height}",
               report.resolve().as_uri()]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return seconds


def ink_fraction(png: Path) -> float:
    """Fraction of pixels whose colour differs from the most common one (the page background)."""
    rgb = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float(np.any(rgb != background, axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: report_screenshot.py runs/analyze_demo/report.html "
                                            "--out shot.png")
    parser.add_argument("report", type=Path, help="the report.html to render")
    parser.add_argument("--out", type=Path, default=Path("report_screenshot.png"), help="PNG to write")
    parser.add_argument("--width", type=int, default=1200, help="window width in pixels (default 1200)")
    parser.add_argument("--height", type=int, default=2400, help="window height in pixels (default 2400)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before Chromium is stopped")
    args = parser.parse_args(argv)

    if not args.report.is_file():
        print(f"report {args.report} does not exist", file=sys.stderr)
        return 1
    browser = find_browser()
    if browser is None:
        print(f"no headless browser on PATH (tried {', '.join(BROWSERS)}); apt-get install chromium",
              file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.unlink(missing_ok=True)  # a stale PNG must not pass for a fresh one
    try:
        seconds = screenshot(browser, args.report, args.out, args.width, args.height, args.timeout)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"screenshot failed: {err}", file=sys.stderr)
        return 1
    if not args.out.is_file():
        print(f"Chromium exited 0 but wrote no {args.out}", file=sys.stderr)
        return 1
    size = Image.open(args.out).size
    ink = ink_fraction(args.out)
    ok = ink >= MIN_INK_FRACTION and size == (args.width, args.height)
    print("| report | screenshot | size | non-background pixels | Chromium s | ok |\n"
          "| --- | --- | --- | --- | --- | --- |\n"
          f"| {args.report} | {args.out} | {size[0]}x{size[1]} | {100 * ink:.1f} % | {seconds:.1f} | {ok} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
