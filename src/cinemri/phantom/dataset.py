"""A phantom dataset on disk: one file per case (the cinemri HDF5 case, or a CMRxRecon cine
``.mat`` of its simulated k-space) plus a seeded, stratified split."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..files import check_output_dir, write_json
from .generate import generate, simulate_kspace
from .options import GROUPS, PhantomOptions, make_options

SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train, val, test, per group
MAX_CASES = 100_000
MAX_WORKERS = 64
FILE_FORMATS = ("h5", "cmrxrecon")  # the project's case file; CMRxRecon cine k-space (.mat, v7.3)


def case_seeds(seed: int, num_cases: int) -> list[int]:
    """Seeds of the cases of a dataset: distinct 31-bit ints derived from (seed, index)."""
    seeds: list[int] = []
    for i in range(num_cases):
        s = int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0] >> 1)
        seeds.append(s)
    if len(set(seeds)) != len(seeds):  # astronomically unlikely; fail rather than overwrite
        raise ValueError(f"seed={seed} gives colliding case seeds")
    return seeds


def split_names(names: list[str], groups: list[str], seed: int) -> dict[str, list[str]]:
    """Train/val/test split (70/15/15 of all cases, rounded), stratified by group, seeded.

    Each group is shuffled, the groups are interleaved round-robin, and val then test take
    the first round(0.15 N) cases each of that order, so every group is spread as evenly as
    the counts allow (with 100 balanced cases: 14/3/3 per group).
    returns {"train": [...], "val": [...], "test": [...]} with names sorted in each part.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    members = {}
    for group in sorted(set(groups)):
        names_g = sorted(n for n, g in zip(names, groups) if g == group)
        members[group] = [names_g[i] for i in rng.permutation(len(names_g))]
    order = []
    for rank in range(max((len(m) for m in members.values()), default=0)):
        order += [m[rank] for m in members.values() if rank < len(m)]
    n_val = int(round(SPLIT_FRACTIONS[1] * len(order)))
    n_test = int(round(SPLIT_FRACTIONS[2] * len(order)))
    split = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    return {k: sorted(split[k]) for k in ("train", "val", "test")}


def _write_one(job: tuple[int, PhantomOptions, str]) -> tuple[str, str, str]:
    from ..io import write_case  # imported in the worker: io is another part of the project

    case_seed, opts, out_dir, file_format = job
    case = generate(case_seed, opts)
    if file_format == "cmrxrecon":
        from ..io import write_cmrxrecon

        kspace = simulate_kspace(case, seed=case_seed)  # (S, C, T, H, W), noise at the case's SNR
        path = write_cmrxrecon(kspace, Path(out_dir) / f"{case.name}.mat")
    else:
        path = write_case(case, Path(out_dir) / f"{case.name}.h5")
    return str(path), case.name, str(case.group)


def write_dataset(out_dir, num_cases: int, seed: int, workers: int = 1, file_format: str = "h5",
                  **options) -> list[Path]:
    """Generate ``num_cases`` phantom cases into ``out_dir`` (one ``<name>.h5`` each) and
    write ``split.json``.

    file_format: "h5" (the cinemri case: image, coil maps, labels, ED/ES, exact indices) or
    "cmrxrecon" (``<name>.mat``: the case's fully sampled multi-coil k-space, simulated with
    :func:`~cinemri.phantom.simulate_kspace` seeded by the case seed, as a CMRxRecon cine
    file, :func:`cinemri.io.write_cmrxrecon`; like CMRxRecon's own files it carries no
    labels and no geometry).

    Case i has seed ``case_seeds(seed, num_cases)[i]``; when ``group`` is not given the groups
    cycle through :data:`GROUPS` (balanced, like ACDC's 20 per group). ``workers`` processes
    generate in parallel (spawned; results do not depend on it).
    Every file is written atomically (:func:`cinemri.files.atomic_write`), so an interrupted or
    failed run never leaves a half-written case under its final name.
    returns the case file paths in case order.
    Raises ValueError on a bad count (1 to :data:`MAX_CASES`), worker number (1 to
    :data:`MAX_WORKERS`) or option; OSError naming the file when one cannot be written
    (full disk, no permission). ``out_dir`` is checked before any case is generated
    (:func:`cinemri.files.check_output_dir`: ValueError when it is a file, OSError when it
    cannot be written).
    """
    if isinstance(num_cases, bool) or not isinstance(num_cases, int) or not 1 <= num_cases <= MAX_CASES:
        raise ValueError(f"num_cases must be an int in [1, {MAX_CASES}], got {num_cases!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an int in [1, {MAX_WORKERS}], got {workers!r}")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, got {file_format!r}")
    base = make_options(options)
    out = check_output_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, case_seed in enumerate(case_seeds(seed, num_cases)):
        group = base.group if base.group is not None else GROUPS[i % len(GROUPS)]
        jobs.append((case_seed, make_options({**options, "group": group}), str(out), file_format))
    if workers == 1:
        results = [_write_one(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_write_one, jobs))
    paths = [Path(p) for p, _, _ in results]
    split = split_names([n for _, n, _ in results], [g for _, _, g in results], seed)
    write_json(split, out / "split.json")
    return paths
