"""A tiny wrapper around the BART toolbox (https://mrirecon.github.io/bart/) for benchmarks.

BART is optional: :func:`available` says whether the ``bart`` command is on PATH, and every
other function raises ``RuntimeError`` when it is not. Arrays go through ``.cfl``/``.hdr``
files in a temporary folder (BART's own format: complex64, column-major, one header line of
dimensions) and one ``bart`` process per call.

Layout. BART's dimensions (``mri.h``) are [READ_DIM 0, PHS1_DIM 1, PHS2_DIM 2, COIL_DIM 3,
MAPS_DIM 4, ..., TIME_DIM 10]. Our k-space ``(C, T, H, W)`` of one slice becomes BART's
``[H, W, 1, C, 1, 1, 1, 1, 1, 1, T]`` (H = readout on dim 0, W = phase encode on dim 1,
frames on dim 10), coil maps ``(C, H, W)`` become ``[H, W, 1, C]`` and the mask ``(T, W)``
becomes the pattern ``[H, W, 1, 1, 1, 1, 1, 1, 1, 1, T]``. So ``-R T:1024:0:lambda`` (flag
1024 = bit 10) is total variation along time, as in our :func:`cinemri.recon.cs_tv`.

BART's centred FFT puts the centre at index N // 2 like ``fftshift`` and its ``-u`` FFT is
unitary, so ``bart fft -u -i 3`` equals our ``ifft2c``; :func:`zero_filled` lets a
benchmark check the layout against ``cinemri.recon.zero_filled``.

Run ``python benchmarks/bart.py`` for a self-check (file round trip and layout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

NUM_DIMS = 16  # BART's DIMS
COIL_DIM = 3
TIME_DIM = 10


def available() -> bool:
    """True when the ``bart`` command is on PATH."""
    return shutil.which("bart") is not None


def version() -> str | None:
    """BART's version string (e.g. ``"v0.8.00"``), or None when it is not installed."""
    if not available():
        return None
    done = subprocess.run(["bart", "version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def write_cfl(stem: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (any shape up to 16 dims, cast to complex64) as ``stem.cfl`` + ``stem.hdr``.

    The array's axes are BART's dimensions in order; data is stored column-major.
    """
    array = np.asarray(array)
    if array.ndim > NUM_DIMS:
        raise ValueError(f"array has {array.ndim} dims; BART takes at most {NUM_DIMS}")
    dims = list(array.shape) + [1] * (NUM_DIMS - array.ndim)
    stem = Path(stem)
    stem.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(str(d) for d in dims) + "\n")
    array.astype(np.complex64).ravel(order="F").tofile(stem.with_suffix(".cfl"))


def read_cfl(stem: str | os.PathLike) -> np.ndarray:
    """Read ``stem.cfl`` + ``stem.hdr`` into a complex64 array of 16 dims (BART's order).

    Raises:
        ValueError: the header has no dimension line or the data size does not match it.
    """
    stem = Path(stem)
    lines = [ln for ln in stem.with_suffix(".hdr").read_text().splitlines() if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError(f"{stem.with_suffix('.hdr')}: no dimension line")
    dims = [int(d) for d in lines[0].split()]
    dims += [1] * (NUM_DIMS - len(dims))
    data = np.fromfile(stem.with_suffix(".cfl"), dtype=np.complex64)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{stem.with_suffix('.cfl')}: {data.size} values, header says {dims}")
    return data.reshape(dims, order="F")


def run(args: Sequence[str], inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
        threads: int | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Run one ``bart`` command on arrays through a temporary folder.

    args: the command after ``bart``, naming inputs and outputs by their keys, e.g.
        ``["fft", "-u", "-i", "3", "ksp", "img"]``.
    inputs: {name: array in BART's dimension order}; outputs: names BART writes.
    threads: OMP_NUM_THREADS for BART (None leaves the environment as it is).
    returns ({name: complex64 array of 16 dims}, wall seconds of the ``bart`` process alone)

    Raises:
        RuntimeError: BART is not installed, or the command fails (with BART's message).
    """
    if not available():
        raise RuntimeError("the 'bart' command is not on PATH (Debian/Ubuntu: apt-get install bart)")
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="cinemri_bart_") as tmp:
        for name, array in inputs.items():
            write_cfl(Path(tmp, name), array)
        start = time.perf_counter()
        done = subprocess.run(["bart", *args], cwd=tmp, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(f"bart {' '.join(args)} failed ({done.returncode}): {message[-1] if message else ''}")
        return {name: read_cfl(Path(tmp, name)) for name in outputs}, seconds


def _check(kspace: np.ndarray, maps: np.ndarray, mask: np.ndarray | None) -> tuple[int, int, int, int]:
    if kspace.ndim != 4 or maps.ndim != 3 or kspace.shape[0] != maps.shape[0] or kspace.shape[2:] != maps.shape[1:]:
        raise ValueError(f"expected kspace (C, T, H, W) and maps (C, H, W), got {kspace.shape} and {maps.shape}")
    c, t, h, w = kspace.shape
    if mask is not None and mask.shape != (t, w):
        raise ValueError(f"mask must be (T, W) = {(t, w)}, got {mask.shape}")
    return c, t, h, w


def kspace_to_bart(kspace: np.ndarray) -> np.ndarray:
    """(C, T, H, W) complex -> BART [H, W, 1, C, 1, 1, 1, 1, 1, 1, T] complex64."""
    c, t, h, w = kspace.shape
    out = np.transpose(kspace, (2, 3, 0, 1)).astype(np.complex64)  # (H, W, C, T)
    return out.reshape(h, w, 1, c, 1, 1, 1, 1, 1, 1, t)


def maps_to_bart(maps: np.ndarray) -> np.ndarray:
    """(C, H, W) complex -> BART [H, W, 1, C] complex64."""
    c, h, w = maps.shape
    return np.transpose(maps, (1, 2, 0)).astype(np.complex64).reshape(h, w, 1, c)


def mask_to_bart(mask: np.ndarray, height: int) -> np.ndarray:
    """(T, W) bool -> BART pattern [H, W, 1, 1, 1, 1, 1, 1, 1, 1, T] complex64 of 0/1.

    ``pics`` wants the pattern's dims equal to the k-space's except the coil dim (no
    broadcasting along the readout), so the mask is repeated over the H readout rows.
    """
    t, w = mask.shape
    pattern = np.broadcast_to(np.transpose(mask, (1, 0))[None], (height, w, t)).astype(np.complex64)  # (H, W, T)
    return pattern.reshape(height, w, 1, 1, 1, 1, 1, 1, 1, 1, t)


def image_from_bart(image: np.ndarray) -> np.ndarray:
    """BART image [H, W, 1, 1, 1, 1, 1, 1, 1, 1, T, 1...] -> (T, H, W) complex64."""
    h, w, t = image.shape[0], image.shape[1], image.shape[TIME_DIM]
    if image.size != h * w * t:
        raise ValueError(f"expected a single-map image [H, W, ..., T], got dims {image.shape}")
    return np.ascontiguousarray(np.transpose(image.reshape(h, w, t, order="F"), (2, 0, 1)))


def zero_filled(kspace: np.ndarray, maps: np.ndarray, threads: int | None = None) -> np.ndarray:
    """BART's zero-filled SENSE image sum_c conj(S_c) * ifft2c(y_c) (``fft -u -i 3`` + ``fmac -C -s 8``).

    kspace: (C, T, H, W) complex (zero where not sampled), maps: (C, H, W) complex
    returns (T, H, W) complex64
    """
    _check(kspace, maps, None)
    coil_images, _ = run(["fft", "-u", "-i", "3", "ksp", "cim"], {"ksp": kspace_to_bart(kspace)}, ["cim"], threads)
    combined, _ = run(["fmac", "-C", "-s", str(1 << COIL_DIM), "cim", "sens", "img"],
                      {"cim": coil_images["cim"], "sens": maps_to_bart(maps)}, ["img"], threads)
    return image_from_bart(combined["img"])


def pics(kspace: np.ndarray, maps: np.ndarray, mask: np.ndarray | None = None, *,
         regularization: str = "T:1024:0:0.01", iterations: int = 50, rescale: bool = True,
         threads: int | None = None) -> tuple[np.ndarray, float]:
    """BART ``pics`` of one slice: ``bart pics [-S] -R <regularization> -i <iterations> [-p pattern]``.

    kspace: (C, T, H, W) complex, zero where not sampled; maps: (C, H, W) complex;
    mask: (T, W) bool passed as ``-p`` pattern (None: BART derives it from the non-zeros).
    regularization: BART's ``-R`` string; the default is temporal TV, lambda 0.01.
    rescale: pass ``-S`` so the image comes back in the units of the input (pics scales the
        data internally; without -S the output stays in that internal scale, which would
        shift every PSNR by a constant). It does not change the solution.
    returns ((T, H, W) complex64 image, wall seconds of the ``bart pics`` process)

    Raises:
        ValueError: on shapes that do not fit; RuntimeError: BART missing or failing.
    """
    _check(kspace, maps, mask)
    args = ["pics", "-R", regularization, "-i", str(iterations)]
    inputs = {"ksp": kspace_to_bart(kspace), "sens": maps_to_bart(maps)}
    if rescale:
        args.insert(1, "-S")
    if mask is not None:
        args += ["-p", "pat"]
        inputs["pat"] = mask_to_bart(mask, kspace.shape[2])
    outputs, seconds = run(args + ["ksp", "sens", "img"], inputs, ["img"], threads)
    return image_from_bart(outputs["img"]), seconds


def _self_check() -> None:
    """Round trip through .cfl and, with BART installed, its zero-filled image against ours."""
    rng = np.random.default_rng(0)
    c, t, h, w = 2, 3, 9, 12  # odd H on purpose
    kspace = (rng.standard_normal((c, t, h, w)) + 1j * rng.standard_normal((c, t, h, w))).astype(np.complex64)
    with tempfile.TemporaryDirectory() as tmp:
        write_cfl(Path(tmp, "x"), kspace_to_bart(kspace))
        back = read_cfl(Path(tmp, "x"))
    assert np.array_equal(back.reshape(kspace_to_bart(kspace).shape), kspace_to_bart(kspace)), "cfl round trip"
    print("cfl round trip: ok")
    if not available():
        print("bart not on PATH: layout check skipped")
        return
    import torch

    from cinemri.recon import zero_filled as ours

    maps = (rng.standard_normal((c, h, w)) + 1j * rng.standard_normal((c, h, w))).astype(np.complex64)
    mask = rng.random((t, w)) < 0.5
    kspace = kspace * mask[None, :, None, :]
    mine = ours(torch.from_numpy(kspace)[None], torch.from_numpy(mask)[None, None, :, None, :],
                torch.from_numpy(maps)[None])[0].numpy()
    theirs = zero_filled(kspace, maps)
    error = np.abs(mine - theirs).max() / np.abs(mine).max()
    print(f"BART {version()} zero-filled vs cinemri.recon.zero_filled: max relative difference {error:.2e}")
    assert error < 1e-5, "layout or FFT convention differs"


if __name__ == "__main__":
    _self_check()
