"""The cases of a reconstruction experiment: its ``data`` section's sources, split by subject,
and datasets limited to the central slices of each case (quick runs, evaluation)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from torch.utils.data import Dataset

from cinemri.data import ReconDataset, ReconOptions, split_cases
from cinemri.io import is_case_path
from cinemri.recon.config import ReconDataSection

_CASE_SUFFIXES = (".nii.gz", ".nii", ".h5", ".hdf5", ".mat")


def case_name(path: str | os.PathLike) -> str:
    """The name of a case path for ``val_names`` / ``exclude_names``: the folder name, or
    the file name without its extension (``patient090_4d.nii.gz`` -> ``patient090_4d``)."""
    name = Path(path).name
    for suffix in _CASE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _matches(name: str, names: Sequence[str]) -> str | None:
    """The entry of ``names`` that ``name`` is or starts with (followed by ``_``), or None."""
    for entry in names:
        if name == entry or name.startswith(entry + "_"):
            return entry
    return None


def source_cases(data: ReconDataSection) -> dict[str, list[Path]]:
    """``{"train": [...], "val": [...]}`` case paths of ``data.train`` (see :class:`ReconDataSection`).

    Raises:
        ValueError: a source that does not exist or holds no case, a ``val_names`` entry
            that matches no case, or no training case left.
    """
    out: dict[str, list[Path]] = {"train": [], "val": []}
    used: set[str] = set()
    for source in data.train:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"data.train: {path} does not exist")
        if path.is_dir() and (path / data.split_file).is_file():
            out["train"] += split_cases(path, data.train_split, data.split_file)
            if data.val_split:
                out["val"] += split_cases(path, data.val_split, data.split_file)
            continue
        if is_case_path(path):
            cases = [path]
        elif path.is_dir():
            cases = [child for child in sorted(path.iterdir()) if is_case_path(child)]
            if not cases:
                raise ValueError(f"data.train: folder {path} holds no case that cinemri.io reads")
        else:
            raise ValueError(f"data.train: {path} is not a case cinemri.io reads")
        for case in cases:
            name = case_name(case)
            if _matches(name, data.exclude_names) is not None:
                continue
            held = _matches(name, data.val_names)
            if held is not None:
                used.add(held)
            out["val" if held is not None else "train"].append(case)
    unused = [n for n in data.val_names if n not in used]
    if unused:
        raise ValueError(f"data.val_names: {unused} match no case of data.train {list(data.train)}")
    if not out["train"]:
        raise ValueError(f"data.train {list(data.train)}: no training case left after val_names/exclude_names")
    return out


class SliceSubset(Dataset):
    """The central ``max_slices`` slices of each case of a :class:`ReconDataset`.

    Slices [(S - k) // 2, (S - k) // 2 + k) of a case with S slices, k = min(S, max_slices):
    the ventricles, not the apex or the base. ``set_epoch`` is passed through.
    """

    def __init__(self, dataset: ReconDataset, max_slices: int) -> None:
        self.dataset = dataset
        slices: dict[int, list[int]] = {}
        for item, (case, s) in enumerate(dataset.index):
            slices.setdefault(case, []).append(item)
        self.items = []
        for items in slices.values():
            k = min(len(items), max_slices)
            start = (len(items) - k) // 2
            self.items += items[start:start + k]

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.items[index]]


def make_dataset(files: Sequence[str | os.PathLike], options: ReconOptions,
                 max_slices: int | None = None) -> Dataset:
    """A :class:`ReconDataset` of ``files``, limited to the central ``max_slices`` slices."""
    dataset = ReconDataset(list(files), options)
    return dataset if max_slices is None else SliceSubset(dataset, max_slices)
