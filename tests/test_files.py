"""The one atomic writer: permissions from the umask, symlinks replaced, nothing half-written."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from io_builders import make_case

from cinemri.files import atomic_write, atomic_write_bytes, atomic_write_text, current_umask
from cinemri.io import write_case, write_labels_nifti
from cinemri.metrics import MetricTable
from cinemri.train.checkpoint import save_checkpoint


@pytest.fixture
def umask_022():
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing_it(umask_022):
    assert current_umask() == 0o022
    os.umask(0o027)
    assert current_umask() == 0o027 and os.umask(0o022) == 0o027


def _every_writer(folder: Path) -> dict[str, Path]:
    """One file from each kind of output: text, bytes, a case, a checkpoint, NIfTI labels, a CSV table."""
    case = make_case()
    table = MetricTable()
    table.add("c0", {"psnr": 30.0})
    table.to_csv(folder / "table.csv")
    save_checkpoint(folder / "last.pt", {"weights": torch.zeros(2)})
    return {
        "text": atomic_write_text(folder / "a.json", "{}\n"),
        "bytes": atomic_write_bytes(folder / "b.bin", b"\x00\x01"),
        "case": write_case(case, folder / "case.h5"),
        "labels": write_labels_nifti(case.labels[:, 0], folder / "seg.nii.gz", reference=case),
        "table": folder / "table.csv",
        "checkpoint": folder / "last.pt",
    }


def test_every_output_is_readable_by_others_under_umask_022(tmp_path, umask_022):
    for kind, path in _every_writer(tmp_path).items():
        assert _mode(path) == 0o644, (kind, oct(_mode(path)))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_a_stricter_umask_is_respected(tmp_path):
    before = os.umask(0o077)
    try:
        path = atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(before)
    assert _mode(path) == 0o600


def test_a_symlink_at_the_output_is_replaced_not_followed(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    for name, write in (("out.txt", lambda p: atomic_write_text(p, "new")),
                        ("case.h5", lambda p: write_case(make_case(), p)),
                        ("seg.nii.gz", lambda p: write_labels_nifti(make_case().labels[:, 0], p))):
        link = tmp_path / name
        link.symlink_to(target)
        write(link)
        assert not link.is_symlink() and link.is_file()
        assert target.read_text() == "keep me"


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")

    def full_disk(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="result.json: cannot write") as err:
        atomic_write(path, full_disk)
    assert err.value.errno == errno.ENOSPC
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
    with pytest.raises(ValueError, match="is a folder"):
        atomic_write_text(tmp_path, "x")


def test_unwritable_folder_is_an_oserror_naming_the_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(OSError, match="file/out.txt"):
        atomic_write_text(blocker / "out.txt", "x")


def test_label_nifti_name_must_be_nifti(tmp_path):
    with pytest.raises(ValueError, match="labels.png"):
        write_labels_nifti(np.zeros((2, 4, 4), np.uint8), tmp_path / "labels.png")


# ------------------------------------------------------------------ one JSON writer, one NaN rule


def test_write_json_writes_nan_and_inf_as_null_and_stays_valid_json(tmp_path):
    import json

    from cinemri.files import json_safe, write_json

    data = {"nan": float("nan"), "inf": np.inf, "minus_inf": -np.inf, "f32": np.float32(1.5),
            "i64": np.int64(3), "flag": np.bool_(True), "array": np.array([1.0, np.nan]),
            "tensor": torch.tensor([2.0, float("inf")]), "nested": [(np.float64("nan"), 1)], "path": tmp_path}
    path = write_json(data, tmp_path / "out.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text and ': "inf"' not in text
    loaded = json.loads(text, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}"))
    assert loaded == {"nan": None, "inf": None, "minus_inf": None, "f32": 1.5, "i64": 3, "flag": True,
                      "array": [1.0, None], "tensor": [2.0, None], "nested": [[None, 1]], "path": str(tmp_path)}
    assert json_safe(data) == loaded


def test_no_json_writer_outside_the_one_rule():
    """Every JSON file goes through cinemri.files.write_json: no module spells its own NaN rule
    (allow_nan=True, "inf" strings) or writes json.dumps output by hand."""
    import re

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in sorted([*(root / "src").rglob("*.py"), *(root / "benchmarks").rglob("*.py")]):
        text = path.read_text()
        patterns = [r"allow_nan\s*=\s*True", r"write_text\(\s*json\.dumps", r"json\.dump\(", r"def _json_safe",
                    r"def _write_json"]
        if "benchmarks" not in path.parts:  # benchmark workers print JSON to their parent process, not to users
            patterns.append(r"print\(json\.dumps")
        for pattern in patterns:
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(root)}: {pattern}")
    assert offenders == []
