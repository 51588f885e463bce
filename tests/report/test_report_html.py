"""Tests of cinemri.report.html: the self-contained report page of ``cinemri analyze``."""

from __future__ import annotations

import base64
import copy
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cinemri.report.html import MISSING, NORMAL_RANGES, SCHEMA_ID, write_report

# elements that never have a closing tag
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class TagChecker(HTMLParser):
    """Collects tags, attributes and text; records every closing tag that does not match."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(page)
    checker.close()
    return checker


def write_figures(folder: Path) -> dict[str, bytes]:
    """Tiny real PNG, PNG and GIF files under ``folder/figures``; returns {relative path: bytes}."""
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (9, 13, 3), dtype=np.uint8)).save(folder / "figures" / "curves.png")
    Image.fromarray(rng.integers(0, 255, (7, 11), dtype=np.uint8)).save(folder / "figures" / "montage.png")
    frames = [Image.fromarray(rng.integers(0, 255, (5, 6), dtype=np.uint8)).convert("P") for _ in range(3)]
    frames[0].save(folder / "cine.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {rel: (folder / rel).read_bytes() for rel in ("figures/curves.png", "figures/montage.png", "cine.gif")}


def make_results(ground_truth: bool = False, warnings=(), image_quality: bool = True) -> dict:
    """A results dict following schema cinemri.analyze/1; LV EF 55.4 % is below its normal range."""
    indices = {"lv_edv_ml": 150.2, "lv_esv_ml": 67.0, "lv_sv_ml": 83.2, "lv_ef_pct": 55.39,
               "rv_edv_ml": 160.0, "rv_esv_ml": 70.0, "rv_sv_ml": 90.0, "rv_ef_pct": 56.25,
               "lv_mass_g": 120.4, "ed_frame": 0, "es_frame": 4}
    results = {
        "schema": SCHEMA_ID,
        "cinemri_version": "0.1.0",
        "case": {"name": "patient001", "source": "/data/acdc/patient001_4d.nii.gz", "group": "DCM",
                 "shape": [6, 12, 48, 40], "spacing_mm": [10.0, 1.5625, 1.5625], "spacing_assumed": False,
                 "input": "kspace_undersampled"},
        "reconstruction": {"method": "model", "acceleration": 5.0, "seconds": 3.21,
                           "checkpoint": "runs/recon/best.pt"},
        "segmentation": {"checkpoint": "runs/seg/best.pt", "seconds": 1.5},
        "ed_es": {"ed_frame": 0, "es_frame": 4, "source": "detected", "detected_ed_frame": 0,
                  "detected_es_frame": 4},
        "indices": indices,
        "volumes_ml": {"lv": [150.2, 120.0, 90.0, 70.0, 67.0, 80.0, 100.0, 120.0, 130.0, 140.0, 145.0, 149.0],
                       "rv": [160.0] * 12, "myo": [113.0] * 12},
        "frames_segmented": list(range(12)),
        "image_quality": ({"model": {"psnr_db": 31.234, "ssim": 0.91234, "nmse": 0.01234},
                           "zero_filled": {"psnr_db": 24.5, "ssim": 0.7, "nmse": 0.08}}
                          if image_quality else None),
        "ground_truth": None,
        "warnings": list(warnings),
        "files": {"results": "results.json", "labels_nifti": "labels.nii.gz", "montage": "figures/montage.png",
                  "cine_gif": "cine.gif", "volume_curves": "figures/curves.png", "report": "report.html"},
    }
    if ground_truth:
        truth = {k: (v - 10.0 if isinstance(v, float) else v) for k, v in indices.items()}
        results["ground_truth"] = {
            "indices": truth,
            "errors": {k: 10.0 for k, v in indices.items() if isinstance(v, float)},
            "dice": {"ed": {"rv": 0.901, "myo": 0.8523, "lv": 0.951}, "es": {"rv": 0.8, "myo": 0.85, "lv": 0.91}},
            "hd95_mm": {"ed": {"rv": 4.25, "myo": 3.0, "lv": 2.0}, "es": {"rv": 5.0, "myo": 3.5, "lv": 2.5}},
        }
    return results


def render(tmp_path: Path, results: dict) -> str:
    out = write_report(results, tmp_path / "report.html")
    assert out == tmp_path / "report.html"
    return out.read_text(encoding="utf-8")


def table_row(page: str, key: str) -> list[str]:
    """Text of the cells of the clinical-table row of index ``key``."""
    match = re.search(rf'<tr id="row-{key}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {key}"
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)]


def test_page_parses_balanced_and_self_contained(tmp_path):
    write_figures(tmp_path)
    page = render(tmp_path, make_results(ground_truth=True, warnings=["w"]))
    checker = parse(page)
    assert checker.errors == [] and checker.stack == []
    assert page.startswith("<!DOCTYPE html>")
    # nothing to fetch: no script, no stylesheet link, every src is a data: URI
    names = [t for t, _ in checker.tags]
    assert "script" not in names and "link" not in names and "style" in names
    srcs = [a.get("src") for t, a in checker.tags if t == "img"]
    assert len(srcs) == 3 and all(s.startswith("data:image/") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # no temporary file left beside the report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cine.gif", "figures", "report.html"]


def test_figures_embedded_byte_exact(tmp_path):
    expected = write_figures(tmp_path)
    page = render(tmp_path, make_results())
    uris = [a["src"] for t, a in parse(page).tags if t == "img"]
    decoded = {}
    for uri in uris:
        mime, data = re.fullmatch(r"data:(image/\w+);base64,([A-Za-z0-9+/=]+)", uri).groups()
        decoded[mime, base64.b64decode(data, validate=True)] = True
    assert (("image/png", expected["figures/curves.png"]) in decoded
            and ("image/png", expected["figures/montage.png"]) in decoded
            and ("image/gif", expected["cine.gif"]) in decoded)


def test_values_formatted_and_out_of_range_flagged(tmp_path):
    write_figures(tmp_path)
    page = render(tmp_path, make_results())
    # EF 1 decimal, volumes and mass 0 decimals
    lv_ef = table_row(page, "lv_ef_pct")
    assert lv_ef[1] == "55.4" and lv_ef[2] == "%"
    assert table_row(page, "lv_edv_ml")[1] == "150"
    assert table_row(page, "lv_mass_g")[1] == "120"
    # LV EF 55.4 < 57 is low; RV EF 56.25 lies within 47-80; LV EDV 150 within 86-214
    low, high, _ = NORMAL_RANGES["lv_ef_pct"]
    assert 55.39 < low
    assert lv_ef[3] == f"{low:.0f}–{high:.0f}" and lv_ef[4] == "low"
    assert table_row(page, "rv_ef_pct")[4] == ""
    assert table_row(page, "lv_edv_ml")[4] == ""
    # a high value: ESV above its upper limit
    results = make_results()
    results["indices"]["lv_esv_ml"] = NORMAL_RANGES["lv_esv_ml"][1] + 1.0
    page = render(tmp_path, results)
    assert table_row(page, "lv_esv_ml")[4] == "high"
    assert 'class="flag-high"' in page
    # the reference ranges come with their caveat
    assert "Kawel-Boehm" in page and "not indexed to body surface area" in page


def test_normal_ranges_complete_and_ordered():
    keys = {"lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_ef_pct", "lv_mass_g",
            "rv_edv_ml", "rv_esv_ml", "rv_sv_ml", "rv_ef_pct"}
    assert set(NORMAL_RANGES) == keys
    for key, (low, high, unit) in NORMAL_RANGES.items():
        assert 0 < low < high, key
        assert unit == {"ml": "ml", "pct": "%", "g": "g"}[key.rsplit("_", 1)[1]]
    # EF ranges are percentages
    assert NORMAL_RANGES["lv_ef_pct"][1] <= 100 and NORMAL_RANGES["rv_ef_pct"][1] <= 100


def test_nan_and_none_shown_as_dash(tmp_path):
    write_figures(tmp_path)
    results = make_results(ground_truth=True)
    results["indices"]["lv_mass_g"] = float("nan")  # what the pipeline has before JSON
    results["indices"]["rv_ef_pct"] = None  # what JSON gives back for NaN
    results["ground_truth"]["errors"]["lv_mass_g"] = None
    results["ground_truth"]["dice"]["es"]["rv"] = math.nan
    results["reconstruction"]["acceleration"] = None
    page = render(tmp_path, results)
    mass = table_row(page, "lv_mass_g")
    assert mass[1] == MISSING and mass[4] == "" and mass[6] == MISSING
    assert table_row(page, "rv_ef_pct")[1] == MISSING
    # visible text only: base64 data may hold "nan" by chance, the CSS says "border: none"
    text = " ".join(parse(re.sub(r"<style>.*?</style>", "", page, flags=re.S)).text).lower()
    assert not re.search(r"\b(nan|none|null|inf)\b", text)
    assert parse(page).errors == []


def test_warnings_box_only_when_given(tmp_path):
    write_figures(tmp_path)
    page = render(tmp_path, make_results())
    assert 'class="warnings"' not in page
    page = render(tmp_path, make_results(warnings=["spacing assumed 1 mm", "ES frame 11 is the last frame"]))
    box = re.search(r'<section class="warnings"[^>]*>(.*?)</section>', page, re.S).group(1)
    assert "Warnings (2)" in box and "spacing assumed 1 mm" in box and "ES frame 11 is the last frame" in box
    # the box comes before the clinical table
    assert page.index('class="warnings"') < page.index('class="clinical"')


def test_truth_columns_and_dice_only_with_ground_truth(tmp_path):
    write_figures(tmp_path)
    page = render(tmp_path, make_results())
    assert "Truth" not in page and "Dice" not in page and len(table_row(page, "lv_ef_pct")) == 5
    page = render(tmp_path, make_results(ground_truth=True))
    lv_ef = table_row(page, "lv_ef_pct")
    assert len(lv_ef) == 7 and lv_ef[5] == "45.4" and lv_ef[6] == "+10.0"
    assert table_row(page, "lv_edv_ml")[6] == "+10"
    overlap = re.search(r'<table class="overlap">(.*?)</table>', page, re.S).group(1)
    assert "Dice ED" in overlap and "0.852" in overlap and "HD95 ED (mm)" in overlap and "4.2" in overlap


def test_image_quality_table_only_when_given(tmp_path):
    write_figures(tmp_path)
    page = render(tmp_path, make_results())
    quality = re.search(r'<table class="quality">(.*?)</table>', page, re.S).group(1)
    assert "31.23" in quality and "0.9123" in quality and "0.0123" in quality and "24.50" in quality
    page = render(tmp_path, make_results(image_quality=False))
    assert 'class="quality"' not in page and "Image quality" not in page


def test_summary_and_footer(tmp_path):
    write_figures(tmp_path)
    page = render(tmp_path, make_results())
    assert "patient001" in page and "/data/acdc/patient001_4d.nii.gz" in page
    assert "undersampled k-space" in page and "5.0× acceleration" in page
    assert "runs/recon/best.pt" in page and "runs/seg/best.pt" in page
    footer = re.search(r"<footer>(.*?)</footer>", page, re.S).group(1)
    assert "cinemri 0.1.0" in footer and SCHEMA_ID in footer


def test_text_is_escaped(tmp_path):
    write_figures(tmp_path)
    results = make_results(warnings=["<b>bold</b> & co"])
    results["case"]["name"] = "<script>alert(1)</script>"
    results["case"]["source"] = 'x" onload="alert(2)'
    page = render(tmp_path, results)
    assert "<script>" not in page and "<b>bold" not in page and 'x" onload' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    checker = parse(page)
    assert checker.errors == [] and "script" not in [t for t, _ in checker.tags]
    assert "<script>alert(1)</script>" in "".join(checker.text)  # shown as text, not run


def test_missing_figure_raises_naming_it(tmp_path):
    write_figures(tmp_path)
    (tmp_path / "cine.gif").unlink()
    with pytest.raises(ValueError, match=r"cine\.gif.*does not exist"):
        write_report(make_results(), tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_bad_results_rejected(tmp_path):
    write_figures(tmp_path)
    results = make_results()
    results["schema"] = "cinemri.analyze/0"
    with pytest.raises(ValueError, match="schema"):
        write_report(results, tmp_path / "report.html")
    results = make_results()
    del results["indices"]
    with pytest.raises(ValueError, match="indices"):
        write_report(results, tmp_path / "report.html")
    results = make_results()
    results["indices"]["lv_ef_pct"] = "55"
    with pytest.raises(ValueError, match="lv_ef_pct"):
        write_report(results, tmp_path / "report.html")


def test_existing_report_replaced_and_input_untouched(tmp_path):
    write_figures(tmp_path)
    (tmp_path / "report.html").write_text("old")
    results = make_results(ground_truth=True)
    before = copy.deepcopy(results)
    page = render(tmp_path, results)
    assert page != "old" and results == before
