"""`cinemri analyze` (k-space or images -> clinical indices + report) and `cinemri export-weights`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers, formatter) -> None:
    from cinemri.pipeline import AnalyzeOptions

    defaults = AnalyzeOptions()
    p = subparsers.add_parser(
        "analyze", formatter_class=formatter,
        help="reconstruct, segment and measure one case: results.json, label maps, report.html",
        description="k-space (or images) -> cine -> RV/MYO/LV -> EDV, ESV, SV, EF, LV mass. A fully sampled "
                    "input (a phantom case) is first undersampled at --acceleration with a seeded mask, so the "
                    "reconstruction is really tested: by default with the reconstruction checkpoint's own mask "
                    "settings (acceleration, pattern, centre lines of its data section). Without checkpoint "
                    "options the bundled phantom weights are used.",
        epilog="examples:\n  cinemri analyze data/phantom/phantom_1484405855.h5 --out runs/analyze/phantom  "
               "# a case of `cinemri phantom --out data/phantom --seed 0`\n"
               "  cinemri analyze ACDC/training/patient001 --seg-checkpoint "
               "runs/seg/acdc_unet/best.pt --out runs/analyze/patient001\n"
               "  cinemri analyze cine_sax.mat --out runs/analyze/cmrx  # CMRxRecon, reconstructed as acquired")
    p.add_argument("input", type=Path,
                   help="cinemri case .h5, CMRxRecon .mat, ACDC patient folder, M&Ms case, DICOM cine folder, "
                        "or NIfTI image")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--recon-checkpoint", type=Path, default=None,
                   help="reconstruction checkpoint (default: the bundled cascade)")
    p.add_argument("--seg-checkpoint", type=Path, default=None,
                   help="segmentation checkpoint (default: the bundled segmenter; for images reconstructed "
                        "from undersampled k-space, the bundled one fine-tuned on such reconstructions)")
    p.add_argument("--recon", dest="recon_method", choices=("model", "cs", "zero_filled"), default=defaults.recon_method,
                   help="how k-space becomes images: the trained cascade, CS-TV, or zero filling")
    p.add_argument("--acceleration", type=float, default=defaults.acceleration,
                   help="undersampling of a fully sampled input (default: the reconstruction checkpoint's "
                        "data.acceleration)")
    p.add_argument("--no-undersample", action="store_true",
                   help="use a fully sampled input as it is (no undersampling, no reconstruction)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the undersampling masks")
    p.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average the segmentation over image flips (default: the checkpoint's eval.flip_tta)")
    p.add_argument("--postprocess", action=argparse.BooleanOptionalAction, default=None,
                   help="anatomical post-processing of the labels (default: the checkpoint's eval.postprocess)")
    p.add_argument("--device", default=defaults.device, help="cpu or cuda")
    p.add_argument("--no-figures", action="store_true", help="only results.json and the label maps")
    p.set_defaults(run=_run_analyze)

    p = subparsers.add_parser(
        "export-weights", formatter_class=formatter,
        help="copy a training checkpoint without its optimizer state (small, for sharing or bundling)",
        epilog="examples:\n  cinemri export-weights runs/seg/phantom_unet/best.pt seg_weights.pt\n"
               "  cinemri analyze case.h5 --seg-checkpoint seg_weights.pt --out runs/analyze/case\n"
               "  cinemri export-weights runs/seg/unet/best.pt runs/seg/mednext/best.pt seg_ensemble.pt --fp16"
               "   # one file: the mean of both segmenters' probabilities")
    p.add_argument("checkpoint", type=Path, nargs="+",
                   help="checkpoint written by `cinemri recon|seg train`; several segmentation checkpoints "
                        "(same preprocessing) are written as one ensemble")
    p.add_argument("out", type=Path, help="output .pt file")
    p.add_argument("--fp16", action="store_true", help="store the weights in half precision (half the size)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="test-time default stored with the weights, e.g. eval.flip_tta=true, or a model "
                        "argument that is not a weight, e.g. model.init_iters=50 (repeatable)")
    p.set_defaults(run=_run_export)


def _run_analyze(args) -> None:
    from cinemri.pipeline import AnalyzeOptions, analyze

    options = AnalyzeOptions(recon_method=args.recon_method, acceleration=args.acceleration,
                             undersample=not args.no_undersample, seed=args.seed,
                             flip_tta=args.flip_tta, postprocess=args.postprocess, device=args.device,
                             figures=not args.no_figures)
    results = analyze(args.input, args.out, recon_checkpoint=args.recon_checkpoint,
                      seg_checkpoint=args.seg_checkpoint, options=options, progress=progress_line)
    print(summary_text(results, args.out))


def progress_line(message: str) -> None:
    """One line per step on stderr, flushed: progress shows in logs and pipes, not only on a terminal."""
    import sys

    print(f"cinemri: {message}", file=sys.stderr, flush=True)


def _fmt(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _frames(ed_es: dict) -> str:
    """"ED frame 1, ES frame 12 (Info.cfg numbering, 1-based; from the file)": the input's own numbers."""
    if "ed_frame_number" in ed_es:
        return (f"ED frame {ed_es['ed_frame_number']}, ES frame {ed_es['es_frame_number']} "
                f"({ed_es['frame_numbering']}; {ed_es['source']})")
    return f"ED frame {ed_es['ed_frame']}, ES frame {ed_es['es_frame']} (0-based; {ed_es['source']})"


def summary_text(results: dict, out: Path) -> str:
    """The lines `cinemri analyze` prints: what was done, the indices (with truth), where the report is."""
    rec, idx = results["reconstruction"], results["indices"]
    lines = [f"case {results['case']['name']} ({results['case']['input']}): reconstruction {rec['method']}"
             + (f" at R={rec['acceleration']:.2f}" if rec["acceleration"] else "")
             + f", {_frames(results['ed_es'])}"]
    truth = (results.get("ground_truth") or {}).get("indices", {})
    for key, label, unit, digits in (("lv_edv_ml", "LV EDV", "ml", 0), ("lv_esv_ml", "LV ESV", "ml", 0),
                                     ("lv_ef_pct", "LV EF", "%", 1), ("rv_ef_pct", "RV EF", "%", 1),
                                     ("lv_mass_g", "LV mass", "g", 0)):
        line = f"  {label:8s} {_fmt(idx.get(key), digits):>7s} {unit}"
        if key in truth:
            line += f"   (truth {_fmt(truth[key], digits)} {unit})"
        lines.append(line)
    quality = results.get("image_quality") or {}
    for method, q in quality.items():
        lines.append(f"  {method}: PSNR {q['psnr_db']:.2f} dB, SSIM {q['ssim']:.3f}")
    for warning in results["warnings"]:
        lines.append(f"  warning: {warning}")
    lines.append(f"results: {out / 'results.json'}")
    if "report" in results["files"] and (out / results["files"]["report"]).is_file():
        lines.append(f"report: {out / results['files']['report']}")
    return "\n".join(lines)


def _run_export(args) -> None:
    from cinemri.pipeline import ensemble_weights, export_weights

    if len(args.checkpoint) == 1:
        path = export_weights(args.checkpoint[0], args.out, half=args.fp16, overrides=args.overrides)
    else:
        path = ensemble_weights(args.checkpoint, args.out, half=args.fp16, eval_overrides=args.overrides)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
