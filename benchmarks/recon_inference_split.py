"""Where the bundled cascade's inference time goes: the whole cascade against its CS-TV start alone,
on one real cine slice, side by side in one run (issue 11: inference <= 0.5x BART's time).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/recon_inference_split.py
    .venv/bin/python benchmarks/recon_inference_split.py --slice 2 --coils 8 --repeats 5

The slice is simulated as ``recon_real_anatomy.py`` does (``undersampled_slice``: 5x ``vd_random``
mask seeded by the slice index; ``--coils``); the cascade runs as inference runs it
(``cascade_slice_method``: p99 normalisation, its inference precision), its start alone by
``Cascade.start_image`` (for the bundled cascade ``cs_tv`` with its ``init_iters`` and ``init_lambda_s``). One warm-up call of each,
then ``--repeats`` alternating pairs (``_speed.alternating``); the medians are printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from _paths import PATIENT090  # benchmarks/ is sys.path[0] as a script
from _speed import alternating
from cinemri.data.simulate import undersampled_slice
from cinemri.io import read_any
from cinemri.pipeline.recon_set import cascade_slice_method
from cinemri.pipeline.weights import bundled_path
from cinemri.recon.inference import load_reconstructor

DEFAULT_DATA = PATIENT090


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a cine the project reads")
    parser.add_argument("--checkpoint", type=Path, default=bundled_path("recon"))
    parser.add_argument("--slice", type=int, default=3)
    parser.add_argument("--coils", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    volume = np.abs(read_any(args.data).image).astype(np.float32)  # (S, T, H, W)
    loaded = load_reconstructor(args.checkpoint)
    model = loaded.config.model
    cascade = cascade_slice_method(loaded.model, loaded.autocast)
    start = torch.inference_mode()(loaded.model.start_image)

    kspace, mask, maps = undersampled_slice(volume[args.slice], 5.0, seed=args.slice, coils=args.coils)
    medians, _ = alternating({"cascade": lambda: cascade(kspace, mask, maps),
                              "start": lambda: start(kspace, mask, maps)}, args.repeats)
    whole, cs = medians["cascade"], medians["start"]
    print(f"{args.data.name} slice {args.slice}, {args.coils} coil(s), shape {tuple(kspace.shape)}: cascade "
          f"{whole:.3f} s, its start ({model.init_iters} CS-TV iterations, lambda_s {model.init_lambda_s:g}) "
          f"{cs:.3f} s = {100 * cs / whole:.0f} %")


if __name__ == "__main__":
    main()
