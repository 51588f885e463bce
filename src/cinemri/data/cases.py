"""Where datasets get their cases from: paths (read lazily) or in-memory Cases.

cinemri ``.h5`` case files are read one slice at a time (the format is chunked per slice);
other formats are read whole through :func:`cinemri.io.read_any` and kept in a small
least-recently-used cache (each DataLoader worker has its own).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from cinemri.case import Case
from cinemri.io import case_header, read_any, read_case
from cinemri.io.case_h5 import is_case_file


class CaseSource:
    """Per-slice access to a list of cases.

    cases: paths (any format :func:`cinemri.io.read_any` reads) or :class:`Case` objects.
    cache_cases: how many whole non-``.h5`` cases to keep in memory (>= 1).
    """

    def __init__(self, cases: list[str | os.PathLike | Case], cache_cases: int = 2) -> None:
        if not cases:
            raise ValueError("cases must name at least one case, got an empty list")
        if cache_cases < 1:
            raise ValueError(f"cache_cases must be >= 1, got {cache_cases}")
        self._items: list[Case | Path] = [c if isinstance(c, Case) else Path(c) for c in cases]
        self._h5 = [isinstance(c, Path) and c.suffix.lower() in (".h5", ".hdf5") and is_case_file(c)
                    for c in self._items]
        self._cache: OrderedDict[int, Case] = OrderedDict()
        self._cache_cases = cache_cases
        self._headers = [self._header(i) for i in range(len(self._items))]

    def __len__(self) -> int:
        return len(self._items)

    def _header(self, i: int) -> dict:
        """{"name", "shape": (S, T, H, W), "labelled_frames"} of case i."""
        if self._h5[i]:
            head = case_header(self._items[i])
            shapes = head["shapes"]
            if "image" in shapes:
                shape = shapes["image"]
            elif "kspace" in shapes:
                s, _, t, h, w = shapes["kspace"]
                shape = (s, t, h, w)
            else:
                shape = shapes["labels"]
            return {"name": head["name"], "shape": tuple(shape), "labelled_frames": head["labelled_frames"]}
        case = self.case(i)
        return {"name": case.name, "shape": case.shape, "labelled_frames": case.labelled_frames}

    def name(self, i: int) -> str:
        return self._headers[i]["name"]

    def shape(self, i: int) -> tuple[int, int, int, int]:
        """(S, T, H, W) of case i."""
        return self._headers[i]["shape"]

    def labelled_frames(self, i: int) -> tuple[int, ...]:
        return self._headers[i]["labelled_frames"]

    def case(self, i: int) -> Case:
        """Case i, whole (read and cached when it is a path)."""
        item = self._items[i]
        if isinstance(item, Case):
            return item
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        case = read_any(item)
        self._cache[i] = case
        while len(self._cache) > self._cache_cases:
            self._cache.popitem(last=False)
        return case

    def slice(self, i: int, s: int) -> Case:
        """Case i restricted to slice s: every per-slice array has S = 1."""
        if self._h5[i]:
            return read_case(self._items[i], slice_index=s)
        case = self.case(i)
        cut = {key: getattr(case, key)[s:s + 1] for key in ("image", "labels", "coil_maps", "kspace")
               if getattr(case, key) is not None}
        return replace(case, **cut)


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from the text of ``parts`` (same on every machine and process)."""
    import zlib

    return zlib.crc32(":".join(str(p) for p in parts).encode())


def crop_window(x: np.ndarray, size: tuple[int, int], centre: tuple[int, int]) -> np.ndarray:
    """The ``size`` window of the last two axes of ``x`` whose centre pixel is ``centre``.

    x: (..., H, W) -> (..., size[0], size[1]) same dtype; rows [cy - h // 2, cy - h // 2 + h)
    and the same for columns; parts outside x are zero. With centre (H // 2, W // 2) this is
    :func:`center_crop_or_pad`.
    """
    out = np.zeros((*x.shape[:-2], *size), dtype=x.dtype)
    src, dst = _overlap(x.shape[-2:], size, centre)
    out[..., dst[0], dst[1]] = x[..., src[0], src[1]]
    return out


def paste_window(window: np.ndarray, shape: tuple[int, int], centre: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`crop_window`: ``window`` (..., h, w) placed in zeros of (..., *shape)
    with its centre pixel at ``centre``; parts falling outside are dropped."""
    out = np.zeros((*window.shape[:-2], *shape), dtype=window.dtype)
    src, dst = _overlap(shape, window.shape[-2:], centre)
    out[..., src[0], src[1]] = window[..., dst[0], dst[1]]
    return out


def _overlap(full: tuple[int, ...], size: tuple[int, ...], centre: tuple[int, int]) -> tuple[tuple, tuple]:
    """(slices into the full image, slices into the window) of the rows/columns they share."""
    src, dst = [], []
    for n_full, n, c in zip(full, size, centre):
        start = int(c) - int(n) // 2  # first full-image index of the window
        lo, hi = max(start, 0), min(start + int(n), int(n_full))
        hi = max(hi, lo)
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    return tuple(src), tuple(dst)


def center_crop_or_pad(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop or zero-pad the last two axes of ``x`` to ``size`` around the centre.

    x: (..., H, W) any dtype -> (..., size[0], size[1]) same dtype. The centre pixel
    (H // 2, W // 2) stays the centre pixel, so it matches fftshift's convention.
    """
    return crop_window(x, size, (x.shape[-2] // 2, x.shape[-1] // 2))
