"""Format detection, read_any, describe() and `cinemri info` over synthetic files and the real shared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from io_builders import (make_case, matlab_kspace, write_acdc, write_mat5, write_mat73, write_mnms1,
                              write_mnms2)

from cinemri.case import Case
from cinemri.clinical import INDEX_KEYS, compute_indices
from cinemri.cli.data_commands import input_info
from cinemri.io import describe, detect_format, read_any, write_case

DATA = Path("/work/shared/data")


@pytest.fixture
def synthetic(tmp_path) -> dict[str, Path]:
    lines = np.array([1, 0, 0, 1, 1, 0, 1], dtype=bool)  # 4 of 7 lines
    mask = np.tile(lines, (10, 1))
    files = {
        "cinemri-case": write_case(make_case(), tmp_path / "case.h5"),
        "cmrxrecon": write_mat73(tmp_path / "cine_sax.mat", {"kspace_sub04": matlab_kspace() * lines[None, :, None, None, None],
                                                             "mask04": mask}),
        "cmrxrecon-mask": write_mat73(tmp_path / "mask.mat", {"mask": mask}),
        "acdc": write_acdc(tmp_path)[0],
        "mnms1": write_mnms1(tmp_path)[0],
        "mnms2": write_mnms2(tmp_path)[0],
    }
    files["cmrxrecon-v5"] = write_mat5(tmp_path / "v5.mat", {"kspace_full": matlab_kspace()})
    return files


def test_detect_and_info_every_synthetic_format(synthetic):
    for expected, path in synthetic.items():
        assert detect_format(path) == expected.replace("-v5", "")
        info = input_info(path)
        json.dumps(info)  # serialisable for `cinemri info --json`
        assert info["format"] == expected.replace("-v5", "")
    info = input_info(synthetic["cmrxrecon"])
    assert (info["slices"], info["coils"], info["frames"], info["readout"], info["phase_encodes"]) == (2, 3, 4, 10, 7)
    assert info["acceleration"] == pytest.approx(7 / 4) and info["spacing_assumed"]
    assert input_info(synthetic["cmrxrecon-mask"])["acceleration"] == pytest.approx(7 / 4)
    acdc = input_info(synthetic["acdc"])
    assert (acdc["slices"], acdc["frames"], acdc["ed_frame"], acdc["es_frame"]) == (3, 5, 0, 3)
    assert acdc["spacing_mm"] == pytest.approx([7.0, 1.6, 1.4]) and acdc["labels"] == [0, 1, 2, 3]
    assert set(acdc["indices"]) == set(INDEX_KEYS)
    case = read_any(synthetic["acdc"])
    expected = compute_indices(case.labels, case.spacing, 0, 3).as_dict()
    assert acdc["indices"]["lv_edv_ml"] == pytest.approx(expected["lv_edv_ml"], abs=1e-4)
    # hand count: LV = 2 x 2 voxels in 2 of 3 slices, voxel 1.6 x 1.4 x 7 mm^3
    assert acdc["indices"]["lv_edv_ml"] == pytest.approx(8 * 1.6 * 1.4 * 7.0 / 1000, abs=1e-4)
    assert input_info(synthetic["mnms2"])["frames"] == 2


def test_read_any_dispatch(synthetic):
    assert isinstance(read_any(synthetic["cinemri-case"]), Case)
    assert read_any(synthetic["acdc"] / "patient007_4d.nii.gz").name == "patient007"
    assert read_any(synthetic["mnms1"] / "A0S9V9_sa.nii.gz").name == "A0S9V9"
    with pytest.raises(ValueError, match="mask.mat.*read_mask"):
        read_any(synthetic["cmrxrecon-mask"])


def test_unknown_formats_raise_naming_the_path(tmp_path):
    for name, content in (("notes.txt", b"hello"), ("x.h5", b"\x89HDF junk"), ("other.nii.gz", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name):
            read_any(tmp_path / name)  # an empty .nii.gz is detected as a NIfTI cine, then refused
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty_dir.*unknown format"):
        input_info(empty)
    with pytest.raises(ValueError, match="absent"):
        input_info(tmp_path / "absent")


def _real_paths() -> list[Path]:
    if not DATA.is_dir():
        return []
    paths = sorted(p for p in (DATA / "acdc" / "training").glob("patient*") if p.is_dir())
    paths += sorted((DATA / "samples" / "cmrxrecon2024_demo").glob("*.mat"))
    paths += [DATA / "samples" / "mnms2_001"]
    return paths


def test_info_every_real_file_or_synthetic_set(synthetic):
    """Every real case in the shared data reads and gives plausible indices; without the
    data the same checks run on the synthetic set (which then must hold all formats)."""
    real = _real_paths()
    paths = real or list(synthetic.values())
    formats = set()
    for path in paths:
        info = input_info(path)
        formats.add(info["format"])
        if info["format"] == "cmrxrecon-mask":
            continue
        assert all(s > 0 for s in info["spacing_mm"])
        if "indices" in info:
            assert info["labels"][0] == 0 and set(info["labels"]) <= {0, 1, 2, 3}
            assert info["indices"]["lv_edv_ml"] >= info["indices"]["lv_esv_ml"] >= 0
            if real and info["format"] == "acdc":
                assert 30 < info["indices"]["lv_edv_ml"] < 600  # adult hearts, ml
    assert {"acdc", "cmrxrecon", "cmrxrecon-mask", "mnms2"} <= formats
    assert len(paths) >= 6


def test_acdc_without_4d_reports_frames_in_the_cines_numbering(tmp_path):
    """ED/ES-only folders (as most of the shared ACDC set): Info.cfg's ED: 1, ES: 4 of a
    5-frame cine are frames 0 and 3, not 0 and 1 of the two loaded volumes."""
    folder, _, _ = write_acdc(tmp_path, ed=1, es=4, with_4d=False)
    info = input_info(folder)
    assert (info["frames"], info["ed_frame"], info["es_frame"]) == (5, 0, 3)
    assert info["frames_loaded"] == [0, 3] and info["labelled_frames"] == [0, 3]
    case = read_any(folder)
    assert case.num_frames == 2 and (case.ed_frame, case.es_frame) == (0, 1)
    expected = compute_indices(case.labels, case.spacing, 0, 1).as_dict()  # from the loaded ED/ES volumes
    assert info["indices"]["lv_edv_ml"] == pytest.approx(expected["lv_edv_ml"], abs=1e-4)
    assert info["indices"]["lv_esv_ml"] == pytest.approx(expected["lv_esv_ml"], abs=1e-4)


def test_bad_nbframe_names_the_file(tmp_path):
    folder, _, _ = write_acdc(tmp_path, with_4d=False)
    cfg = folder / "Info.cfg"
    cfg.write_text(cfg.read_text().replace("NbFrame: 5", "NbFrame: many"))
    with pytest.raises(ValueError, match="Info.cfg.*NbFrame"):
        read_any(folder)


def test_acdc_frames_are_also_given_in_info_cfg_numbering(tmp_path, capsys):
    """Info.cfg's ED: 1, ES: 4 are shown as 1 and 4, labelled; the 0-based indices stay in the JSON."""
    from cinemri.cli import main

    for with_4d in (True, False):
        folder, _, _ = write_acdc(tmp_path / str(with_4d), ed=1, es=4, with_4d=with_4d)
        info = input_info(folder)
        assert (info["ed_frame"], info["es_frame"]) == (0, 3)
        assert (info["ed_frame_number"], info["es_frame_number"]) == (1, 4)
        assert info["frame_numbering"] == "Info.cfg numbering, 1-based"
        assert main(["info", str(folder)]) == 0
        out = capsys.readouterr().out
        assert "4 (Info.cfg numbering, 1-based; 0-based index 3)" in out
    info = input_info(write_case(make_case(), tmp_path / "case.h5"))
    assert (info["es_frame"], info["es_frame_number"], info["frame_numbering"]) == (2, 2, "0-based")


def test_plain_nifti_cine_reads_through_the_one_reader_for_info_show_and_analyze(tmp_path, capsys):
    import nibabel as nib

    from cinemri.cli import main

    rng = np.random.default_rng(3)
    volume = rng.integers(0, 300, size=(15, 12, 3, 5)).astype(np.float32)  # (X, Y, Z, T)
    path = tmp_path / "cine.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([1.5, 1.25, 8.0, 1.0])), str(path))
    assert detect_format(path) == "nifti"  # was "unknown format" for info and show
    case = read_any(path)
    assert case.image.shape == (3, 5, 15, 12) and case.spacing == (8.0, 1.5, 1.25) and case.name == "cine"
    info = input_info(path)
    assert info["format"] == "nifti" and info["frames"] == 5
    assert main(["info", str(path)]) == 0 and "nifti" in capsys.readouterr().out
    assert main(["show", str(path), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "cine_montage.png").is_file()
    nib.save(nib.Nifti1Image(np.zeros_like(volume), np.eye(4)), str(tmp_path / "blank.nii"))
    with pytest.raises(ValueError, match="blank.nii: image is blank"):
        read_any(tmp_path / "blank.nii")


def test_io_describes_files_without_clinical_knowledge_or_a_stdlib_name(synthetic):
    """io.describe gives the reader's facts (no indices: those are cinemri.clinical's, added by
    `cinemri info`); no io module shadows the standard library's inspect, and io imports no clinical."""
    import subprocess
    import sys

    import cinemri.io

    facts = describe(synthetic["acdc"])
    assert "indices" not in facts and facts == {k: v for k, v in input_info(synthetic["acdc"]).items() if k != "indices"}
    assert not (Path(cinemri.io.__file__).parent / "inspect.py").exists()
    code = "import sys, cinemri.io; print('cinemri.clinical' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
