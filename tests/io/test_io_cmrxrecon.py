"""CMRxRecon .mat readers: v7.3 (HDF5, 512-byte header, compound complex) and v5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from io_builders import matlab_kspace, write_mat5, write_mat73

from cinemri.io import CMRXRECON_SPACING_MM, read_cmrxrecon, read_mask
from cinemri.physics import ifft2c

DEMO = Path("/work/shared/data/samples/cmrxrecon2024_demo")


@pytest.mark.parametrize("writer", [write_mat73, write_mat5])
def test_multicoil_full_kspace_axes(tmp_path, writer):
    k = matlab_kspace()  # (kx=10, ky=7, C=3, S=2, T=4)
    case = read_cmrxrecon(writer(tmp_path / "cine_sax.mat", {"kspace_full": k}))
    assert case.kspace.shape == (2, 3, 4, 10, 7) and case.kspace.dtype == np.complex64
    # element-by-element: ours[s, c, t, x, y] == matlab[x, y, c, s, t]
    assert case.kspace[1, 2, 3, 9, 6] == k[9, 6, 2, 1, 3]
    assert case.kspace[0, 1, 2, 4, 5] == k[4, 5, 1, 0, 2]
    np.testing.assert_array_equal(case.kspace, k.transpose(3, 2, 4, 0, 1))
    assert case.mask is None and case.spacing == CMRXRECON_SPACING_MM and case.spacing_assumed


@pytest.mark.parametrize("writer", [write_mat73, write_mat5])
def test_single_coil_and_demo_layouts(tmp_path, writer):
    k = matlab_kspace()[:, :, 0]  # (kx, ky, S, T)
    case = read_cmrxrecon(writer(tmp_path / "single.mat", {"kspace_single_full": k}))
    np.testing.assert_array_equal(case.kspace[:, 0], k.transpose(2, 3, 0, 1))
    assert case.kspace.shape == (2, 1, 4, 10, 7)
    demo = matlab_kspace()[:, :, 0, 0, 0]  # (kx, ky)
    case = read_cmrxrecon(writer(tmp_path / "demo.mat", {"kspace_full": demo}))
    np.testing.assert_array_equal(case.kspace[0, 0, 0], demo)


@pytest.mark.parametrize("writer", [write_mat73, write_mat5])
@pytest.mark.parametrize("transpose", [False, True])
def test_undersampled_with_mask_in_both_orders(tmp_path, writer, transpose):
    k = matlab_kspace()  # ky = 7
    lines = np.array([1, 0, 1, 1, 0, 0, 1], dtype=bool)
    mask_kx_ky = np.tile(lines, (10, 1)).astype(np.float64)  # (kx, ky)
    mask = mask_kx_ky.T if transpose else mask_kx_ky
    path = writer(tmp_path / "cine_sax.mat", {"kspace_sub04": k * lines[None, :, None, None, None], "mask04": mask})
    case = read_cmrxrecon(path)
    assert case.mask.shape == (4, 7) and case.mask.dtype == bool
    np.testing.assert_array_equal(case.mask, np.tile(lines, (4, 1)))
    assert np.all(case.kspace[..., ~lines] == 0)


def test_undersampled_mask_from_separate_file_or_data(tmp_path):
    k = matlab_kspace()
    lines = np.array([0, 1, 1, 1, 0, 0, 1], dtype=bool)
    kspace_path = write_mat73(tmp_path / "cine.mat", {"kspace_sub08": k * lines[None, :, None, None, None]})
    mask_path = write_mat73(tmp_path / "mask.mat", {"mask08": np.tile(lines, (10, 1))})
    np.testing.assert_array_equal(read_cmrxrecon(kspace_path, mask_path=mask_path).mask[0], lines)
    np.testing.assert_array_equal(read_cmrxrecon(kspace_path).mask[2], lines)  # nonzero lines
    with pytest.raises(ValueError, match="acceleration=4"):
        read_cmrxrecon(kspace_path, acceleration=4)


def test_read_mask_kt_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    kt = rng.random((7, 5)) > 0.5  # (ky, T) lines per frame
    path = write_mat5(tmp_path / "kt.mat", {"mask": np.repeat(kt[None], 10, axis=0).astype(np.float64)})
    np.testing.assert_array_equal(read_mask(path), kt.T)  # (T, W)
    partial = np.ones((10, 7))
    partial[3, 2] = 0
    path = write_mat5(tmp_path / "partial.mat", {"mask": partial})
    with pytest.raises(ValueError, match="partial.mat"):
        read_mask(path)


def test_bad_files_raise_naming_the_file(tmp_path):
    k = matlab_kspace()
    k[0, 0, 0, 0, 0] = np.nan
    bad = write_mat73(tmp_path / "nan.mat", {"kspace_full": k})
    with pytest.raises(ValueError, match="nan.mat.*NaN"):
        read_cmrxrecon(bad)
    wrong = write_mat5(tmp_path / "dims.mat", {"kspace_full": np.zeros((4, 5, 6), np.complex64)})
    with pytest.raises(ValueError, match="dims.mat.*3 dims"):
        read_cmrxrecon(wrong)
    none = write_mat5(tmp_path / "none.mat", {"other": np.zeros(3)})
    with pytest.raises(ValueError, match="none.mat.*kspace_full"):
        read_cmrxrecon(none)
    good = write_mat73(tmp_path / "cut.mat", {"kspace_full": matlab_kspace()})
    good.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(ValueError, match="cut.mat"):
        read_cmrxrecon(good)
    text = tmp_path / "text.mat"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.mat"):
        read_cmrxrecon(text)


def test_demo_files_or_synthetic_centre_energy(tmp_path):
    """The demo k-space has its DC near the centre and an image with the energy inside;
    without the shared data the same check runs on a synthetic centred object."""
    if (DEMO / "cine_sax.mat").is_file():
        case = read_cmrxrecon(DEMO / "cine_sax.mat")
        assert case.kspace.shape == (1, 1, 1, 512, 246)
        mask = read_mask(DEMO / "cine_sax_mask_Uniform8.mat")
        assert mask.shape == (1, 246) and mask[0, 115:131].all() and 40 <= mask.sum() <= 50
    else:
        obj = np.zeros((40, 22), np.complex64)
        obj[15:25, 8:14] = 1
        kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj)))
        case = read_cmrxrecon(write_mat73(tmp_path / "c.mat", {"kspace_full": kspace}))
    k = case.kspace[0, 0, 0]
    h, w = k.shape
    peak = np.unravel_index(np.abs(k).argmax(), k.shape)
    assert abs(peak[0] - h // 2) <= 8 and abs(peak[1] - w // 2) <= 8
    image = ifft2c(torch.from_numpy(k)).abs().numpy()
    centre = image[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    assert (centre ** 2).sum() > 0.5 * (image ** 2).sum()


def test_write_cmrxrecon_round_trip_in_matlab_v73_layout(tmp_path):
    import h5py

    from cinemri.io import write_cmrxrecon

    rng = np.random.default_rng(3)
    kspace = (rng.standard_normal((2, 3, 5, 15, 12)) + 1j * rng.standard_normal((2, 3, 5, 15, 12))).astype(np.complex64)
    path = write_cmrxrecon(kspace, tmp_path / "cine_sax.mat")
    raw = path.read_bytes()
    assert raw[:19] == b"MATLAB 7.3 MAT-file" and raw[124:128] == b"\x00\x02IM"  # MATLAB's v7.3 header
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        stored = f["kspace_full"]
        assert stored.shape == (5, 2, 3, 12, 15)  # (T, S, C, W, H): MATLAB's (kx, ky, coils, slices, frames) reversed
        assert stored.dtype.names == ("real", "imag") and stored.attrs["MATLAB_class"] == b"single"
        assert stored[1, 0, 2, 7, 4]["real"] == kspace[0, 2, 1, 4, 7].real
    case = read_cmrxrecon(path)
    np.testing.assert_array_equal(case.kspace, kspace)
    assert case.mask is None and case.spacing == CMRXRECON_SPACING_MM and case.spacing_assumed
    assert write_cmrxrecon(kspace, tmp_path / "again.mat").read_bytes() == raw  # no date: the same file


def test_write_cmrxrecon_refuses_bad_input_by_name(tmp_path):
    from cinemri.io import write_cmrxrecon

    good = np.ones((1, 1, 2, 4, 4), np.complex64)
    with pytest.raises(ValueError, match="bad.mat.*S, C, T, H, W"):
        write_cmrxrecon(good[0], tmp_path / "bad.mat")
    with pytest.raises(ValueError, match="NaN"):
        write_cmrxrecon(good * np.nan, tmp_path / "bad.mat")
    with pytest.raises(ValueError, match="variable name"):
        write_cmrxrecon(good, tmp_path / "bad.mat", name="image")
    assert not list(tmp_path.iterdir())
