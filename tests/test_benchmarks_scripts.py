"""Cheap checks of the benchmark scripts' own logic (no data, no trained weights)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:  # the scripts import their shared helpers as a script would
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


analyze_acdc = _load("analyze_acdc")


def _result(pred: dict, truth: dict, dice: float, hd95: float | None) -> dict:
    """A results.json-like dict with the keys aggregate() reads."""
    per_phase = {p: {s: dice for s in ("rv", "myo", "lv")} for p in ("ed", "es")}
    hd = {p: {s: hd95 for s in ("rv", "myo", "lv")} for p in ("ed", "es")}
    return {"case": {"name": "x"}, "indices": pred,
            "ground_truth": {"indices": truth, "dice": per_phase, "hd95_mm": hd}}


def test_aggregate_matches_numpy():
    rng = np.random.default_rng(3)
    keys = list(analyze_acdc.INDICES)
    truth = rng.uniform(20, 200, size=(5, len(keys)))
    pred = truth + rng.normal(4.0, 10.0, size=truth.shape)
    dice = [0.5, 0.6, 0.7, 0.8, 0.9]
    hd95 = [3.0, None, 5.0, 9.0, 1.0]  # one undefined HD95 (null in results.json)
    results = [_result(dict(zip(keys, p)), dict(zip(keys, t)), d, h) for p, t, d, h in zip(pred, truth, dice, hd95)]
    summary = analyze_acdc.aggregate(results)
    assert summary["n_cases"] == 5
    for j, key in enumerate(keys):
        a = summary["clinical"][key]
        diff = pred[:, j] - truth[:, j]
        assert a["n"] == 5
        assert a["pearson_r"] == pytest.approx(np.corrcoef(pred[:, j], truth[:, j])[0, 1], rel=1e-12)
        assert a["bias"] == pytest.approx(diff.mean(), rel=1e-12)
        assert a["sd"] == pytest.approx(diff.std(ddof=1), rel=1e-12)
    assert summary["dice"]["es"]["myo"] == {"mean": pytest.approx(0.7), "n": 5, "n_missing": 0}
    assert summary["hd95_mm"]["ed"]["lv"] == {"mean": pytest.approx(18.0 / 4), "n": 4, "n_missing": 1}


def test_aggregate_leaves_out_null_indices_and_rejects_missing_truth():
    keys = list(analyze_acdc.INDICES)
    results = [_result({k: v for k in keys}, {k: 2.0 * v for k in keys}, 1.0, 1.0) for v in (1.0, 2.0, 4.0)]
    results[1]["indices"]["lv_mass_g"] = None  # LV mass undefined without myocardium
    summary = analyze_acdc.aggregate(results)
    assert summary["clinical"]["lv_mass_g"]["n"] == 2
    assert summary["clinical"]["lv_mass_g"]["bias"] == pytest.approx(-2.5)  # mean(-1, -4)
    assert summary["clinical"]["lv_edv_ml"]["bias"] == pytest.approx(-7.0 / 3)
    del results[2]["ground_truth"]
    with pytest.raises(ValueError, match="ground_truth"):
        analyze_acdc.aggregate(results)


def test_val_patients(tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("train patient001\nval patient011\n\nval patient015\nval phantom_123\n")
    assert analyze_acdc.val_patients(split) == ["patient011", "patient015"]  # ACDC patients only
    split.write_text("train patient001\nvalid patient011\n")
    with pytest.raises(ValueError, match=r"split.txt:2"):
        analyze_acdc.val_patients(split)


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        analyze_acdc.parse_args(["--data", str(tmp_path / "nowhere")])
    assert "ACDC data is not on this machine" in capsys.readouterr().err


def test_markdown_shows_missing_values_as_dash():
    keys = list(analyze_acdc.INDICES)
    summary = analyze_acdc.aggregate([_result({k: 1.0 for k in keys}, {k: 1.0 for k in keys}, 0.5, None)])
    table = analyze_acdc.markdown(summary, {"patients": 2, "scored": 1, "raised": 1, "warned": 0,
                                            "python_warned": 0})
    assert "| LV EF (%) | 1 | — | +0.0 ± — | 0.0 |" in table
    assert "| RV | 0.500 | 0.500 | — | — |" in table
    assert math.isnan(summary["hd95_mm"]["es"]["rv"]["mean"])
    assert "1 raised" in table


def test_seg_speed_table_ratios_are_relative_to_unet_of_the_same_size():
    seg_speed = _load("seg_speed")
    row = {"params": 10, "infer_peak_mb": 1.0, "train_peak_mb": 2.0}
    rows = [{**row, "name": "unet", "batch": 16, "size": 160, "train_images_per_s": 4.0, "infer_images_per_s": 10.0},
            {**row, "name": "mmnet", "batch": 16, "size": 160, "train_images_per_s": 1.0, "infer_images_per_s": 2.5},
            {**row, "name": "mmnet small", "batch": 8, "size": 128, "train_images_per_s": 2.0,
             "infer_images_per_s": 5.0}]
    lines = seg_speed.markdown(rows).splitlines()
    assert "| 1.0 | 0.25 | 2.5 | 0.25 |" in lines[3]
    assert "| 2.0 | - | 5.0 | - |" in lines[4]


def test_recon_ef_real_summary_compares_each_method_with_the_fully_sampled_images():
    ef = _load("recon_ef_real")
    rng = np.random.default_rng(5)
    records = []
    for _ in range(4):
        truth = {k: float(v) for k, v in zip(ef.INDICES, rng.uniform(30, 150, len(ef.INDICES)))}
        full = {k: v + 2.0 for k, v in truth.items()}
        model = {k: v - 3.0 for k, v in full.items()}
        records.append({"truth": truth, "fully_sampled": full,
                        "model": {**model, "psnr_db": 30.0, "seconds_per_slice": 0.5}})
    for number, record in enumerate(records):
        record["patient"] = f"p{number}"
    records[0]["model"]["lv_ef_pct"] += 10.0  # the one analyze warns about
    records[0]["model"]["warnings"] = ["myocardial volume varies"]
    summary = ef.summarize(records, ["model"])
    assert summary["model"]["warned"] == ["p0"]
    unwarned = summary["model"]["lv_ef_vs_fully_sampled_unwarned"]
    assert unwarned["n"] == 3 and unwarned["mae"] == pytest.approx(3.0)
    records[0]["model"]["lv_ef_pct"] -= 10.0
    summary = ef.summarize(records, ["model"])
    lv_ef = summary["model"]["vs_fully_sampled"]["lv_ef_pct"]
    assert lv_ef["mae"] == pytest.approx(3.0) and lv_ef["bias"] == pytest.approx(-3.0) and lv_ef["n"] == 4
    assert summary["model"]["vs_truth"]["lv_ef_pct"]["bias"] == pytest.approx(-1.0)
    assert summary["fully_sampled"]["vs_truth"]["lv_esv_ml"]["mae"] == pytest.approx(2.0)
    table = ef.markdown(summary, ["model"])
    assert "| model | 30.00 | 0.50 | 3.0, -3.0 ± 0.0 |" in table
