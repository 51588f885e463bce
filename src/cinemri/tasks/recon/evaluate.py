"""``cinemri recon eval``: a trained reconstruction model against zero filling and CS-TV.

Scoring (DESIGN.md, fastMRI's convention), written into every result as ``conventions``:
magnitude images; per case, the reference is the coil-combined fully sampled image (noise
included) of every evaluated slice and frame; data range = max |reference| over the whole
case; PSNR and NMSE over every pixel of the case; SSIM = mean of the per-frame 2D SSIMs
(7x7 uniform window, scikit-image defaults) over all evaluated slices and frames; full
image after the config's ``data.crop``. Every method sees the same undersampled k-space:
masks are seeded from (data.seed, case name, slice), as in validation.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from cinemri.data import ReconSample, collate_recon, split_cases
from cinemri.files import check_output_dir, check_output_file, write_json
from cinemri.io import is_case_path
from cinemri.metrics import MetricTable, nmse, psnr, ssim, worst_frame_psnr_batch
from cinemri.recon import CSOptions, cs_tv, zero_filled
from cinemri.recon.inference import inference_precision, load_reconstructor
from cinemri.report.recon_figures import recon_comparison_figure, recon_comparison_gif
from cinemri.tasks.recon.data import SliceSubset, make_dataset

METRICS = ("psnr", "ssim", "nmse", "psnr_worst_frame")


@dataclass(frozen=True)
class EvalOptions:
    """Options of :func:`evaluate`; every default lives here.

    acceleration: None uses the checkpoint's ``data.acceleration``. max_cases /
    max_slices_per_case: first cases of the split, central slices of each case.
    cs_lambda_t / cs_lambda_s / cs_iters: :func:`cinemri.recon.cs_tv` settings (lambdas
    relative to max |zero-filled|; defaults from :class:`cinemri.recon.CSOptions`).
    """

    split: str = "test"
    acceleration: float | None = None
    max_cases: int | None = None
    max_slices_per_case: int | None = None
    cs: bool = True
    cs_lambda_t: float = CSOptions.lambda_t
    cs_lambda_s: float = CSOptions.lambda_s
    cs_iters: int = CSOptions.num_iters
    figures: bool = True

    def __post_init__(self) -> None:
        for name in ("max_cases", "max_slices_per_case"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.cs_iters < 1:
            raise ValueError(f"cs_iters must be >= 1, got {self.cs_iters}")
        CSOptions(self.cs_lambda_t, self.cs_lambda_s, self.cs_iters)  # validates the lambdas too


def resolve_data(data: str | os.PathLike | Sequence[str | os.PathLike], split: str,
                 max_cases: int | None = None) -> list[Path]:
    """Case files: a folder with ``split.json`` gives its ``split``; a folder that is a case
    itself (a DICOM series, an ACDC patient) is that case; another folder gives its ``*.h5``
    files (sorted) or, without any, its entries that are cases (e.g. DICOM series folders);
    files are taken as they are. ValueError if none are found."""
    items = [Path(data)] if isinstance(data, (str, os.PathLike)) else [Path(d) for d in data]
    if len(items) == 1 and items[0].is_dir():
        root = items[0]
        if (root / "split.json").is_file():
            return split_cases(root, split, max_cases=max_cases)
        if is_case_path(root):
            return [root]
        files = sorted(root.glob("*.h5")) or [child for child in sorted(root.iterdir()) if is_case_path(child)]
        if not files:
            raise ValueError(f"data folder {root} holds no split.json and no case files or folders")
        return files[:max_cases]
    missing = [str(p) for p in items if not p.exists()]
    if missing or not items:
        raise ValueError(f"data files do not exist: {', '.join(missing) or '(none given)'}")
    return items[:max_cases]


def _timed(fn, *args) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    with torch.no_grad():
        out = fn(*args)
    return out, time.perf_counter() - start


def _summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    return {"mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
            "n": int(arr.size)}


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike | Sequence[str | os.PathLike],
             out_dir: str | os.PathLike | None = None, json_path: str | os.PathLike | None = None,
             options: EvalOptions = EvalOptions()) -> dict[str, Any]:
    """Score the model of ``checkpoint``, zero filling and CS-TV on the cases of ``data``.

    Writes (when given) ``json_path`` and, in ``out_dir``: ``metrics.json``, ``metrics.csv``
    (one row per case, columns ``<method>_<metric>``), ``comparison.png`` (reference / methods /
    error maps at ED and ES of the first case's middle evaluated slice) and ``comparison.gif``.
    returns the result dict (the JSON): ``methods.<name>.summary.<metric>.{mean, std, n}``,
    ``methods.<name>.seconds_per_slice``, ``cases.<case>.<method>.<metric>``, ``conventions``.

    ``out_dir`` and ``json_path`` are checked before any work (:func:`cinemri.files.check_output_dir`);
    JSON files hold NaN as null (:func:`cinemri.files.write_json`).

    Raises:
        ValueError: a bad checkpoint, missing data, data the model cannot reconstruct, or an
            ``out_dir`` that is a file; OSError: ``out_dir`` or ``json_path`` cannot be written.
    """
    if out_dir is not None:
        check_output_dir(out_dir)
    if json_path is not None:
        check_output_file(json_path, "--json")
    loaded = load_reconstructor(checkpoint)
    model, data_cfg = loaded.model, loaded.config.data
    files = resolve_data(data, options.split, options.max_cases)
    recon_opts = data_cfg.options("fixed", options.acceleration)
    device = next(model.parameters()).device

    def run_model(b: Any) -> torch.Tensor:
        with inference_precision(device, loaded.autocast):  # as every inference path runs it
            return model(b.kspace, b.mask, b.maps)

    methods = {"model": run_model,
               "zero_filled": lambda b: zero_filled(b.kspace, b.mask, b.maps)}
    if options.cs:
        methods["cs_tv"] = lambda b: cs_tv(b.kspace, b.mask, b.maps, lambda_t=options.cs_lambda_t,
                                          lambda_s=options.cs_lambda_s, num_iters=options.cs_iters)
    seconds = {name: 0.0 for name in methods}
    slices_done = 0
    table = MetricTable()
    cases: dict[str, Any] = {}
    figure_data = None
    for path in files:
        dataset = make_dataset([path], recon_opts, options.max_slices_per_case)
        images: dict[str, list[np.ndarray]] = {name: [] for name in ["reference", *methods]}
        for item in range(len(dataset)):
            sample: ReconSample = dataset[item]
            batch = collate_recon([sample])
            images["reference"].append((sample.target / sample.scale).numpy())  # (T, H, W)
            for name, method in methods.items():
                out, took = _timed(method, batch)
                seconds[name] += took
                images[name].append((out[0] / sample.scale).numpy())  # (T, H, W)
            slices_done += 1
        stacked = {k: np.stack(v) for k, v in images.items()}  # each (S, T, H, W)
        ref = torch.from_numpy(stacked["reference"].reshape(-1, *stacked["reference"].shape[2:]))  # (S*T, H, W)
        data_range = float(ref.abs().max())
        row, per_method = {}, {}
        for name in methods:
            pred = torch.from_numpy(stacked[name].reshape(ref.shape))  # (S*T, H, W)
            scores = {"psnr": psnr(pred, ref, data_range), "ssim": ssim(pred, ref, data_range), "nmse": nmse(pred, ref),
                      "psnr_worst_frame": float(worst_frame_psnr_batch(_as_one_cine(stacked[name]),
                                                                       _as_one_cine(stacked["reference"]))[0])}
            per_method[name] = scores
            row.update({f"{name}_{k}": v for k, v in scores.items()})
        name = sample.name
        table.add(name, row)
        cases[name] = {"file": str(path), "slices": len(dataset), "data_range": data_range, **per_method}
        if figure_data is None:
            figure_data = (name, path, dataset, stacked, per_method)
    result: dict[str, Any] = {
        "checkpoint": str(loaded.path), "epoch": loaded.epoch, "split": options.split,
        "files": [str(f) for f in files], "acceleration": recon_opts.acceleration, "pattern": recon_opts.pattern,
        "center_lines": recon_opts.center_lines, "mask_seed": recon_opts.seed, "crop": recon_opts.crop,
        "single_coil": recon_opts.single_coil, "options": asdict(options),
        "conventions": ("magnitude; data range = max |reference| over the case; PSNR/NMSE over all pixels of "
                        "the case; SSIM = mean of per-frame 2D SSIMs (7x7 uniform window, skimage defaults); "
                        "psnr_worst_frame = the lowest PSNR of one cardiac phase (all slices of that frame); "
                        f"frames: all; slices: {'central ' + str(options.max_slices_per_case) if options.max_slices_per_case else 'all'}; "
                        f"crop: {recon_opts.crop or 'none (full image)'}; reference = fully sampled coil-combined image"),
        "methods": {}, "cases": cases,
    }
    for name in methods:
        entry: dict[str, Any] = {"summary": {m: _summary([c[name][m] for c in cases.values()]) for m in METRICS},
                                 "seconds_per_slice": seconds[name] / max(slices_done, 1)}
        if name == "model":
            entry["params"] = parameter_count(model)
        if name == "cs_tv":
            entry.update(lambda_t=options.cs_lambda_t, lambda_s=options.cs_lambda_s, num_iters=options.cs_iters)
        result["methods"][name] = entry
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "metrics.csv")
        if options.figures and figure_data is not None:
            result["figure"], result["gif"] = _figures(figure_data, out, recon_opts.acceleration)
        write_json(result, out / "metrics.json")
    if json_path is not None:
        write_json(result, json_path)
    return result


def _figures(figure_data, out: Path, acceleration: float) -> tuple[str, str]:
    name, path, dataset, stacked, per_method = figure_data
    s = stacked["reference"].shape[0] // 2
    base = dataset.dataset if isinstance(dataset, SliceSubset) else dataset
    item = dataset.items[s] if isinstance(dataset, SliceSubset) else s
    case = base.source.slice(*base.index[item])
    t = stacked["reference"].shape[1]
    ed = case.ed_frame if case.ed_frame is not None else 0
    es = case.es_frame if case.es_frame is not None else t // 2
    frames = {"ED" if case.ed_frame is not None else "t0": ed, "ES" if case.es_frame is not None else "t_mid": es}
    methods = {k: v[s] for k, v in stacked.items() if k != "reference"}
    scores = {k: f"{v['psnr']:.2f} dB / {v['ssim']:.3f}" for k, v in per_method.items()}
    fig = recon_comparison_figure(stacked["reference"][s], methods, frames, out / "comparison.png",
                                  title=f"{name}, slice {base.index[item][1]}, R={acceleration:g} (case PSNR / SSIM)",
                                  scores=scores)
    gif = recon_comparison_gif(stacked["reference"][s], methods, out / "comparison.gif")
    return str(fig), str(gif)


def _as_one_cine(images: np.ndarray) -> torch.Tensor:
    """(S, T, H, W) -> (1, T, S * H, W): a case's slices side by side in each frame, so that a
    per-frame metric of :mod:`cinemri.metrics` scores each cardiac phase over all slices with
    the case's data range."""
    s, t, h, w = images.shape
    return torch.from_numpy(images).permute(1, 0, 2, 3).reshape(1, t, s * h, w)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
