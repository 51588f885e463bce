"""The cinemri HDF5 case format: round trip, atomic write, validation on read."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from io_builders import make_case

from cinemri.case import Case
from cinemri.io import FORMAT_NAME, case_header, read_case, write_case


def test_round_trip_phantom_case_is_exact(tmp_path):
    case = make_case()
    path = write_case(case, tmp_path / "sub" / "tiny.h5")
    back = read_case(path)
    for key in ("image", "labels", "coil_maps"):
        np.testing.assert_array_equal(getattr(back, key), getattr(case, key))
        assert getattr(back, key).dtype == getattr(case, key).dtype
    assert back.kspace is None and back.mask is None and back.affine is None
    assert back.spacing == case.spacing and back.ed_frame == 0 and back.es_frame == 2
    assert back.labelled_frames == (0, 2) and back.group == "NOR" and back.noise_std == case.noise_std
    assert back.indices["lv_edv_ml"] == 1.5 and math.isnan(back.indices["lv_ef_pct"])
    assert back.name == "tiny0" and back.source == str(path)
    with h5py.File(path) as f:  # the documented storage choices
        assert f.attrs["format"] == FORMAT_NAME and f.attrs["format_version"] == 1
        assert f["image"].compression == "gzip" and f["image"].shuffle
        assert f["image"].chunks == (1, 3, 15, 12)


def test_round_trip_kspace_case_without_image(tmp_path):
    rng = np.random.default_rng(1)
    kspace = (rng.standard_normal((2, 3, 4, 9, 7)) + 1j * rng.standard_normal((2, 3, 4, 9, 7))).astype(np.complex64)
    mask = rng.random((4, 7)) > 0.5
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    case = Case(name="k", spacing=(8.0, 1.5, 1.5), kspace=kspace * mask[None, None, :, None, :], mask=mask,
                affine=affine, spacing_assumed=True)
    back = read_case(write_case(case, tmp_path / "k.h5"))
    np.testing.assert_array_equal(back.kspace, case.kspace)
    np.testing.assert_array_equal(back.mask, mask)
    np.testing.assert_array_equal(back.affine, affine)
    assert back.image is None and back.ed_frame is None and back.group is None and back.spacing_assumed
    assert (back.num_slices, back.num_frames) == (2, 4)


def test_read_one_slice_and_header(tmp_path):
    case = make_case(s=3)
    path = write_case(case, tmp_path / "c.h5")
    one = read_case(path, slice_index=2)
    np.testing.assert_array_equal(one.image, case.image[2:3])
    np.testing.assert_array_equal(one.coil_maps, case.coil_maps[2:3])
    head = case_header(path)
    assert head["shapes"]["image"] == (3, 3, 15, 12) and head["labelled_frames"] == (0, 2)
    with pytest.raises(ValueError, match="slice_index=3"):
        read_case(path, slice_index=3)


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "c.h5"
    write_case(make_case(seed=0), path)
    bad = make_case(seed=1)
    bad.labels = bad.labels.astype(np.int64)  # rejected before anything is written
    with pytest.raises(ValueError, match="labels"):
        write_case(bad, path)
    assert read_case(path).name == "tiny0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5"]


def test_write_rejects_inconsistent_shapes(tmp_path):
    case = make_case()
    case.coil_maps = case.coil_maps[:, :, :-1]
    with pytest.raises(ValueError, match="H=14"):
        write_case(case, tmp_path / "c.h5")


def _write_then_edit(tmp_path, edit):
    path = write_case(make_case(), tmp_path / "bad.h5")
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda f: f.attrs.__delitem__("spacing_mm"), "missing attribute 'spacing_mm'"),
    (lambda f: f.attrs.__setitem__("format", "other"), "format attribute"),
    (lambda f: f.attrs.__setitem__("spacing_mm", [1.0, -1.0, 1.0]), "spacing_mm"),
    (lambda f: f.attrs.__setitem__("indices", "{not json"), "indices"),
    (lambda f: f.__delitem__("image") or f.__delitem__("labels"), "holds no"),
])
def test_bad_attributes_raise_naming_the_file(tmp_path, edit, expected):
    path = _write_then_edit(tmp_path, edit)
    with pytest.raises(ValueError, match=expected) as err:
        read_case(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def _replace(name, data):
    def edit(f):
        del f[name]
        f.create_dataset(name, data=data)
    return edit


def _image_with(value):
    image = make_case().image.copy()
    image[1, 2, 3, 4] = value
    return image


@pytest.mark.parametrize("edit, expected", [
    (_replace("image", np.zeros((2, 3, 15), np.complex64)), "'image' must be 4-D complex64"),
    (_replace("image", np.zeros((2, 3, 15, 12), np.float32)), "'image' must be 4-D complex64"),
    (_replace("labels", np.zeros((2, 3, 15, 12), np.int16)), "'labels' must be 4-D uint8"),
    (_replace("coil_maps", np.zeros((2, 4, 15, 13), np.complex64)), "W=13"),
    (_replace("image", _image_with(np.nan)), "NaN or Inf"),
    (_replace("image", _image_with(np.inf)), "NaN or Inf"),
    (_replace("labels", np.full((2, 3, 15, 12), 7, np.uint8)), r"values \[7\]"),
])
def test_bad_datasets_raise_naming_the_file(tmp_path, edit, expected):
    path = _write_then_edit(tmp_path, edit)
    with pytest.raises(ValueError, match=expected) as err:
        read_case(path)
    assert str(path) in str(err.value)


def test_truncated_and_missing_files_raise_value_error(tmp_path):
    path = write_case(make_case(), tmp_path / "t.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="t.h5") as err:
        read_case(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no such case file"):
        read_case(tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(ValueError, match="junk.h5"):
        read_case(junk)


def test_a_nan_index_is_stored_as_valid_json_null_and_read_back_as_nan(tmp_path):
    import json
    import math
    from dataclasses import replace

    import h5py

    from cinemri.io import read_case, write_case
    from io_builders import make_case

    case = replace(make_case(), indices={"lv_edv_ml": 10.5, "lv_ef_pct": float("nan")})
    path = write_case(case, tmp_path / "c.h5")
    with h5py.File(path, "r") as f:
        text = f.attrs["indices"]
    stored = json.loads(text, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}"))
    assert stored == {"lv_edv_ml": 10.5, "lv_ef_pct": None}
    back = read_case(path).indices
    assert back["lv_edv_ml"] == 10.5 and math.isnan(back["lv_ef_pct"])
