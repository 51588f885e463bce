"""Checkpoints: plain dicts of tensors and Python scalars, written atomically, read safely.

A checkpoint loads with ``torch.load(path, weights_only=True)`` and holds:

==================  ===============================================================
key                 value
==================  ===============================================================
format              ``"cinemri-checkpoint"``; ``format_version`` an int
cinemri_version     version string of the package that wrote it
model_name          the task's model name; ``model_args`` its plain-dict arguments
model               model ``state_dict`` (unwrapped from DistributedDataParallel)
optimizer           optimizer ``state_dict``; ``scheduler`` and ``scaler`` likewise
epoch               completed epochs; ``global_step`` completed optimizer steps
best_metric         best value of ``monitor`` so far (or None); ``best_epoch``
rng                 one entry per rank: torch CPU / CUDA states, NumPy, Python random
config              the experiment config as plain dicts (``config_to_dict``)
metrics             the epoch's logged metrics (name -> float)
==================  ===============================================================
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

import cinemri
from cinemri.files import atomic_write
from cinemri.train.config import to_plain

FORMAT = "cinemri-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "cinemri_version", "model_name", "model_args", "model",
                 "optimizer", "scheduler", "scaler", "epoch", "global_step", "best_metric", "best_epoch",
                 "rng", "config")


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically with :func:`cinemri.files.atomic_write`: a
    temporary file in the same directory is written, flushed to disk and renamed over
    ``path`` (a symlink there is replaced, not followed; permissions follow the umask). A
    crash mid-write leaves any older ``path`` intact and removes the temporary file."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(dict(state), handle)

    atomic_write(path, write)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path``, loaded with ``weights_only=True`` and checked.

    Raises:
        ValueError: the file is missing, unreadable (truncated, not a torch file, unsafe
            pickle), not a cinemri checkpoint, or lacks required keys; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch.load raises many types (EOFError, RuntimeError, ...)
        raise ValueError(f"checkpoint {path} is not a readable torch file "
                         f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not a cinemri checkpoint (no format={FORMAT!r} entry)")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint {path} is missing keys: {', '.join(missing)}")
    if state["format_version"] > FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format_version {state['format_version']}, "
                         f"this cinemri reads up to {FORMAT_VERSION}")
    return state


# Model args that change how a model runs, not which weights it has: the memory layout
# (channels_last) and the reconstruction cascade's starting image (init, init_iters, init_lambda_s).
# A checkpoint resumes, fine-tunes or loads whatever they were when it was written.
WEIGHT_FREE_ARGS = frozenset({"channels_last", "init", "init_iters", "init_lambda_s"})


def check_model(state: Mapping[str, Any], path: str | Path, model_name: str,
                model_args: Mapping[str, Any]) -> None:
    """Raise ValueError naming ``path`` if the checkpoint was written for another model."""
    if state["model_name"] != model_name:
        raise ValueError(f"checkpoint {path} holds model {state['model_name']!r}, expected {model_name!r}")
    saved, wanted = (({k: v for k, v in args.items() if k not in WEIGHT_FREE_ARGS})
                     for args in (dict(state["model_args"]), to_plain(dict(model_args))))
    if saved != wanted:
        diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k, "<absent>") != wanted.get(k, "<absent>"))
        details = ", ".join(f"{k}: checkpoint {saved.get(k, '<absent>')!r} vs {wanted.get(k, '<absent>')!r}"
                            for k in diff)
        raise ValueError(f"checkpoint {path} was written with other model args ({details})")


def widen_input_channels(state: Mapping[str, Any], model: nn.Module, model_args: Mapping[str, Any],
                         path: str | Path) -> dict[str, Any]:
    """``state`` made to start a model that reads more input channels than it was written for.

    Fine-tuning a model with added inputs (e.g. a segmenter given one more image): each weight
    whose shape differs from ``model``'s only in the input-channel axis (dim 1) gets zeros for the
    added channels, so the widened model computes exactly what the checkpoint did and learns from
    there to use the new inputs. ``state`` is returned unchanged when ``model_args["in_channels"]``
    is not larger than the checkpoint's (absent means 1); ValueError naming ``path`` if no weight reads
    the input.
    """
    old = int(state["model_args"].get("in_channels", 1))
    new = int(model_args.get("in_channels", 1))
    if new <= old:
        return dict(state)
    target = model.state_dict()
    weights = dict(state["model"])
    widened = 0
    for key, weight in weights.items():
        want = target.get(key)
        if (want is not None and weight.dim() >= 2 and weight.shape[1] == old and want.shape[1] == new
                and weight.shape[0] == want.shape[0] and weight.shape[2:] == want.shape[2:]):
            pad = weight.new_zeros((weight.shape[0], new - old, *weight.shape[2:]))
            weights[key] = torch.cat([weight, pad], dim=1)
            widened += 1
    if widened == 0:
        raise ValueError(f"checkpoint {path}: no weight reads its {old} input channel(s), "
                         f"so it cannot start a model with in_channels {new}")
    return {**state, "model": weights, "model_args": {**state["model_args"], "in_channels": new}}


def load_model_state(model: nn.Module, state: Mapping[str, Any], path: str | Path) -> None:
    """Load the checkpoint's weights into ``model`` (strict); ValueError naming ``path`` on mismatch."""
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, KeyError, TypeError) as err:
        first = str(err).splitlines()
        raise ValueError(f"checkpoint {path}: weights do not fit the model "
                         f"({' '.join(line.strip() for line in first[:3])})") from err


def plain_model_args(model_args: Mapping[str, Any]) -> dict[str, Any]:
    """``model_args`` with tuples as lists; ValueError if a value is not a plain type."""
    out = to_plain(dict(model_args))
    _check_plain(out, "model_args")
    return out


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise ValueError(f"{where} must be a plain value (None/bool/int/float/str/list/dict), "
                         f"got {type(value).__name__}")


# --------------------------------------------------------------------------- RNG states


def capture_rng() -> dict[str, Any]:
    """The torch CPU/CUDA, NumPy and Python RNG states as tensors and plain types."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "python": {"version": int(py_version), "state": list(py_state), "gauss_next": py_gauss},
    }


def restore_rng(rng: Mapping[str, Any]) -> None:
    """Set every RNG from a :func:`capture_rng` dict (CUDA only if the device count matches)."""
    torch.set_rng_state(rng["torch"].cpu())
    cuda = list(rng["cuda"])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    npst = rng["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    py = rng["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def version() -> str:
    return cinemri.__version__
