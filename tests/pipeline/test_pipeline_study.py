"""The acceleration study: rows for every method x R, failures recorded, truth-checked errors, files, CLI."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_builders import untrained_checkpoint

from cinemri.pipeline import study
from cinemri.pipeline.study import FULLY_SAMPLED, StudyOptions, acceleration_study, central_slices
from cinemri.case import Case
from cinemri.cli import study_command
from cinemri.recon.config import MODEL_NAME, load_recon_config
from cinemri.seg.config import load_seg_config
from cinemri.io import read_case
from cinemri.phantom import write_dataset
from cinemri.recon import build_reconstructor
from cinemri.seg.models import build_segmenter

ROOT = Path(__file__).resolve().parents[2]
ACCELERATIONS = (2.0, 4.0, 8.0, 16.0)  # W = 64 with 8 centre lines: R = 16 leaves 4 lines, too few -> failure

pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    """2 cases of 32 x 64 (W = phase encode), 4 frames, 3 slices, 2 coils; split "test" = both."""
    root = tmp_path_factory.mktemp("phantom")
    paths = write_dataset(root, 2, seed=5, height=32, width=64, frames=4, slices=3, coils=2, supersample=1)
    (root / "split.json").write_text(json.dumps({"test": [p.stem for p in paths]}))
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """(tiny untrained cascade, tiny U-Net whose head says "background" everywhere)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    recon_cfg = load_recon_config(ROOT / "configs" / "recon" / "tiny.yaml")
    args = recon_cfg.model.model_args()
    recon = untrained_checkpoint(folder / "recon.pt", build_reconstructor(**args), MODEL_NAME, args, recon_cfg)
    seg_cfg = load_seg_config([ROOT / "configs" / "seg" / "tiny.yaml"])
    model = build_segmenter(seg_cfg.model.name, seg_cfg.model.args)
    with torch.no_grad():  # a blind segmenter: class 0 wins at every pixel, so the LV is always empty
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))
    seg = untrained_checkpoint(folder / "seg.pt", model, seg_cfg.model.name, dict(seg_cfg.model.args), seg_cfg)
    return recon, seg


@pytest.fixture(scope="module")
def blind_study(phantom, checkpoints, tmp_path_factory) -> tuple[dict, Path]:
    """The whole study with the real checkpoints: every segmentation fails (empty LV)."""
    out = tmp_path_factory.mktemp("study")
    options = StudyOptions(accelerations=ACCELERATIONS, cs_iters=3)
    lines: list[str] = []
    result = acceleration_study(phantom, out, recon_checkpoint=checkpoints[0], seg_checkpoint=checkpoints[1],
                                options=options, progress=lines.append)
    assert len(lines) == 2 and lines[0].startswith("case 1/2")
    return result, out


def test_rows_for_every_method_and_acceleration_and_all_files(blind_study):
    result, out = blind_study
    expected = {(FULLY_SAMPLED, 1.0)} | {(m, r) for m in ("zero_filled", "cs", "model") for r in ACCELERATIONS}
    assert {(row["method"], row["acceleration"]) for row in result["rows"]} == expected
    assert all(row["n_cases"] == 2 for row in result["rows"])
    assert json.loads((out / "study.json").read_text()) == result
    assert result["schema"] == "cinemri.study.acceleration/1"
    png = (out / "study.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    with open(out / "cases.csv", newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == 2 * len(expected)
    assert {(line["method"], float(line["acceleration"])) for line in lines} == expected
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # atomic writes left nothing behind


def test_failures_are_counted_with_stage_and_reason_never_dropped(blind_study):
    result, out = blind_study
    for row in result["rows"]:
        assert row["n_failed"] == 2 and len(row["failures"]) == 2
        stage = "reconstruction" if row["acceleration"] == 16.0 else "indices"
        assert {f["stage"] for f in row["failures"]} == {stage}
        reason = "center_lines" if stage == "reconstruction" else "no LV"
        assert all(reason in f["reason"] for f in row["failures"])
        assert "dice_mean" not in row["metrics"]  # nothing measured, nothing averaged
    table = (out / "summary.md").read_text()
    zf4 = next(line for line in table.splitlines() if line.startswith("| zero_filled | 4 |"))
    assert zf4.split("|")[3:5] == [" 2 ", " 2 "]  # cases, failed
    assert "Failures:" in table and table.count("no LV") == 2 * 10  # 9 runs per case reach the indices, + fully


def test_zero_filled_psnr_falls_with_acceleration_and_survives_a_failed_segmentation(blind_study, phantom):
    result, _ = blind_study
    rows = {(row["method"], row["acceleration"]): row for row in result["rows"]}
    psnr = [rows["zero_filled", r]["metrics"]["psnr_db"]["mean"] for r in (2.0, 4.0, 8.0)]
    assert psnr[0] > psnr[1] > psnr[2] and 10.0 < psnr[2] < psnr[0] < 45.0
    assert rows["zero_filled", 2.0]["metrics"]["psnr_db"]["n_finite"] == 2
    assert "psnr_db" not in rows["zero_filled", 16.0]["metrics"]  # never reconstructed
    assert "psnr_db" not in rows[FULLY_SAMPLED, 1.0]["metrics"]  # the reference itself
    achieved = [rec["achieved_acceleration"] for rec in result["records"] if rec["method"] == "cs"
                and rec["acceleration"] == 4.0]
    assert achieved == pytest.approx([4.0, 4.0], rel=0.05)
    # the same masks for every method at one R: CS-TV starts from zero filling and must not do worse here
    assert rows["cs", 2.0]["metrics"]["psnr_db"]["mean"] > psnr[0]


@pytest.fixture(scope="module")
def oracle_study(phantom, checkpoints, tmp_path_factory):
    """Segmentation replaced by the ground truth (empty for the second case), plus an unreadable case."""
    root = tmp_path_factory.mktemp("oracle")
    names = json.loads((phantom / "split.json").read_text())["test"]
    for name in names:
        (root / f"{name}.h5").symlink_to(phantom / f"{name}.h5")
    (root / "broken.h5").write_bytes(b"not an HDF5 file")
    (root / "split.json").write_text(json.dumps({"test": [*names, "broken"]}))

    from cinemri.seg.inference import Segmentation

    def oracle(case, model, cfg, options):  # what segment() returns: (Segmentation, seconds)
        labels = case.labels.copy() if case.name == names[0] else np.zeros_like(case.labels)
        return Segmentation(labels=labels, confidence=1.0), 0.0

    patch = pytest.MonkeyPatch()
    patch.setattr(study, "segment", oracle)
    try:
        runs = {}
        for slices in (None, 2):
            out = root / f"out_{slices}"
            runs[slices] = acceleration_study(root, out, seg_checkpoint=checkpoints[1], options=StudyOptions(
                accelerations=(2.0, 16.0), methods=("zero_filled",), slices=slices))
    finally:
        patch.undo()
    return runs, [read_case(phantom / f"{n}.h5") for n in names]


def test_perfect_segmentation_gives_dice_one_and_zero_index_errors(oracle_study):
    runs, cases = oracle_study
    for slices, result in runs.items():
        rows = {(row["method"], row["acceleration"]): row for row in result["rows"]}
        for key in ((FULLY_SAMPLED, 1.0), ("zero_filled", 2.0)):
            row = rows[key]
            assert row["n_cases"] == 3 and row["n_failed"] == 2  # empty LV + unreadable file
            assert {f["stage"] for f in row["failures"]} == {"indices", "read"}
            m = row["metrics"]
            assert m["dice_mean"]["mean"] == 1.0 and m["dice_mean"]["n"] == 1
            assert m["lv_ef_abs_err_pct"]["mean"] == pytest.approx(0.0, abs=1e-6)
            assert m["lv_edv_rel_err_pct"]["mean"] == pytest.approx(0.0, abs=1e-6)
        assert rows["zero_filled", 16.0]["n_failed"] == 3
    case = cases[0]
    whole = next(r for r in runs[None]["records"] if r["case"] == case.name and r["status"] == "ok")
    assert whole["metrics"]["lv_edv_ml_truth"] == pytest.approx(case.indices["lv_edv_ml"])
    # with slices=2 the truth comes from the labels of the central 2 slices, counted here by hand
    part = next(r for r in runs[2]["records"] if r["case"] == case.name and r["status"] == "ok")
    dz, dy, dx = case.spacing
    by_hand = (case.labels[0:2, case.ed_frame] == 3).sum() * dz * dy * dx / 1000.0  # S=3, k=2 -> slices 0, 1
    assert part["metrics"]["lv_edv_ml_truth"] == pytest.approx(by_hand)
    assert by_hand < case.indices["lv_edv_ml"]


def test_central_slices_cuts_every_array_and_drops_whole_heart_indices():
    image = np.arange(5 * 2 * 3 * 4).reshape(5, 2, 3, 4).astype(np.complex64)
    case = Case(name="c", spacing=(8.0, 1.0, 1.0), image=image, labels=np.zeros((5, 2, 3, 4), np.uint8),
                coil_maps=np.ones((5, 2, 3, 4), np.complex64), indices={"lv_edv_ml": 100.0})
    cut = central_slices(case, 3)
    np.testing.assert_array_equal(cut.image, image[1:4])
    assert cut.labels.shape[0] == cut.coil_maps.shape[0] == 3 and cut.indices == {}
    assert central_slices(case, 9).num_slices == 5


@pytest.mark.parametrize("kwargs, match", [
    ({"accelerations": ()}, "accelerations"), ({"accelerations": (1.0, 4.0)}, "accelerations"),
    ({"accelerations": (4, 4.0)}, "accelerations"), ({"accelerations": (float("nan"),)}, "accelerations"),
    ({"accelerations": 5}, "accelerations"), ({"methods": ("zero_filled", "grappa")}, "methods"),
    ({"max_cases": 0}, "max_cases"), ({"slices": True}, "slices"), ({"cs_iters": None}, "cs_iters"),
    ({"pattern": "spiral"}, "pattern")])
def test_bad_options_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StudyOptions(**kwargs)


def test_cli_runs_the_study_and_defaults_come_from_the_options(phantom, checkpoints, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="cinemri")
    study_command.register(parser.add_subparsers(dest="command"), argparse.HelpFormatter)
    args = parser.parse_args(["study", "acceleration", "--data", str(phantom), "--out", str(tmp_path / "s")])
    assert study_command.options_from_args(args) == StudyOptions()
    with pytest.raises(SystemExit):
        parser.parse_args(["study", "acceleration", "--data", "d", "--out", "o", "--methods", "grappa"])
    args = parser.parse_args(["study", "acceleration", "--data", str(phantom), "--out", str(tmp_path / "s"),
                              "--accelerations", "2", "4", "--methods", "zero_filled", "--max-cases", "1",
                              "--slices", "2", "--seg-checkpoint", str(checkpoints[1])])
    args.run(args)
    captured = capsys.readouterr()
    assert "| zero_filled | 4 | 1 | 1 |" in captured.out and "study.png" in captured.out
    assert "case 1/1" in captured.err
    saved = json.loads((tmp_path / "s" / "study.json").read_text())
    assert saved["options"]["accelerations"] == [2.0, 4.0] and saved["options"]["slices"] == 2


def _fast_study(phantom, checkpoints, out, monkeypatch, reconstruct):
    """The study on one case at one R with zero filling only, ``reconstruct`` in place of the real one."""
    monkeypatch.setattr(study, "reconstruct_case", reconstruct)
    options = StudyOptions(accelerations=(4.0,), methods=("zero_filled",), max_cases=1)
    return acceleration_study(phantom, out, recon_checkpoint=checkpoints[0], seg_checkpoint=checkpoints[1],
                              options=options)


def test_a_runtime_error_is_not_a_failed_case_it_propagates(phantom, checkpoints, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (a programming error)")

    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        _fast_study(phantom, checkpoints, tmp_path / "s", monkeypatch, broken)


def test_an_expected_case_error_is_recorded_counted_and_reported(phantom, checkpoints, tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise ValueError("case x: acceleration 4 cannot be reached with 8 centre lines")

    result = _fast_study(phantom, checkpoints, tmp_path / "s", monkeypatch, refused)
    assert result["n_runs"] == 2 and result["n_failed"] == 2  # the fully sampled row and zero filling at R=4
    assert {f["stage"] for f in result["failures"]} == {"reconstruction"}
    assert all("cannot be reached" in f["reason"] for f in result["failures"])
    summary = (tmp_path / "s" / "summary.md").read_text()
    assert "2 of 2 runs failed" in summary and summary.count("cannot be reached") == 2


def test_out_is_checked_before_any_work(phantom, checkpoints, tmp_path, monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("the study started work before checking --out")

    monkeypatch.setattr(study, "split_cases", never)
    file = tmp_path / "a_file"
    file.write_text("")
    from cinemri.cli import main

    assert main(["study", "acceleration", "--data", str(phantom), "--out", str(file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cinemri: error: --out") and "is a file" in err[0]
