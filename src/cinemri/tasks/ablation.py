"""The core both ablations share (``cinemri recon ablate``, ``cinemri seg ablate``): train every
variant with the same budget in its own folder, score it once, and never redo finished work.

Each variant is a complete experiment whose ``train.out_dir`` is its folder. There,
``result.json`` marks it done (a rerun reads the row back instead of training again), and an
unfinished run resumes from its ``last.pt``. What differs between the two tasks -- how variants
are named and built, how a trained variant is scored, the table and the plot -- stays in
:mod:`cinemri.tasks.recon.ablation` and :mod:`cinemri.tasks.seg.ablation`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from cinemri.files import write_json

RESULT_NAME = "result.json"

# run(name, experiment, resume) -> the variant's row (JSON-able); resume: its last.pt or None
RunVariant = Callable[[str, Any, Path | None], dict[str, Any]]


def shared_budget(train: Any) -> str:
    """The training budget every variant shares, in words (``train``: a TrainConfig), e.g.
    "30 minutes of training each (at most 60 epochs), batch 16, max steps/epoch all, lr 0.001"."""
    length = (f"{train.time_budget_min:g} minutes of training each (at most {train.epochs} epochs)"
              if train.time_budget_min else f"{train.epochs} epochs")
    return f"{length}, batch {train.batch_size}, max steps/epoch {train.max_steps_per_epoch or 'all'}, lr {train.lr:g}"


def run_variants(experiments: Mapping[str, Any], run: RunVariant) -> dict[str, dict[str, Any]]:
    """{name: row} of every variant, in order: read from ``<train.out_dir>/result.json`` when a
    previous run finished it, else ``run`` (resuming from ``<train.out_dir>/<train.last_name>``
    when that exists) and written there (NaN as null, :func:`cinemri.files.write_json`)."""
    rows: dict[str, dict[str, Any]] = {}
    for name, experiment in experiments.items():
        folder = Path(experiment.train.out_dir)
        done = folder / RESULT_NAME
        if done.is_file():
            rows[name] = json.loads(done.read_text())
            continue
        last = folder / experiment.train.last_name
        rows[name] = run(name, experiment, last if last.is_file() else None)
        write_json(rows[name], done)
    return rows
