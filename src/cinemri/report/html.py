"""The HTML report of ``cinemri analyze``: one self-contained page per case.

:func:`write_report` turns the ``results.json`` dictionary (schema ``cinemri.analyze/1``,
documented in ``docs/analyze.md``) into ``report.html``: inline CSS, every figure embedded
as a base64 ``data:`` URI, no JavaScript, no network. The page opens from a USB stick.
All text from the results is escaped; numbers that are missing (None, NaN) show as "—".
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from collections.abc import Mapping
from pathlib import Path

from cinemri.labels import DESCRIPTIONS, STRUCTURES
from cinemri.report._display import atomic_write

SCHEMA_ID = "cinemri.analyze/1"
MISSING = "—"  # shown for None / NaN / inf

# Approximate adult reference ranges {index key: (low, high, unit)}, sex-pooled (lowest female
# lower limit to highest male upper limit), SSFP cine, absolute values (not indexed to body
# surface area), after the review of Kawel-Boehm (née Kawel), ..., Bluemke, "Normal values for
# cardiovascular magnetic resonance in adults and children", J Cardiovasc Magn Reson 17:29 (2015),
# doi:10.1186/s12968-015-0111-7. For orientation only: a flag is not a diagnosis. Note that those
# studies mostly count papillary muscles as LV mass, while ACDC-style labels (ours) count them as
# LV cavity, which moves LV volumes up and LV mass down by a few ml / g.
NORMAL_RANGES: dict[str, tuple[float, float, str]] = {
    "lv_edv_ml": (86.0, 214.0, "ml"),
    "lv_esv_ml": (22.0, 82.0, "ml"),
    "lv_sv_ml": (55.0, 140.0, "ml"),
    "lv_ef_pct": (57.0, 77.0, "%"),
    "lv_mass_g": (66.0, 181.0, "g"),
    "rv_edv_ml": (88.0, 250.0, "ml"),
    "rv_esv_ml": (30.0, 120.0, "ml"),
    "rv_sv_ml": (50.0, 140.0, "ml"),
    "rv_ef_pct": (47.0, 80.0, "%"),
}

# rows of the clinical table, top to bottom: (key, label, decimals)
_INDEX_ROWS: tuple[tuple[str, str, int], ...] = (
    ("lv_edv_ml", "LV end-diastolic volume (EDV)", 0),
    ("lv_esv_ml", "LV end-systolic volume (ESV)", 0),
    ("lv_sv_ml", "LV stroke volume (SV)", 0),
    ("lv_ef_pct", "LV ejection fraction (EF)", 1),
    ("lv_mass_g", "LV myocardial mass", 0),
    ("rv_edv_ml", "RV end-diastolic volume (EDV)", 0),
    ("rv_esv_ml", "RV end-systolic volume (ESV)", 0),
    ("rv_sv_ml", "RV stroke volume (SV)", 0),
    ("rv_ef_pct", "RV ejection fraction (EF)", 1),
)
_INPUT_KINDS = {
    "kspace_undersampled": "undersampled k-space",
    "kspace_fully_sampled": "fully sampled k-space",
    "images": "images (no k-space)",
}
_RECON_METHODS = {
    "model": "trained reconstruction network",
    "cs": "compressed sensing (CS)",
    "zero_filled": "zero-filled inverse FFT",
    "fully_sampled": "fully sampled inverse FFT",
    "images": "none (images given)",
}
_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".svg": "image/svg+xml", ".webp": "image/webp"}
_REQUIRED = ("cinemri_version", "case", "reconstruction", "segmentation", "ed_es", "indices",
             "image_quality", "ground_truth", "warnings", "files")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 1.5em; color: #1a1a1a; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
.source { color: #555; margin-top: 0; word-break: break-all; }
.summary { background: #f4f6f8; border-radius: 4px; padding: 0.6em 1em; }
.summary ul { margin: 0.2em 0; padding-left: 1.2em; }
.warnings { background: #fff4e5; border: 2px solid #d55e00; border-radius: 4px;
            padding: 0.6em 1em; margin: 1em 0; }
.warnings h2 { color: #a33f00; border: none; margin: 0.1em 0 0.3em 0; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; }
th { background: #eef1f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.flag-low, td.flag-high { font-weight: bold; color: #a33f00; background: #fff4e5; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
footer { margin-top: 2.5em; color: #666; font-size: 0.85em; border-top: 1px solid #ccc; padding-top: 0.5em; }
"""


def _esc(value: object) -> str:
    """Text from the results, escaped for HTML (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _number(value: object, where: str) -> float | None:
    """A finite float, or None for None / NaN / inf; anything else (str, bool) is an error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"results{where} must be a number or null, got {value!r}")
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: object, decimals: int, where: str, signed: bool = False) -> str:
    """Number with ``decimals`` decimals ("+" sign if ``signed``), or "—" when missing."""
    v = _number(value, where)
    if v is None:
        return MISSING
    return f"{v:+.{decimals}f}" if signed else f"{v:.{decimals}f}"


def _flag(key: str, value: float | None) -> str:
    """"low" / "high" when ``value`` lies outside the normal range of ``key``; "" otherwise."""
    if value is None or key not in NORMAL_RANGES:
        return ""
    low, high, _ = NORMAL_RANGES[key]
    return "low" if value < low else "high" if value > high else ""


def _section(results: Mapping, key: str, out_path: Path) -> Mapping:
    value = results.get(key)
    if not isinstance(value, Mapping):
        raise ValueError(f"report {out_path}: results[{key!r}] must be an object, got {value!r}")
    return value


def _check(results: object, out_path: Path) -> None:
    """Fail loudly on a results dict that does not follow schema ``cinemri.analyze/1``."""
    if not isinstance(results, Mapping):
        raise ValueError(f"report {out_path}: results must be a dict, got {type(results).__name__}")
    if results.get("schema") != SCHEMA_ID:
        raise ValueError(f"report {out_path}: results['schema'] must be {SCHEMA_ID!r}, "
                         f"got {results.get('schema')!r}")
    missing = [k for k in _REQUIRED if k not in results]
    if missing:
        raise ValueError(f"report {out_path}: results lacks the keys {missing}")
    for key in ("case", "reconstruction", "segmentation", "ed_es", "indices", "files"):
        _section(results, key, out_path)
    if not isinstance(results["warnings"], list):
        raise ValueError(f"report {out_path}: results['warnings'] must be a list, got {results['warnings']!r}")
    for key in ("image_quality", "ground_truth"):
        if results[key] is not None:
            _section(results, key, out_path)


def _data_uri(folder: Path, files: Mapping, key: str, out_path: Path) -> str:
    """``data:`` URI of the figure ``files[key]``, a path relative to the report's folder."""
    rel = files.get(key)
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"report {out_path}: results['files'][{key!r}] must name a figure file, got {rel!r}")
    path = folder / rel
    if not path.is_file():
        raise ValueError(f"report {out_path}: figure file {path} (results['files'][{key!r}]) does not exist")
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"report {out_path}: figure file {path} has an unknown image type "
                         f"{path.suffix!r} (expected one of {sorted(_MIME)})")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _summary(results: Mapping) -> str:
    """The 'what was done' list: input, reconstruction, segmentation, ED/ES, geometry."""
    case, recon, seg, ed_es = (results[k] for k in ("case", "reconstruction", "segmentation", "ed_es"))
    kind = _INPUT_KINDS.get(case.get("input"), str(case.get("input")))
    method = recon.get("method")
    recon_text = _RECON_METHODS.get(method, str(method))
    accel = _number(recon.get("acceleration"), "['reconstruction']['acceleration']")
    if accel is not None:
        recon_text += f" at {accel:.1f}× acceleration"
    if recon.get("checkpoint"):
        recon_text += f", checkpoint {recon['checkpoint']}"
    recon_seconds = _fmt(recon.get("seconds"), 1, "['reconstruction']['seconds']")
    if method != "images":  # nothing was reconstructed, no time to report
        recon_text += f" ({recon_seconds} s)"
    seg_seconds = _fmt(seg.get("seconds"), 1, "['segmentation']['seconds']")
    seg_text = f"checkpoint {seg.get('checkpoint')} ({seg_seconds} s)"
    n_seg = len(results.get("frames_segmented") or [])
    if n_seg:
        seg_text += f", {n_seg} frame{'s' if n_seg != 1 else ''} segmented"
    source = {"file": "given in the input file", "detected": "detected from the LV volume curve"}
    ed, es = ed_es.get("ed_frame"), ed_es.get("es_frame")
    numbered = "ed_frame_number" in ed_es and "es_frame_number" in ed_es
    key = "_number" if numbered else ""  # the input's own frame numbers when results carry them
    numbering = f"{ed_es.get('frame_numbering')}; " if numbered else ""
    frames_text = (f"ED frame {ed_es.get('ed_frame' + key)}, ES frame {ed_es.get('es_frame' + key)} "
                   f"({numbering}{source.get(ed_es.get('source'), ed_es.get('source'))})")
    det = (ed_es.get("detected_ed_frame"), ed_es.get("detected_es_frame"))
    if ed_es.get("source") == "file" and None not in det and det != (ed, es):
        frames_text += (f"; detection would pick ED {ed_es.get('detected_ed_frame' + key)}, "
                        f"ES {ed_es.get('detected_es_frame' + key)}")
    shape = "×".join(str(n) for n in case.get("shape") or []) or MISSING
    spacing = " × ".join(_fmt(v, 2, "['case']['spacing_mm']") for v in case.get("spacing_mm") or [])
    geometry = f"{shape} (slices × frames × height × width), spacing {spacing or MISSING} mm (dz × dy × dx)"
    if case.get("spacing_assumed"):
        geometry += " — ASSUMED, not read from the file: volumes and mass scale with it"
    group = f" Group: {case['group']}." if case.get("group") else ""
    items = [("Input", kind + "." + group), ("Reconstruction", recon_text), ("Segmentation", seg_text),
             ("ED / ES", frames_text), ("Geometry", geometry)]
    lis = "\n".join(f"<li><strong>{_esc(k)}:</strong> {_esc(v)}</li>" for k, v in items)
    return f'<section class="summary">\n<ul>\n{lis}\n</ul>\n</section>'


def _warnings(warnings: list) -> str:
    if not warnings:
        return ""
    lis = "\n".join(f"<li>{_esc(w)}</li>" for w in warnings)
    return (f'<section class="warnings" role="alert">\n<h2>Warnings ({len(warnings)})</h2>\n'
            f"<ul>\n{lis}\n</ul>\n</section>")


def _clinical_table(results: Mapping) -> str:
    """Index, value, unit, normal range, flag [, truth, error]; then Dice/HD95 with ground truth."""
    indices, truth = results["indices"], results["ground_truth"]
    head = ["Index", "Value", "Unit", "Normal range", "Flag"]
    if truth is not None:
        head += ["Truth", "Error (pred − truth)"]
        t_idx, t_err = truth.get("indices") or {}, truth.get("errors") or {}
    rows = []
    for key, label, dec in _INDEX_ROWS:
        value = _number(indices.get(key), f"['indices'][{key!r}]")
        low, high, unit = NORMAL_RANGES[key]
        flag = _flag(key, value)
        cells = [f"<td>{_esc(label)}</td>",
                 f'<td class="num">{_fmt(value, dec, "")}</td>',
                 f"<td>{_esc(unit)}</td>",
                 f'<td class="num">{low:.0f}–{high:.0f}</td>',
                 f'<td class="flag-{flag}">{flag}</td>' if flag else "<td></td>"]
        if truth is not None:
            t_val = _fmt(t_idx.get(key), dec, f"['ground_truth']['indices'][{key!r}]")
            t_diff = _fmt(t_err.get(key), dec, f"['ground_truth']['errors'][{key!r}]", signed=True)
            cells += [f'<td class="num">{t_val}</td>', f'<td class="num">{t_diff}</td>']
        rows.append(f'<tr id="row-{key}">' + "".join(cells) + "</tr>")
    ths = "".join(f"<th>{_esc(h)}</th>" for h in head)
    out = [f'<table class="clinical">\n<thead><tr>{ths}</tr></thead>\n<tbody>\n' + "\n".join(rows)
           + "\n</tbody>\n</table>",
           '<p class="note">Normal ranges: approximate adult reference ranges, sex-pooled, SSFP cine, '
           "after Kawel-Boehm et al., J Cardiovasc Magn Reson 17:29 (2015). They are not indexed to "
           "body surface area, age or sex: for orientation only, a flag is not a diagnosis. "
           "Papillary muscles count as LV cavity here (ACDC convention), as LV mass in most reference "
           "studies.</p>"]
    if truth is not None:
        out.append(_overlap_table(truth))
    return "\n".join(out)


def _overlap_table(truth: Mapping) -> str:
    """Dice (and HD95 in mm when present) per structure at ED and ES, against the ground truth."""
    dice, hd = truth.get("dice") or {}, truth.get("hd95_mm") or {}
    head = ["Structure", "Dice ED", "Dice ES"] + (["HD95 ED (mm)", "HD95 ES (mm)"] if hd else [])
    rows = []
    for key, value in STRUCTURES.items():
        label = DESCRIPTIONS[value]
        cells = [f"<td>{_esc(label)}</td>"]
        for phase in ("ed", "es"):
            d = _fmt((dice.get(phase) or {}).get(key), 3, f"['ground_truth']['dice'][{phase!r}][{key!r}]")
            cells.append(f'<td class="num">{d}</td>')
        for phase in ("ed", "es") if hd else ():
            h = _fmt((hd.get(phase) or {}).get(key), 1, f"['ground_truth']['hd95_mm'][{phase!r}][{key!r}]")
            cells.append(f'<td class="num">{h}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ths = "".join(f"<th>{_esc(h)}</th>" for h in head)
    return ("<h3>Segmentation against the ground truth</h3>\n"
            f'<table class="overlap">\n<thead><tr>{ths}</tr></thead>\n<tbody>\n' + "\n".join(rows)
            + "\n</tbody>\n</table>")


def _quality_table(quality: Mapping) -> str:
    """PSNR / SSIM / NMSE per reconstruction method against the fully sampled image."""
    rows = []
    for method, m in quality.items():
        m = m if isinstance(m, Mapping) else {}
        where = f"['image_quality'][{method!r}]"
        psnr = _fmt(m.get("psnr_db"), 2, where + "['psnr_db']")
        ssim = _fmt(m.get("ssim"), 4, where + "['ssim']")
        nmse = _fmt(m.get("nmse"), 4, where + "['nmse']")
        rows.append(f"<tr><td>{_esc(_RECON_METHODS.get(method, method))}</td>"
                    f'<td class="num">{psnr}</td><td class="num">{ssim}</td><td class="num">{nmse}</td></tr>')
    return ('<table class="quality">\n<thead><tr><th>Method</th><th>PSNR (dB)</th><th>SSIM</th>'
            "<th>NMSE</th></tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n"
            '<p class="note">Reference: the fully sampled image. Magnitude images, data range = '
            "maximum of the reference (PSNR, SSIM), SSIM with a 7×7 window. Higher PSNR/SSIM and "
            "lower NMSE are better.</p>")


def _figure(uri: str, alt: str, caption: str) -> str:
    return f'<figure>\n<img src="{uri}" alt="{_esc(alt)}">\n<figcaption>{_esc(caption)}</figcaption>\n</figure>'


def render_report(results: Mapping, folder: Path, out_path: Path | None = None) -> str:
    """The report page as a string; figures are read from ``folder`` (see :func:`write_report`)."""
    out_path = Path(out_path) if out_path is not None else Path(folder) / "report.html"
    _check(results, out_path)
    files, case = results["files"], results["case"]
    uris = {k: _data_uri(Path(folder), files, k, out_path) for k in ("volume_curves", "montage", "cine_gif")}
    name = case.get("name", MISSING)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>cinemri analyze: {_esc(name)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>cinemri analyze: {_esc(name)}</h1>",
        f'<p class="source">Source: {_esc(case.get("source", MISSING))}</p>',
        "</header>",
        _summary(results),
        _warnings(results["warnings"]),
        "<h2>Clinical indices</h2>",
        _clinical_table(results),
        "<h2>Volume over the cardiac cycle</h2>",
        _figure(uris["volume_curves"], "LV, RV and myocardial volume against frame",
                "LV, RV and myocardial volumes (ml) per frame; end-diastole (ED) and end-systole (ES) "
                "marked; dashed lines, when present, are the ground truth."),
        "<h2>Slices at ED and ES</h2>",
        _figure(uris["montage"], "Slice montage at ED and ES with contours",
                "Every slice (base to apex) at ED and ES with the predicted contours: "
                "RV (blue), epicardium (yellow), LV endocardium (vermillion)."),
        "<h2>Cine</h2>",
        _figure(uris["cine_gif"], "Cine loop of a mid-ventricular slice with contours",
                "One mid-ventricular slice over the cardiac cycle with the predicted contours."),
    ]
    if results["image_quality"] is not None:
        parts += ["<h2>Image quality</h2>", _quality_table(results["image_quality"])]
    if files.get("recon_panel"):
        parts += ["<h2>Reconstruction</h2>",
                  _figure(_data_uri(Path(folder), files, "recon_panel", out_path),
                          "Reference, zero-filled and reconstructed images with error maps at ED and ES",
                          "One mid-ventricular slice at ED and ES: the fully sampled reference, zero filling "
                          "and the reconstruction (top rows, same grey window), and their absolute errors "
                          "against the reference, amplified as stated (bottom rows).")]
    parts += [
        "<footer>",
        f"Made by cinemri {_esc(results['cinemri_version'])} · results schema {_esc(results['schema'])} · "
        f"numbers from {_esc(files.get('results', 'results.json'))}. Research software, not a medical device.",
        "</footer>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(p for p in parts if p)


def write_report(results: dict, out_path: Path) -> Path:
    """Write the self-contained HTML report of one ``cinemri analyze`` run.

    results: the ``results.json`` dict, schema ``cinemri.analyze/1`` (see docs/analyze.md)
    out_path: the report file, normally ``DIR / "report.html"``; figure paths in
        ``results["files"]`` are relative to ``out_path.parent``
    returns ``out_path``

    Raises:
        ValueError: a results dict off the schema, a figure file that is missing or of an
            unknown type, a value that should be a number but is not.
    """
    out_path = Path(out_path)
    page = render_report(results, out_path.parent, out_path)  # everything is checked before writing
    return atomic_write(out_path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
