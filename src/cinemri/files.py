"""Writing output files: one atomic writer for every file the project produces.

Every output (cases, checkpoints, NIfTI label maps, JSON/CSV results, figures) goes through
:func:`atomic_write`:

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
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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


def _fsync(path: Path) -> None:
    """Flush a written file's data to disk, so the rename never exposes an empty file after a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
