"""Writing output files: one atomic writer for every file the project produces.

Every output (cases, checkpoints, NIfTI label maps, JSON/CSV results, figures) goes through
:func:`atomic_write`; every JSON file through :func:`write_json`, with one NaN rule: NaN and
infinities are written as ``null`` (:func:`json_safe`), so every file is valid JSON:

- the content is written to a fresh hidden temporary file beside the target
  (``.<name>.<random>.tmp``, created exclusively, so nothing else can be opened there),
  flushed to disk, and moved over the target with ``os.replace``: a reader never sees a
  half-written file, and a failure (a full disk, an exception in the writer) leaves any
  older file untouched and no temporary file behind;
- a symbolic link at the target is replaced by the new file, never followed: the file the
  link pointed to is left unchanged;
- the file gets the permissions of an ordinary new file, ``0o666`` less the process umask
  (0644 under the usual umask 022), so others can read what was written, as with any tool
  that simply creates files.

Output folders: :func:`check_output_dir` is the one check every command that writes a
folder runs before any work (not a file, writable); :class:`StagedOutputDir` fills a run's
folder out of sight and publishes it only when complete (``cinemri analyze``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place.

    write: writes the whole content to the path it is given (an empty file that already
        exists; writers that open it by name and truncate it, such as h5py, matplotlib's
        ``savefig`` or ``Path.write_text``, are fine).
    The parent folder is created when missing. Returns ``path``.
    Raises ValueError when ``path`` is an existing folder; OSError naming ``path`` when the
    file cannot be written (full disk, read-only or missing permissions); whatever ``write``
    raises otherwise. In every failing case the temporary file is removed and an older file
    at ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise ValueError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OSError(err.errno, f"{path}: cannot write ({err.strerror or err})") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600
        os.replace(tmp, path)  # replaces a symlink at path itself, never its target
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, f"{path}: cannot write ({err.strerror or err})") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`). Returns ``path``."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_write`). Returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` with the one NaN rule of every JSON the project writes: NaN and +-inf become
    None (JSON null), numpy/torch scalars and arrays become Python numbers and lists, tuples become
    lists, Paths become strings; dicts and lists recursively. Other values are kept."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays, torch tensors
        return json_safe(value.tolist())
    return value


def json_text(data: Any, indent: int | None = 2) -> str:
    """``data`` as JSON text under the one NaN rule (:func:`json_safe`): always valid JSON
    (``allow_nan=False``), ending in a newline when indented."""
    text = json.dumps(json_safe(data), indent=indent, allow_nan=False)
    return text + "\n" if indent is not None else text


def write_json(data: Any, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` as indented JSON, NaN/inf as null (:func:`json_text`),
    atomically (:func:`atomic_write`). Returns ``path``. Raises OSError naming ``path``."""
    return atomic_write_text(path, json_text(data))


def _fsync(path: Path) -> None:
    """Flush a written file's data to disk, so the rename never exposes an empty file after a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------- output folders


def check_output_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` as a Path after checking, before any work, that a folder can be written there.

    The one check every command that writes a folder runs first: ``path`` must not be a file
    (or a link to one), and the folder itself when it exists, else its nearest existing
    ancestor, must be a folder where a file can be created (probed by creating and removing
    a hidden empty file, so read-only mounts and permissions are found, not guessed).
    Nothing is created: the caller creates the folder once its inputs are known to be good.

    what: how messages name the argument ("--out", "train.out_dir").
    Raises ValueError naming ``what`` and the path when it is a file or its nearest existing
    ancestor is not a folder; OSError naming them when nothing can be written there.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path}: is a file, not a folder")
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{what} {path}: is a dangling symbolic link")
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise ValueError(f"{what} {path}: {existing} is a dangling symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {path}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".cinemri-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OSError(err.errno, f"{what} {path}: cannot write in {existing} ({err.strerror or err})") from err
    return path


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` as a Path after checking, before any work, that a file can be written there:
    it is not a folder and its folder passes :func:`check_output_dir`. Nothing is created.

    Raises ValueError naming ``what`` and the path when it is a folder (or its folder is a
    file); OSError naming them when nothing can be written in its folder.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path}: is a folder; give a file name")
    check_output_dir(path.parent, f"{what} {path}: its folder")
    return path


class StagedOutputDir:
    """A run's output folder, filled out of sight and published only when complete.

    ``with StagedOutputDir(out) as stage:`` gives ``stage.path``, a fresh hidden folder
    ``.<out name>.<random>.partial`` beside ``out`` (in its nearest existing ancestor, so
    on the same file system); nothing at ``out`` is touched while the run writes there.
    When the block ends normally, :meth:`publish` moves the files into ``out``: a new folder
    is renamed into place in one step; into an existing folder, ``index`` (the file that
    describes the run, e.g. ``results.json``) is removed first, every new file replaces its
    namesake (each an atomic rename), files of the previous run listed in ``stale`` are
    removed, and ``index`` is moved in last -- so ``index`` present means one complete run.
    When the block raises (an error, Ctrl-C), the staging folder is removed and ``out`` is
    left exactly as it was: a failed run never leaves a half-written or mixed folder.
    """

    def __init__(self, out: str | os.PathLike, index: str, what: str = "--out") -> None:
        self.out = check_output_dir(out, what)
        self.index = index
        self.what = what
        self.path: Path | None = None
        self.stale: list[str] = []  # file names of the previous run to remove on publish

    def __enter__(self) -> StagedOutputDir:
        anchor = self.out.parent
        while not anchor.exists():
            anchor = anchor.parent
        try:
            self.path = Path(tempfile.mkdtemp(dir=anchor, prefix=f".{self.out.name}.", suffix=".partial"))
            os.chmod(self.path, 0o777 & ~current_umask())  # mkdtemp creates 0700
        except OSError as err:
            raise OSError(err.errno, f"{self.what} {self.out}: cannot write ({err.strerror or err})") from err
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self.publish()
        finally:
            if self.path is not None and self.path.exists():
                shutil.rmtree(self.path, ignore_errors=True)

    def publish(self) -> None:
        """Move the staged files into ``out`` (see the class docstring)."""
        assert self.path is not None
        try:
            if not self.out.exists():
                self.out.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.path, self.out)  # one rename (same file system: staged in an ancestor)
                return
            index = self.out / self.index
            index.unlink(missing_ok=True)  # from here on the folder reads as incomplete
            names = sorted(p.name for p in self.path.iterdir())
            for name in names:
                if name != self.index:
                    os.replace(self.path / name, self.out / name)
            for name in self.stale:
                if name not in names and Path(name).name == name:
                    (self.out / name).unlink(missing_ok=True)
            if (self.path / self.index).exists():
                os.replace(self.path / self.index, index)
        except OSError as err:
            raise OSError(err.errno, f"{self.what} {self.out}: cannot move the results into place "
                                     f"({err.strerror or err})") from err
