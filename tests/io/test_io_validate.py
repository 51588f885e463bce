"""One validation of spacing and image content, applied by every reader."""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from io_builders import ACDC_AFFINE, make_case, matlab_kspace, write_acdc, write_mat5, write_mat73, write_mnms2

from cinemri.io import read_acdc, read_any, read_case, read_cmrxrecon, read_mnms, read_volume, write_case
from cinemri.io.validate import check_case, check_image, check_kspace, check_spacing


# ----------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("spacing, message", [
    ((0.0, 1.5, 1.5), "dz = 0 mm"), ((8.0, -1.0, 1.5), "dy = -1 mm"), ((8.0, 1.5, float("nan")), "dx = nan"),
    ((8.0, float("inf"), 1.5), "dy = inf"), ((8.0, 0.1, 1.5), "dy = 0.1 mm is outside"),
    ((8.0, 1.5, 25.0), "dx = 25 mm is outside"), ((0.3, 1.5, 1.5), "dz = 0.3 mm is outside"),
    ((31.0, 1.5, 1.5), "dz = 31 mm is outside"), ((8.0, 1.5), "three numbers"), ("abc", "three numbers"),
])
def test_bad_spacing_names_where_and_value(spacing, message):
    with pytest.raises(ValueError, match="case.h5: .*" + message.replace("(", r"\(")):
        check_spacing(spacing, "case.h5")


def test_plausible_spacing_passes_as_floats():
    assert check_spacing((10, 0.7, 1.25), "x") == (10.0, 0.7, 1.25)
    assert check_spacing(np.array([0.5, 0.3, 20.0]), "x") == (0.5, 0.3, 20.0)


def _picture(shape=(2, 3, 9, 7), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros((2, 3, 9, 7), np.float32), "blank"),
    (lambda: np.full((2, 3, 9, 7), 7.5, np.float32), "constant"),
    (lambda: np.full((2, 3, 9, 7), 1 + 1j, np.complex64) * np.exp(1j * _picture()), "constant"),  # phase only
    (lambda: np.where(np.arange(2 * 3 * 9 * 7).reshape(2, 3, 9, 7) == 5, 100.0, 3.0), "no contrast"),
    (lambda: 1000.0 + 1e-4 * _picture(), "constant"),  # equal up to float32 rounding
    (lambda: _picture() * 1e30, "outside"),
    (lambda: _picture() * 1e-30, "outside"),
    (lambda: np.where(np.isin(np.arange(3), [1])[None, :, None, None], 0.0, _picture()), r"frame\(s\) \[1\]"),
    (lambda: np.where(_picture() > 0.5, np.nan, 1.0), "NaN or Inf"),
    (lambda: np.zeros((0, 3, 9, 7), np.float32), "empty"),
])
def test_unusable_images_are_refused(make, message):
    with pytest.raises(ValueError, match="scan.nii: image .*" + message if message != "empty" else "empty"):
        check_image(make(), "scan.nii")


def test_a_tiny_odd_image_with_a_small_object_passes():
    image = np.zeros((1, 2, 15, 12), np.float32)
    image[:, :, 4:8, 3:6] = 200.0  # 12 of 180 pixels: contrast
    check_image(image, "x")
    check_image(_picture((1, 1, 5, 3)).astype(np.complex64), "x")


def test_kspace_rules():
    k = matlab_kspace().transpose(3, 2, 4, 0, 1)  # (S, C, T, H, W)
    check_kspace(k, "k")
    with pytest.raises(ValueError, match="k: k-space is blank"):
        check_kspace(np.zeros_like(k), "k")
    empty_frame = k.copy()
    empty_frame[:, :, 2] = 0
    with pytest.raises(ValueError, match=r"k: k-space frame\(s\) \[2\]"):
        check_kspace(empty_frame, "k")
    with pytest.raises(ValueError, match="outside"):
        check_kspace(k * 1e20, "k")


def test_check_case_uses_source_and_returns_the_case():
    case = make_case()
    assert check_case(case) is case
    with pytest.raises(ValueError, match="from/here.h5: slice distance dz = 0"):
        check_case(replace(case, spacing=(0.0, 1.0, 1.0), source="from/here.h5"))
    labels_only = replace(case, image=None, coil_maps=None)
    assert check_case(labels_only) is labels_only  # nothing to look at but spacing


# ----------------------------------------------------------------------------- NIfTI


def _nifti(path, data, pixdim=(1.6, 1.4, 7.0), unit=None):
    img = nib.Nifti1Image(np.asarray(data, np.float32), ACDC_AFFINE)
    img.header["pixdim"][1:4] = pixdim  # stored as given, zeros and signs included
    if unit is not None:
        img.header.set_xyzt_units(xyz=unit)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("pixdim, message", [
    ((1.6, 0.0, 7.0), "dx = 0 mm"),  # nibabel alone would read 1 mm
    ((1.6, 1.4, 0.0), "dz = 0 mm"),
    ((-1.6, 1.4, 7.0), "dy = -1.6 mm"),  # nibabel alone would take the absolute value
    ((1.6, 1.4, 70.0), "dz = 70 mm is outside"),
    ((1.6, 1.4, float("nan")), "dz = nan"),
])
def test_nifti_spacing_is_read_as_stored(tmp_path, pixdim, message):
    path = _nifti(tmp_path / "cine.nii.gz", _picture((9, 7, 3, 4)), pixdim)
    with pytest.raises(ValueError, match=r"cine.nii.gz: header pixdim: .*" + message):
        read_volume(path)


def test_nifti_in_metres_is_named_in_the_message(tmp_path):
    path = _nifti(tmp_path / "m.nii", _picture((9, 7, 3)), (0.0016, 0.0014, 0.007), unit="meter")
    with pytest.raises(ValueError, match=r"m.nii: header pixdim \(unit meter\): .*outside"):
        read_volume(path)


def test_nifti_good_spacing_and_image(tmp_path):
    volume, _, spacing = read_volume(_nifti(tmp_path / "ok.nii.gz", _picture((9, 7, 3, 4))))
    assert volume.shape == (3, 4, 9, 7) and spacing == pytest.approx((7.0, 1.6, 1.4))


@pytest.mark.parametrize("data, message", [
    (np.zeros((9, 7, 3, 4)), "blank"), (np.full((9, 7, 3, 4), 42.0), "constant"),
    (_picture((9, 7, 3, 4)) * 1e30, "outside"), (np.where(_picture((9, 7, 3, 4)) > 0.9, np.inf, 1.0), "NaN or Inf"),
])
def test_nifti_unusable_image_is_refused_naming_the_file(tmp_path, data, message):
    with pytest.raises(ValueError, match="bad.nii.gz: image .*" + message):
        read_volume(_nifti(tmp_path / "bad.nii.gz", data))


def test_acdc_blank_frame_file_and_zero_spacing_are_refused(tmp_path):
    folder, _, _ = write_acdc(tmp_path, pid="patient003", with_4d=False)
    _nifti(folder / "patient003_frame04.nii.gz", np.zeros((13, 11, 3)))
    with pytest.raises(ValueError, match="patient003_frame04.nii.gz: image is blank"):
        read_acdc(folder)
    folder, image, _ = write_acdc(tmp_path / "b", pid="patient004", with_4d=True)
    _nifti(folder / "patient004_4d.nii.gz", image, pixdim=(1.6, 1.4, 0.0))
    with pytest.raises(ValueError, match="patient004_4d.nii.gz: header pixdim: slice distance dz = 0 mm"):
        read_any(folder)


def test_mnms2_bad_spacing_is_refused(tmp_path):
    folder, image, _ = write_mnms2(tmp_path)
    _nifti(folder / "042_SA_ES.nii.gz", image[..., 3], pixdim=(0.0, 1.2, 10.0))
    with pytest.raises(ValueError, match="042_SA_ES.nii.gz: header pixdim: in-plane spacing dy = 0 mm"):
        read_mnms(folder)


def test_acdc_info_cfg_that_is_binary_or_has_infinite_frames(tmp_path):
    folder, _, _ = write_acdc(tmp_path, pid="patient005")
    (folder / "Info.cfg").write_bytes(b"ED: 1\nES: 4\n\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="Info.cfg: not a text file"):
        read_acdc(folder)
    (folder / "Info.cfg").write_text("ED: 1\nES: 4\nNbFrame: inf\n")
    with pytest.raises(ValueError, match="Info.cfg: NbFrame"):
        read_acdc(folder)


# ----------------------------------------------------------------------------- HDF5 case, CMRxRecon


@pytest.mark.parametrize("change, message", [
    (lambda c: replace(c, image=np.zeros_like(c.image)), "image is blank"),
    (lambda c: replace(c, image=np.ones_like(c.image)), "image is constant"),
    (lambda c: replace(c, image=c.image * np.complex64(1e30)), "outside"),
    (lambda c: replace(c, spacing=(8.0, 1.25, 100.0)), "dx = 100 mm is outside"),
    (lambda c: replace(c, spacing=(1e-3, 1.25, 1.5)), "dz = 0.001 mm is outside"),
])
def test_case_file_content_and_spacing_are_checked(tmp_path, change, message):
    path = write_case(change(make_case()), tmp_path / "bad.h5")  # the writer stores what it is given
    with pytest.raises(ValueError, match="bad.h5: .*" + message):
        read_case(path)
    with pytest.raises(ValueError, match="bad.h5"):
        read_case(path, slice_index=1)


def test_cmrxrecon_blank_kspace_is_refused(tmp_path):
    k = matlab_kspace(c=2, s=1, t=3, kx=8, ky=6)
    with pytest.raises(ValueError, match="zero.mat: k-space is blank"):
        read_cmrxrecon(write_mat73(tmp_path / "zero.mat", {"kspace_full": np.zeros_like(k)}))
    k[..., 1] = 0  # frame 1 holds nothing
    with pytest.raises(ValueError, match=r"frame.mat: k-space frame\(s\) \[1\]"):
        read_cmrxrecon(write_mat5(tmp_path / "frame.mat", {"kspace_full": k}))


# ----------------------------------------------------------------------------- sampling masks


@pytest.mark.parametrize("mask, message", [
    (np.zeros((3, 12), bool), "samples nothing \\(all 3 frames"),
    (np.array([[1, 0, 1], [0, 0, 0]], bool), r"samples nothing in frame\(s\) \[1\]"),
    (np.zeros((0, 4), bool), "must be \\(T, W\\)"),
    (np.ones(5, bool), "must be \\(T, W\\)"),
])
def test_a_mask_that_samples_nothing_is_refused(mask, message):
    from cinemri.io.validate import check_mask

    with pytest.raises(ValueError, match="mask.mat: sampling mask " + message):
        check_mask(mask, "mask.mat")


def test_a_case_file_whose_mask_samples_nothing_is_refused_by_reader_and_info(tmp_path, capsys):
    from cinemri.cli import main

    case = make_case(s=1, t=3, h=15, w=12, c=2)
    kspace = np.fft.fft2(case.image[:, None] * case.coil_maps[:, :, None]).astype(np.complex64)  # (S, C, T, H, W)
    path = write_case(replace(case, image=None, kspace=kspace, mask=np.zeros((3, 12), bool)), tmp_path / "k.h5")
    with pytest.raises(ValueError, match="k.h5: sampling mask samples nothing"):
        read_any(path)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cinemri: error: ") and "\n" not in err and "samples nothing" in err


def test_info_refuses_a_mask_file_that_samples_nothing(tmp_path, capsys):
    from cinemri.cli import main

    path = write_mat5(tmp_path / "mask04.mat", {"mask04": np.zeros((10, 7))})
    assert main(["info", str(path)]) == 2  # was "acceleration inf", exit 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "mask04.mat" in err and "samples nothing" in err


def test_recon_predict_refuses_an_empty_mask_before_loading_the_model(tmp_path, capsys):
    from cinemri.cli import main

    kspace = write_mat5(tmp_path / "cine_sax.mat", {"kspace_sub04": matlab_kspace(c=2, s=1, t=3)})
    mask = write_mat5(tmp_path / "mask04.mat", {"mask04": np.zeros((10, 7))})
    status = main(["recon", "predict", str(kspace), "--mask", str(mask), "--checkpoint",
                   str(tmp_path / "absent.pt"), "--out", str(tmp_path / "out.h5")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "samples nothing" in err and "absent.pt" not in err
    assert not (tmp_path / "out.h5").exists()


def test_case_header_refuses_labelled_frames_outside_the_cine(tmp_path):
    import h5py

    from cinemri.io import case_header

    path = write_case(make_case(s=1, t=3), tmp_path / "c.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["labelled_frames"] = [0, 9]
    with pytest.raises(ValueError, match=r"c.h5: labelled frame\(s\) \[9\] .* outside the 3 frames"):
        case_header(path)
