"""Segmentation data sources: find the cases behind config paths and split them by case.

A source path may be an ACDC root (a folder of ``patientXXX`` folders) or one patient folder,
an M&Ms case, a cinemri case ``.h5`` file, or a folder of any of these (phantom datasets,
``cinemri recon predict`` outputs). Splits are by case (by patient for ACDC: both phases and
every slice of a patient stay on one side), stratified by group, and seeded.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import h5py

from cinemri.io import case_header, detect_format, read_info_cfg
from cinemri.seg.config import SegDataSection

CASE_FORMATS = ("cinemri-case", "acdc", "mnms1", "mnms2")


@dataclass(frozen=True)
class CaseRef:
    """One case on disk: ``path`` (file or folder), ``name`` (patient/case id), ``group``
    (diagnostic group, or None), ``role``: "train"/"val" when a split.json assigned it, else None."""

    path: Path
    name: str
    group: str | None
    role: str | None = None


_CASE_SUFFIXES = (".h5", ".hdf5")  # in a source folder, files with these names must be readable cases


def _case_format(path: Path, strict: bool = False) -> str | None:
    """The format of a case at ``path``, or None when it is none of CASE_FORMATS.

    strict: re-raise the reader's ValueError for a file named like a case (``.h5``) that
    cannot be read (truncated, damaged), instead of treating it as "not a case".
    """
    try:
        fmt = detect_format(path)
    except ValueError:
        if strict and path.is_file() and path.suffix.lower() in _CASE_SUFFIXES:
            raise
        return None
    return fmt if fmt in CASE_FORMATS else None


def _describe(path: Path, fmt: str, role: str | None) -> CaseRef:
    if fmt == "acdc":
        folder = path if path.is_dir() else path.parent
        return CaseRef(folder, folder.name, read_info_cfg(folder / "Info.cfg").get("Group"), role)
    if fmt == "cinemri-case":
        with h5py.File(path, "r") as f:
            group = f.attrs.get("group")
        group = group.decode() if isinstance(group, bytes) else (str(group) if group not in (None, "") else None)
        return CaseRef(path, case_header(path)["name"], group, role)
    return CaseRef(path, path.name.split(".")[0], None, role)


def discover_cases(sources: list[str | Path]) -> list[CaseRef]:
    """Every case under ``sources`` (see the module docstring), in a stable order.

    Raises:
        ValueError: a source that does not exist or holds no readable case, a case file
            (``.h5``) in a source folder that cannot be read, or a train/val case named in the
            folder's split.json that is not there (each named, with the count).
    """
    found: list[CaseRef] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"data source {path} does not exist")
        fmt = _case_format(path)
        if fmt is not None:
            found.append(_describe(path, fmt, None))
            continue
        if not path.is_dir():
            raise ValueError(f"data source {path} is not a case of a supported format ({', '.join(CASE_FORMATS)})")
        roles = _split_roles(path)
        before = len(found)
        unreadable: list[str] = []
        for child in sorted(path.iterdir()):
            try:
                fmt = _case_format(child, strict=True)
            except ValueError as err:
                unreadable.append(str(err))
                continue
            if fmt is not None and not (fmt == "acdc" and child.is_file()):
                ref = _describe(child, fmt, None)
                found.append(replace(ref, role=roles.get(ref.name)))
        if unreadable:
            raise ValueError(f"data source {path}: {len(unreadable)} case file(s) cannot be read, first: "
                             f"{unreadable[0]} (repair or remove them; cases are never silently dropped)")
        named = {ref.name for ref in found[before:]}
        absent = sorted(name for name, role in roles.items() if role in ("train", "val") and name not in named)
        if absent:
            raise ValueError(f"data source {path}: split.json lists {len(absent)} train/val case(s) not found in "
                             f"the folder, first: {absent[:3]}")
        if len(found) == before:
            raise ValueError(f"data source {path} holds no case of a supported format ({', '.join(CASE_FORMATS)})")
    names = [ref.name for ref in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"data sources hold several cases named {duplicates[:5]}; case names must be unique")
    return found


def _split_roles(folder: Path) -> dict[str, str]:
    """name -> "train"/"val"/"test" from ``folder/split.json`` (phantom datasets), else {}."""
    path = folder / "split.json"
    if not path.is_file():
        return {}
    try:
        split = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from err
    return {name: role for role, names in split.items() for name in names}


def stratified_split(refs: list[CaseRef], cfg: SegDataSection) -> tuple[list[CaseRef], list[CaseRef]]:
    """(train, val) of cases without a split.json role, stratified by group, seeded.

    Within each group (sorted by name, then shuffled with ``random.Random(split_seed)``):
    holdout puts the first round(n * val_fraction) cases in validation (at least one when the
    group has two or more); kfold puts case i in validation when i % folds == fold.
    """
    by_group: dict[str, list[CaseRef]] = defaultdict(list)
    for ref in sorted(refs, key=lambda r: r.name):
        by_group[ref.group or ""].append(ref)
    rng = random.Random(cfg.split_seed)
    train, val = [], []
    for group in sorted(by_group):
        members = by_group[group]
        rng.shuffle(members)
        n_val = round(len(members) * cfg.val_fraction)
        n_val = max(n_val, 1) if len(members) >= 2 else n_val
        for i, ref in enumerate(members):
            if cfg.split == "holdout":
                to_val = i < n_val
            else:
                to_val = i % cfg.folds == cfg.fold
            (val if to_val else train).append(ref)
    return sorted(train, key=lambda r: r.name), sorted(val, key=lambda r: r.name)


def split_cases(cfg: SegDataSection, sources: list[str | Path] | None = None
                ) -> tuple[list[CaseRef], list[CaseRef]]:
    """(train, val) cases of a data section (``sources`` replaces ``cfg.train`` when given).

    split.json roles are kept ("test" cases are left out of both); the other cases are split
    by :func:`stratified_split`; ``cfg.val`` sources join validation; cases named in
    ``exclude_train`` move from training to validation; ``max_cases`` trims both lists.

    Raises:
        ValueError: no training source, or no case left for training.
    """
    sources = list(cfg.train if sources is None else sources)
    if not sources:
        raise ValueError("data.train must name at least one source (ACDC folder, M&Ms case, .h5 cases)")
    refs = discover_cases(sources)
    free = [r for r in refs if r.role is None]
    train, val = stratified_split(free, cfg) if free else ([], [])
    train += [r for r in refs if r.role == "train"]
    val += [r for r in refs if r.role == "val"]
    if cfg.val:
        val += discover_cases(list(cfg.val))
    excluded = set(cfg.exclude_train)
    val += [r for r in train if r.name in excluded]
    train = [r for r in train if r.name not in excluded]
    train, val = sorted(train, key=lambda r: r.name), sorted(val, key=lambda r: r.name)
    if cfg.max_cases is not None:
        train, val = train[:cfg.max_cases], val[:cfg.max_cases]
    if not train:
        raise ValueError(f"no training case left in {sources} after the split and data.exclude_train")
    return train, val
