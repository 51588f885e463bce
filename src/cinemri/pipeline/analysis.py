"""``cinemri analyze``: one case from k-space (or images) to clinical indices and a report.

Steps (each its own function, so the acceleration study reuses them):

1. :func:`cinemri.pipeline.reconstruct.reconstruct_case` -- the cine images;
2. :func:`segment` -- labels of every slice and frame with a segmentation checkpoint;
3. :func:`clinical_summary` -- volume curves, ED/ES (the file's when it has them, else
   detected from the LV curve), EDV/ESV/SV/EF and LV mass, with warnings for results that
   should not be trusted (empty structures, EF outside 0-100 %, assumed spacing);
4. :func:`compare_with_truth` -- when the input carries ground truth (phantom, ACDC):
   index errors, Dice and HD95 at ED and ES;
5. :func:`analyze` -- all of the above plus the files: ``results.json`` (schema
   ``cinemri.analyze/1``, docs/analyze.md), ``<name>_seg.nii.gz``, figures and ``report.html``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cinemri import __version__
from cinemri.case import Case
from cinemri.clinical import INDEX_KEYS, compute_indices, detect_ed_es, volume_curves_ml
from cinemri.files import StagedOutputDir, check_output_dir, json_safe, write_json  # write_json: re-exported
from cinemri.io import read_any
from cinemri.labels import LV, MYO, STRUCTURES
from cinemri.metrics import nmse, psnr, segmentation_scores, ssim
from cinemri.pipeline.reconstruct import Reconstruction, image_source, reconstruct_case, with_image
from cinemri.pipeline.weights import resolve_checkpoint, resolve_segmenter
from cinemri.plausibility import check_confidence, check_enclosure, check_indices, check_myocardium
from cinemri.recon import CSOptions
from cinemri.recon.inference import is_undersampled, load_reconstructor
from cinemri.report.html import SCHEMA_ID as SCHEMA
from cinemri.seg.inference import Segmentation, load_segmenter, segment_case, test_time_options

FLOAT_KEYS = ("lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_ef_pct", "rv_edv_ml", "rv_esv_ml", "rv_sv_ml",
              "rv_ef_pct", "lv_mass_g")


@dataclass(frozen=True)
class AnalyzeOptions:
    """Options of :func:`analyze`; every default lives here.

    recon_method: "model" (the cascade), "cs" or "zero_filled"; acceleration/undersample/
    seed/pattern: how a fully sampled input is undersampled first (seeded per case and
    slice); acceleration and pattern None (the default): the reconstruction checkpoint's
    own (its ``data`` section, with its centre lines: the masks the model was trained on;
    see :func:`~cinemri.pipeline.reconstruct.reconstruct_case`); cs_iters: iterations of the CS
    baseline; flip_tta/postprocess/largest_component:
    test-time options of the segmentation (None: the checkpoint's ``eval`` section);
    device: "cpu" or "cuda".
    """

    recon_method: str = "model"
    acceleration: float | None = None
    undersample: bool = True
    seed: int = 0
    pattern: str | None = None
    cs_iters: int = CSOptions.num_iters
    flip_tta: bool | None = None
    postprocess: bool | None = None
    largest_component: bool | None = None
    device: str = "cpu"
    figures: bool = True

    def __post_init__(self) -> None:
        if self.acceleration is not None and not self.acceleration >= 1:
            raise ValueError(f"acceleration must be >= 1, got {self.acceleration}")


def input_kind(case: Case) -> str:
    """"kspace_undersampled", "kspace_fully_sampled" (k-space or image + coil maps) or "images"."""
    if is_undersampled(case):
        return "kspace_undersampled"
    if case.kspace is not None or (case.image is not None and case.coil_maps is not None):
        return "kspace_fully_sampled"
    return "images"


def segment(case: Case, seg_model, seg_cfg, options: AnalyzeOptions) -> tuple[Segmentation, float]:
    """(segmentation of every frame of ``case.image``: labels (S, T, H, W) uint8 and the
    network's confidence, seconds)."""
    start = time.perf_counter()
    with torch.inference_mode():
        test_time = test_time_options(seg_cfg, flip_tta=options.flip_tta, postprocess=options.postprocess,
                                      largest_component=options.largest_component)
        result = segment_case(seg_model, case, seg_cfg, test_time=test_time, device=options.device)
    return result, time.perf_counter() - start


def _file_ed_es(case: Case, t: int) -> tuple[int, int] | None:
    """The file's (ED, ES) frames when it names them and they lie in [0, t), else None."""
    if case.ed_frame is None or case.es_frame is None:
        return None
    if not (0 <= case.ed_frame < t and 0 <= case.es_frame < t):
        return None
    return int(case.ed_frame), int(case.es_frame)


def indices_dict(labels: np.ndarray, spacing, ed: int, es: int) -> dict[str, Any]:
    """Indices of INDEX_KEYS plus lv_sv_ml and rv_sv_ml (NaN where undefined)."""
    idx = compute_indices(labels, spacing, ed, es)
    out: dict[str, Any] = idx.as_dict()
    out["lv_sv_ml"], out["rv_sv_ml"] = idx.lv_sv_ml, idx.rv_sv_ml
    out["ed_frame"], out["es_frame"] = idx.ed_frame, idx.es_frame
    return out


def clinical_summary(labels: np.ndarray, case: Case, confidence: float = math.nan
                     ) -> tuple[dict[str, Any], list[str]]:
    """The "ed_es", "indices", "volumes_ml" entries of results.json and warnings.

    labels: (S, T, H, W) uint8 of every frame. ED/ES: the file's when it names them, else the
    frames of largest / smallest LV volume. confidence: the segmentation network's mean
    confidence (NaN: unknown). Warnings: empty structures, the checks of
    :mod:`cinemri.plausibility`, assumed spacing.

    Raises:
        ValueError: fewer than 2 frames (ED and ES cannot both exist), or an LV that is
            empty in every frame (nothing to measure), naming the case.
    """
    where = case.source or case.name
    t = labels.shape[1]
    if t < 2:
        raise ValueError(f"{where}: {t} frame(s); ED and ES need at least 2 frames of a cine")
    curves = volume_curves_ml(labels, case.spacing)
    if not np.any(curves[LV] > 0):
        raise ValueError(f"{where}: the segmentation found no LV in any frame; no indices can be computed "
                         "(wrong input orientation/contrast, or a checkpoint trained on other data?)")
    warnings: list[str] = []
    detected = detect_ed_es(curves[LV])
    from_file = _file_ed_es(case, t)
    ed, es = from_file if from_file is not None else detected
    if from_file is not None and (from_file[0] != detected[0] or from_file[1] != detected[1]):
        warnings.append(f"ED/ES from the file ({from_file[0]}/{from_file[1]}) differ from the frames of "
                        f"largest/smallest segmented LV volume ({detected[0]}/{detected[1]})")
    indices = indices_dict(labels, case.spacing, ed, es)
    for name, value in STRUCTURES.items():
        for phase, frame in (("ED", ed), ("ES", es)):
            if not np.any(labels[:, frame] == value):
                warnings.append(f"{name.upper()} is empty at {phase} (frame {frame}): its indices are not valid")
    warnings += check_indices(indices)
    warnings += check_enclosure(labels, {"ED": ed, "ES": es})
    warnings += check_myocardium(curves[MYO], list(range(t)))
    warnings += check_confidence(confidence)
    if case.spacing_assumed:
        warnings.append(f"the input carries no voxel spacing; the reader's default {tuple(case.spacing)} mm was "
                        "assumed, so volumes and mass are only as right as that guess")
    summary = {
        "ed_es": {"ed_frame": int(ed), "es_frame": int(es), "source": "file" if from_file else "detected",
                  "detected_ed_frame": int(detected[0]), "detected_es_frame": int(detected[1])},
        "indices": indices,
        "volumes_ml": {name: [float(v) for v in curves[value]] for name, value in STRUCTURES.items()},
    }
    return summary, warnings


def compare_with_truth(labels: np.ndarray, case: Case, ed: int, es: int) -> dict[str, Any] | None:
    """Errors against the input's ground truth, or None without one.

    Truth indices: the phantom's recorded analytic indices (``case.indices``) when present,
    else computed from the file's labels at its ED/ES. Dice and HD95 (mm, in-plane and
    through-plane spacing) of the whole stack at the truth's ED and ES frames.
    """
    truth_ed_es = _file_ed_es(case, labels.shape[1])
    if case.labels is None or truth_ed_es is None:
        return None
    t_ed, t_es = truth_ed_es
    if not (t_ed in case.labelled_frames and t_es in case.labelled_frames):
        return None
    if case.indices and all(k in case.indices for k in INDEX_KEYS):
        truth = {k: float(case.indices[k]) for k in INDEX_KEYS}
        truth["lv_sv_ml"] = truth["lv_edv_ml"] - truth["lv_esv_ml"]
        truth["rv_sv_ml"] = truth["rv_edv_ml"] - truth["rv_esv_ml"]
    else:
        truth = indices_dict(case.labels, case.spacing, t_ed, t_es)
    pred = indices_dict(labels, case.spacing, ed, es)
    dice_scores, hd95 = {}, {}
    for phase, frame in (("ed", t_ed), ("es", t_es)):
        scores = segmentation_scores(labels[:, frame], case.labels[:, frame], case.spacing)
        dice_scores[phase] = {n: scores[f"dice_{n}"] for n in STRUCTURES}
        hd95[phase] = {n: scores[f"hd95_{n}_mm"] for n in STRUCTURES}
    return {"indices": truth, "errors": {k: pred[k] - truth[k] for k in FLOAT_KEYS},
            "dice": dice_scores, "hd95_mm": hd95}


def image_quality(recon: Reconstruction) -> dict[str, dict[str, float]] | None:
    """PSNR/SSIM/NMSE of the reconstruction (and zero filling) against the fully sampled
    reference, per case (fastMRI's convention: magnitude, data range = max of the reference)."""
    if recon.reference is None or recon.method in ("fully_sampled", "images"):
        return None
    ref = torch.from_numpy(recon.reference).abs().reshape(-1, *recon.reference.shape[-2:])  # (S*T, H, W)
    out = {}
    for name, image in ((recon.method, recon.image), ("zero_filled", recon.zero_filled)):
        img = torch.from_numpy(image).abs().reshape(ref.shape)
        out[name] = {"psnr_db": psnr(img, ref), "ssim": ssim(img, ref), "nmse": nmse(img, ref)}
    return out


class NoHeartFoundError(ValueError):
    """The segmentation holds no heart: no frame has an LV cavity of at least
    :data:`MIN_HEART_LV_ML` with myocardium around it. No volumes are reported."""


MIN_HEART_LV_ML = 1.0  # an LV cavity below this in every frame is no heart (a neonate's holds ~5 ml)


def check_heart_found(labels: np.ndarray, case: Case) -> None:
    """NoHeartFoundError naming the input unless some frame of ``labels`` (S, T, H, W) holds
    an LV cavity of at least MIN_HEART_LV_ML ml and some myocardium."""
    curves = volume_curves_ml(labels, case.spacing)
    heart = (curves[LV] >= MIN_HEART_LV_ML) & (curves[MYO] > 0)  # (T,)
    if not heart.any():
        raise NoHeartFoundError(
            f"{case.source or case.name}: no heart found: no frame of the segmentation holds an LV cavity of "
            f"at least {MIN_HEART_LV_ML:g} ml with myocardium (largest LV {float(curves[LV].max()):.2g} ml); "
            "no volumes are reported (not a short-axis cardiac cine, or a checkpoint trained on other data?)")


def _frame_entries(case: Case, ed_es: dict[str, Any]) -> dict[str, Any]:
    """ED/ES (chosen and detected) in the input's own numbering, for results.json's "ed_es"
    (the ``*_frame`` keys stay 0-based indices; see docs/analyze.md)."""
    out: dict[str, Any] = {"frame_numbering": case.numbering()}
    for key in ("ed_frame", "es_frame", "detected_ed_frame", "detected_es_frame"):
        out[f"{key}_number"] = case.frame_number(int(ed_es[key]))
    return out


def analyze(input_path: str | os.PathLike, out_dir: str | os.PathLike, *,
            recon_checkpoint: str | os.PathLike | None = None, seg_checkpoint: str | os.PathLike | None = None,
            options: AnalyzeOptions = AnalyzeOptions(),
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole chain on one input and write everything into ``out_dir``.

    input_path: a cinemri case (.h5), a CMRxRecon .mat, an ACDC patient folder, an M&Ms
    case, a DICOM cine folder or a NIfTI cine. Checkpoints default to the bundled phantom
    weights (:mod:`cinemri.pipeline.weights`). Returns the results dict (also in results.json).
    progress: called with one line per step (and per reconstructed slice), for a log; None: silent.

    Order: ``out_dir`` is checked first (not a file, writable:
    :func:`cinemri.files.check_output_dir`), then the input is read and validated and the
    checkpoints are loaded -- all before anything is created. The files are written into a
    hidden staging folder beside ``out_dir`` and moved into it only when all are written
    (:class:`cinemri.files.StagedOutputDir`): a failed run leaves ``out_dir`` as it was, and
    ``results.json`` in it always belongs to one complete run.

    Raises:
        ValueError: unreadable input or checkpoint, ``out_dir`` a file, a case whose indices
            cannot be computed; :class:`NoHeartFoundError` when the segmentation holds no heart.
        OSError: ``out_dir`` cannot be written (named).
    """
    from cinemri.io import write_labels_nifti
    from cinemri.report import cine_gif, slice_montage, volume_curves_figure, write_report
    from cinemri.report.recon_figures import recon_comparison_figure

    def step(message: str) -> None:
        if progress is not None:
            progress(message)

    out = check_output_dir(out_dir)
    case = read_any(input_path)
    if case.num_frames < 2:
        raise ValueError(f"{input_path}: {case.num_frames} frame(s); ED and ES need a cine of at least 2 frames")
    kind = input_kind(case)
    source = image_source(case, options.recon_method, options.undersample)  # what reconstruct_case will do
    recon_path = None
    loaded = None
    if source == "model":
        recon_path = resolve_checkpoint(recon_checkpoint, "recon")
        loaded = load_reconstructor(recon_path, options.device)
    seg_path = resolve_segmenter(seg_checkpoint, reconstructed=source in ("model", "cs"))
    seg_model, seg_cfg = load_segmenter(seg_path, options.device)
    recon = reconstruct_case(case, options.recon_method, recon=loaded, acceleration=options.acceleration,
                             undersample=options.undersample, seed=options.seed, pattern=options.pattern,
                             cs_iters=options.cs_iters, progress=progress)
    image_case = with_image(case, recon.image)
    s_count, t_count = case.num_slices, case.num_frames
    step(f"segmenting {s_count} slices x {t_count} frames")
    segmentation, seg_seconds = segment(image_case, seg_model, seg_cfg, options)
    labels = segmentation.labels
    check_heart_found(labels, case)
    summary, warnings = clinical_summary(labels, case, segmentation.confidence)
    ed, es = summary["ed_es"]["ed_frame"], summary["ed_es"]["es_frame"]
    summary["ed_es"].update(_frame_entries(case, summary["ed_es"]))
    stem = case.name
    files = {"results": "results.json", "report": "report.html"}
    quality = image_quality(recon)
    previous = _previous_files(out)
    with StagedOutputDir(out, index="results.json") as stage:
        work = stage.path
        step(f"writing label maps{', figures and report' if options.figures else ''}")
        files["labels_nifti"] = write_labels_nifti(labels, work / f"{stem}_seg.nii.gz", reference=case).name
        if options.figures:
            shown = replace(image_case, labels=labels, ed_frame=ed, es_frame=es,
                            labelled_frames=tuple(range(labels.shape[1])))
            files["montage"] = slice_montage(shown, work / f"{stem}_montage.png", crop_to_heart=True,
                                             contours="predicted").name
            files["cine_gif"] = cine_gif(shown, work / f"{stem}_cine.gif").name
            truth_curves = None
            if case.labels is not None and len(case.labelled_frames) == case.num_frames:
                truth_curves = volume_curves_ml(case.labels, case.spacing)
            title = (f"{case.name}: LV EF {summary['indices']['lv_ef_pct']:.1f} %"
                     + (" (dashed: ground truth)" if truth_curves is not None else ""))
            files["volume_curves"] = volume_curves_figure(
                {STRUCTURES[k]: np.asarray(v) for k, v in summary["volumes_ml"].items()}, ed, es,
                work / f"{stem}_volumes.png", reference=truth_curves, title=title,
                frame_number=case.frame_number, numbering=case.numbering()).name
            if quality is not None and recon.zero_filled is not None:
                files["recon_panel"] = _recon_panel(recon, shown, ed, es, quality,
                                                    work / f"{stem}_recon.png", recon_comparison_figure).name
        results = {
            "schema": SCHEMA,
            "cinemri_version": __version__,
            "case": {"name": case.name, "source": str(case.source or input_path), "group": case.group,
                     "shape": list(labels.shape), "spacing_mm": [float(v) for v in case.spacing],
                     "spacing_assumed": bool(case.spacing_assumed), "input": kind},
            "reconstruction": {"method": recon.method, "acceleration": recon.acceleration,
                               "mask": recon.mask, "seconds": recon.seconds,
                               "checkpoint": str(recon_path) if recon_path is not None else None},
            "segmentation": {"checkpoint": str(seg_path), "seconds": seg_seconds,
                             "confidence": segmentation.confidence},
            **summary,
            "frames_segmented": list(range(labels.shape[1])),
            "image_quality": quality,
            "ground_truth": compare_with_truth(labels, case, ed, es),
            "warnings": warnings,
            "files": files,
        }
        if options.figures:
            write_report(json_safe(results), work / "report.html")
        write_json(results, work / "results.json")
        stage.stale = previous  # files of an earlier run in out_dir that this run does not write again
    return json_safe(results)


def _previous_files(out: Path) -> list[str]:
    """File names listed in the "files" of a results.json already in ``out`` (a previous run)."""
    try:
        listed = json.loads((out / "results.json").read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return []
    return [v for v in listed.values() if isinstance(v, str) and v and Path(v).name == v] \
        if isinstance(listed, dict) else []


def _recon_panel(recon: Reconstruction, shown: Case, ed: int, es: int, quality: dict, path: Path,
                 draw: Callable) -> Path:
    """Reference, zero-filled, reconstruction and error maps at ED and ES of the mid-ventricular slice."""
    from cinemri.report import mid_ventricular_slice

    s = mid_ventricular_slice(shown)
    methods = {"zero-filled": recon.zero_filled[s], recon.method: recon.image[s]}
    scores = {"zero-filled": quality.get("zero_filled"), recon.method: quality.get(recon.method)}
    text = {name: f"PSNR {q['psnr_db']:.1f} dB, SSIM {q['ssim']:.3f}" for name, q in scores.items() if q}
    frames = {f"ED frame {shown.frame_number(ed)}": ed, f"ES frame {shown.frame_number(es)}": es}
    title = (f"{shown.name}, slice {s}: fully sampled reference, zero filling and {recon.method} at "
             f"R={recon.acceleration:.1f} (frames {shown.numbering()}; scores over the whole case)")
    return draw(recon.reference[s], methods, frames, path, title=title, scores=text)
