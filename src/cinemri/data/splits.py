"""Named splits of a case folder: ``split.json`` (``{split: [names]}``, as ``cinemri phantom``
writes it) beside the cases ``<name>.h5``."""

from __future__ import annotations

import json
import os
from pathlib import Path


def split_cases(root: str | os.PathLike, split: str, split_file: str = "split.json",
                max_cases: int | None = None) -> list[Path]:
    """Case files of ``split`` listed in ``root/split_file`` (``root/<name>.h5`` each).

    Raises:
        ValueError: the split file is missing or malformed, the split is unknown or empty,
            or a listed case file does not exist.
    """
    root = Path(root)
    path = root / split_file
    if not path.is_file():
        raise ValueError(f"split file {path} does not exist (make one with `cinemri phantom` or by hand)")
    try:
        splits = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"split file {path} is not valid JSON ({err})") from err
    if not isinstance(splits, dict) or split not in splits:
        known = sorted(splits) if isinstance(splits, dict) else []
        raise ValueError(f"split file {path} has no split {split!r} (has: {known})")
    names = list(splits[split])[:max_cases]
    if not names:
        raise ValueError(f"split {split!r} of {path} is empty")
    files = [root / f"{name}.h5" for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"split {split!r} of {path} lists missing case files: {', '.join(missing[:3])}")
    return files
