"""ACDC and M&Ms NIfTI readers, and label-map output with the source's affine."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from io_builders import ACDC_AFFINE, MNMS_AFFINE, write_acdc, write_mnms1, write_mnms2

from cinemri.io import MNMS_TO_ACDC, read_acdc, read_mnms, write_labels_nifti

ACDC_REAL = Path("/work/shared/data/acdc/training/patient090")


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_acdc_with_4d(tmp_path, dtype):
    folder, image, labels = write_acdc(tmp_path, ed=1, es=4, dtype=dtype)
    case = read_acdc(folder)
    x, y, z, t = image.shape
    assert case.image.shape == (z, t, x, y) and case.image.dtype == np.complex64
    # ours[s, t, h, w] == nifti[x=h, y=w, z=s, t]
    assert case.image[2, 3, 12, 10] == image[12, 10, 2, 3]
    np.testing.assert_array_equal(case.image.real, image.transpose(2, 3, 0, 1))
    assert not case.image.imag.any()
    assert (case.ed_frame, case.es_frame, case.labelled_frames) == (0, 3, (0, 3))
    np.testing.assert_array_equal(case.labels[:, 0], labels[..., 0].transpose(2, 0, 1))
    np.testing.assert_array_equal(case.labels[:, 3], labels[..., 3].transpose(2, 0, 1))
    assert not case.labels[:, [1, 2, 4]].any()
    assert case.spacing == pytest.approx((7.0, 1.6, 1.4)) and case.group == "DCM"
    np.testing.assert_allclose(case.affine, ACDC_AFFINE)


def test_acdc_without_4d_keeps_labelled_frames_only(tmp_path):
    folder, image, labels = write_acdc(tmp_path, ed=2, es=5, with_4d=False)
    case = read_acdc(folder)
    assert case.image.shape == (3, 2, 13, 11)
    assert (case.ed_frame, case.es_frame, case.labelled_frames) == (0, 1, (0, 1))
    np.testing.assert_array_equal(case.image.real[:, 1], image[..., 4].transpose(2, 0, 1))
    np.testing.assert_array_equal(case.labels[:, 1], labels[..., 4].transpose(2, 0, 1))


def test_acdc_errors_name_the_file(tmp_path):
    folder, _, labels = write_acdc(tmp_path)
    (folder / "Info.cfg").write_text("ED: 1\nGroup: DCM\n")
    with pytest.raises(ValueError, match="Info.cfg.*'ED' and 'ES'"):
        read_acdc(folder)
    folder, _, labels = write_acdc(tmp_path / "b", pid="patient008")
    bad = labels[..., 0].copy()
    bad[0, 0, 0] = 5
    nib.save(nib.Nifti1Image(bad, ACDC_AFFINE), str(folder / "patient008_frame01_gt.nii.gz"))
    with pytest.raises(ValueError, match=r"patient008_frame01_gt.nii.gz.*\[5\]"):
        read_acdc(folder)
    folder, _, _ = write_acdc(tmp_path / "c", pid="patient009")
    path = folder / "patient009_4d.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="patient009_4d.nii.gz"):
        read_acdc(folder)
    with pytest.raises(ValueError, match="missing Info.cfg"):
        read_acdc(tmp_path)


def test_write_labels_round_trip_synthetic(tmp_path):
    folder, _, labels = write_acdc(tmp_path, ed=1, es=4, with_4d=False)
    case = read_acdc(folder)
    out = write_labels_nifti(case.labels[:, case.ed_frame], tmp_path / "ed_gt.nii.gz", reference=case)
    original = nib.load(str(folder / "patient007_frame01_gt.nii.gz"))
    written = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(original.dataobj))
    np.testing.assert_array_equal(written.affine, original.affine)
    assert written.header.get_zooms() == original.header.get_zooms()
    four_d = nib.load(str(write_labels_nifti(case.labels, tmp_path / "all.nii.gz", reference=case)))
    assert four_d.shape == (13, 11, 3, 2)
    with pytest.raises(ValueError, match="outside"):
        write_labels_nifti(case.labels + 4, tmp_path / "x.nii.gz", reference=case)
    with pytest.raises(ValueError, match="shape"):
        write_labels_nifti(case.labels[0, 0], tmp_path / "x.nii.gz", reference=case)


def test_write_labels_round_trip_real_acdc_or_float_labels(tmp_path):
    """Real ACDC: read -> write -> the same array and affine as the original _gt file.
    Without the shared data: the same on a synthetic case whose labels are stored as float32."""
    if ACDC_REAL.is_dir():
        folder, number = ACDC_REAL, 4
        case = read_acdc(folder)
        assert case.image.shape == (7, 12, 154, 224) and case.labelled_frames == (3, 10)
    else:
        folder, _, _ = write_acdc(tmp_path, pid="patient090", ed=4, es=5, dtype=np.float32)
        number = 4
        case = read_acdc(folder)
    t = case.ed_frame
    out = write_labels_nifti(case.labels[:, t], tmp_path / "rt.nii.gz", reference=case)
    original = nib.load(str(folder / f"patient090_frame{number:02d}_gt.nii.gz"))
    np.testing.assert_array_equal(np.asarray(nib.load(str(out)).dataobj), np.asarray(original.dataobj))
    np.testing.assert_array_equal(nib.load(str(out)).affine, original.affine)


def test_mnms1_labels_remapped_and_ed_es(tmp_path):
    folder, image, mnms_labels = write_mnms1(tmp_path, ed=0, es=3)
    for path in (folder, folder / "A0S9V9_sa.nii.gz"):
        case = read_mnms(path)
        assert case.image.shape == (3, 5, 13, 11) and case.labelled_frames == (0, 3)
        assert (case.ed_frame, case.es_frame) == (0, 3)  # ED = larger LV
        lut = np.array(MNMS_TO_ACDC)
        np.testing.assert_array_equal(case.labels, lut[mnms_labels].transpose(2, 3, 0, 1))
        np.testing.assert_allclose(case.affine, MNMS_AFFINE)
    # LV (ACDC 3) is M&Ms 1, RV (ACDC 1) is M&Ms 3
    assert ((case.labels == 3) == (mnms_labels.transpose(2, 3, 0, 1) == 1)).all()
    csv = tmp_path / "info.csv"
    csv.write_text("External code,VendorName,ED,ES\nA0S9V9,Siemens,3,0\n")
    case = read_mnms(folder, info_csv=csv)
    assert (case.ed_frame, case.es_frame) == (3, 0)
    csv.write_text("External code,ED,ES\nOTHER,1,2\n")
    with pytest.raises(ValueError, match="info.csv.*A0S9V9"):
        read_mnms(folder, info_csv=csv)


def test_mnms2_layout(tmp_path):
    folder, image, acdc_labels = write_mnms2(tmp_path)
    case = read_mnms(folder)
    assert case.image.shape == (3, 2, 13, 11) and (case.ed_frame, case.es_frame) == (0, 1)
    np.testing.assert_array_equal(case.labels[:, 0], acdc_labels[..., 1].transpose(2, 0, 1))
    np.testing.assert_array_equal(case.labels[:, 1], acdc_labels[..., 3].transpose(2, 0, 1))
    np.testing.assert_allclose(case.image.real[:, 1], image[..., 3].transpose(2, 0, 1), rtol=1e-6)
    out = write_labels_nifti(case.labels[:, 0], tmp_path / "ed.nii.gz", reference=case, remap=MNMS_TO_ACDC)
    original = nib.load(str(folder / "042_SA_ED_gt.nii.gz"))
    np.testing.assert_array_equal(np.asarray(nib.load(str(out)).dataobj), np.asarray(original.dataobj))
    (folder / "042_SA_ES.nii.gz").unlink()
    with pytest.raises(ValueError, match="042_SA_ES"):
        read_mnms(folder)
    with pytest.raises(ValueError, match="M&Ms"):
        read_mnms(tmp_path)
