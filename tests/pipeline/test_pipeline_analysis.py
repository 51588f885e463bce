"""`cinemri analyze`: image formation, clinical summary, truth comparison, bundled weights, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from checkpoint_builders import untrained_checkpoint

from cinemri.case import Case
from cinemri.cli import main
from cinemri.clinical import volume_curves_ml
from cinemri.io import read_case
from cinemri.masks import achieved_acceleration
from cinemri.phantom import write_dataset
from cinemri.physics import sense_adjoint
from cinemri.pipeline import (AnalyzeOptions, analyze, clinical_summary, compare_with_truth, ensemble_weights,
                              export_weights, image_source, reconstruct_case, resolve_checkpoint)
from cinemri.pipeline.analysis import FLOAT_KEYS, SCHEMA
from cinemri.recon.config import load_recon_config
from cinemri.recon.inference import load_reconstructor
from cinemri.seg.inference import predict_case
from cinemri.tasks.recon.task import ReconTask
from cinemri.train import fit, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two 48x48 phantom cases (6 frames, 3 slices, 2 coils, heart magnified by a 150 mm FOV), a
    seg U-Net over-fitted on the first one (so it finds the LV) and a 1-step recon cascade."""
    from cinemri.seg.config import load_seg_config
    from cinemri.tasks.seg.task import train

    tmp = tmp_path_factory.mktemp("analysis")
    root = tmp / "phantom"
    paths = write_dataset(root, 2, seed=5, height=48, width=48, frames=6, slices=3, coils=2, supersample=1,
                          fov_mm=(150.0, 150.0))
    names = [p.stem for p in paths]
    (root / "split.json").write_text(json.dumps({"train": names[:1], "val": names[1:], "test": []}))
    seg_cfg = load_seg_config([ROOT / "configs/seg/tiny.yaml"], [
        f"data.train=[{root}]", f"train.out_dir={tmp / 'seg'}", "train.epochs=4", "train.max_steps_per_epoch=10",
        "data.preprocess.size=[48, 48]", "data.preprocess.spacing_mm=3.2", "augment.enabled=false",
        "train.lr=1e-2", "data.exclude_train=[]"])
    train(seg_cfg)
    recon_cfg = load_recon_config(ROOT / "configs/recon/tiny.yaml", [
        f"data.root={root}", f"train.out_dir={tmp / 'recon'}", "train.epochs=1", "train.max_steps_per_epoch=1"])
    fit(ReconTask(recon_cfg), recon_cfg)
    return {"case": paths[0], "seg": tmp / "seg" / "last.pt", "recon": tmp / "recon" / "last.pt", "tmp": tmp}


# ---------------------------------------------------------------------------- reconstruct_case


def test_reconstruct_case_undersamples_and_keeps_the_measurement(setup):
    case = replace(read_case(setup["case"]), noise_std=0.0)  # noise-free: S S^H is exact on the data
    rec = reconstruct_case(case, "zero_filled", acceleration=4.0, seed=1)
    s, t, h, w = case.image.shape
    assert rec.image.shape == rec.reference.shape == (s, t, h, w) and rec.image.dtype == np.complex64
    assert rec.masks.shape == (s, t, w)
    assert rec.acceleration == pytest.approx(float(np.mean([achieved_acceleration(torch.from_numpy(m))
                                                            for m in rec.masks])))
    assert 3.0 < rec.acceleration < 5.0
    # zero filling = S^H F^H (M F S x_ref): project the reference onto the sampled lines
    maps = torch.from_numpy(case.coil_maps)  # (S, C, H, W)
    ref = torch.from_numpy(rec.reference)
    mask = torch.from_numpy(rec.masks)[:, None, :, None, :]  # (S, 1, T, 1, W)
    from cinemri.physics import sense_forward
    expected = sense_adjoint(sense_forward(ref, maps) * mask, maps)
    inside = torch.from_numpy((np.abs(case.coil_maps) ** 2).sum(1) > 0.5)[:, None]  # (S, 1, H, W)
    err = (torch.from_numpy(rec.image) - expected).abs()[inside.expand_as(expected)]
    assert float(err.max()) < 1e-4 * float(ref.abs().max())
    # seeded: same seed, same masks; another seed, other masks
    assert np.array_equal(reconstruct_case(case, "zero_filled", acceleration=4.0, seed=1).masks, rec.masks)
    assert not np.array_equal(reconstruct_case(case, "zero_filled", acceleration=4.0, seed=2).masks, rec.masks)


def test_reconstruct_case_other_inputs(setup):
    case = read_case(setup["case"])
    full = reconstruct_case(case, "zero_filled", undersample=False)
    assert full.method == "fully_sampled" and np.array_equal(full.image, full.reference)
    images_only = replace(case, coil_maps=None)
    out = reconstruct_case(images_only, "cs")
    assert out.method == "images" and out.image is images_only.image and out.reference is None
    with pytest.raises(ValueError, match="needs a reconstruction checkpoint"):
        reconstruct_case(case, "model")
    # image_source says beforehand what reconstruct_case makes the image from (analyze picks the
    # segmenter by it): for each input kind and method, the method of the result
    for given, undersample in ((case, True), (case, False), (images_only, True), (images_only, False)):
        for method in ("cs", "zero_filled"):
            made = reconstruct_case(given, method, undersample=undersample, cs_iters=1).method
            assert image_source(given, method, undersample) == made
    assert image_source(case, "model") == "model" and image_source(images_only, "model") == "images"
    with pytest.raises(ValueError, match="method must be one of"):
        reconstruct_case(case, "magic")


# ---------------------------------------------------------------------- clinical summary / truth


def _disc_labels(t_count: int = 4, radius=(6, 4, 5, 6)) -> np.ndarray:
    """(2, T, 24, 24): LV discs of radius r_t with a 2-pixel myocardium ring and an RV blob."""
    y, x = np.mgrid[:24, :24]
    d = np.hypot(y - 12, x - 12)
    out = np.zeros((2, t_count, 24, 24), np.uint8)
    for t in range(t_count):
        r = radius[t]
        out[:, t][:, (d >= r) & (d < r + 2)] = 2
        out[:, t][:, d < r] = 3
        out[:, t][:, (np.abs(y - 12) < 3) & (x < 3)] = 1
    return out


def test_clinical_summary_matches_hand_computed_volumes():
    labels = _disc_labels()
    case = Case(name="discs", spacing=(8.0, 1.5, 1.5))
    summary, warnings = clinical_summary(labels, case)
    curves = volume_curves_ml(labels, case.spacing)
    lv_counts = (labels == 3).sum(axis=(0, 2, 3))
    assert summary["volumes_ml"]["lv"] == pytest.approx(list(lv_counts * 8 * 1.5 * 1.5 / 1000))
    ed, es = int(np.argmax(curves[3])), int(np.argmin(curves[3]))
    assert (summary["ed_es"]["ed_frame"], summary["ed_es"]["es_frame"], summary["ed_es"]["source"]) == (ed, es, "detected")
    idx = summary["indices"]
    assert idx["lv_ef_pct"] == pytest.approx(100 * (curves[3][ed] - curves[3][es]) / curves[3][ed])
    assert idx["lv_sv_ml"] == pytest.approx(idx["lv_edv_ml"] - idx["lv_esv_ml"])
    assert idx["lv_mass_g"] == pytest.approx(1.05 * curves[2][ed])
    # toy discs: millilitre volumes and a 2-pixel ring whose volume follows the cavity (20 % swing)
    assert sum("physiological range" in w for w in warnings) == 3
    assert any("myocardial volume varies by 20%" in w for w in warnings)
    assert len(warnings) == 4
    # the file's ED/ES win and a disagreement is reported
    summary, warnings = clinical_summary(labels, replace(case, ed_frame=3, es_frame=1))
    assert summary["ed_es"]["source"] == "file" and summary["ed_es"]["ed_frame"] == 3
    assert any("differ" in w for w in warnings)


def test_clinical_summary_flags_and_rejects_nonsense():
    case = Case(name="discs", spacing=(8.0, 1.5, 1.5), source="x/discs.h5")
    with pytest.raises(ValueError, match="x/discs.h5.*1 frame"):
        clinical_summary(_disc_labels()[:, :1], case)
    empty = _disc_labels()
    empty[empty == 3] = 0
    with pytest.raises(ValueError, match="no LV in any frame"):
        clinical_summary(empty, case)
    no_rv = _disc_labels()
    no_rv[no_rv == 1] = 0
    _, warnings = clinical_summary(no_rv, replace(case, spacing_assumed=True))
    assert any("RV is empty at ED" in w for w in warnings)
    assert any("spacing" in w for w in warnings)
    grows = _disc_labels(radius=(4, 6, 5, 4))  # file says ED=0 but the LV is larger at "ES"
    _, warnings = clinical_summary(grows, replace(case, ed_frame=0, es_frame=1))
    assert any("LV end-systolic volume" in w and "exceeds" in w for w in warnings)
    assert any("outside 0-100" in w for w in warnings)


def test_compare_with_truth_perfect_and_shifted():
    labels = _disc_labels()
    case = Case(name="discs", spacing=(8.0, 1.5, 1.5), labels=labels, ed_frame=0, es_frame=1,
                labelled_frames=(0, 1))
    perfect = compare_with_truth(labels, case, 0, 1)
    assert all(v == 1.0 for phase in perfect["dice"].values() for v in phase.values())
    assert all(v == 0.0 for phase in perfect["hd95_mm"].values() for v in phase.values())
    assert all(perfect["errors"][k] == 0.0 for k in FLOAT_KEYS)
    shifted = np.roll(labels, 1, axis=-1)
    result = compare_with_truth(shifted, case, 0, 1)
    assert result["dice"]["ed"]["lv"] < 1.0 and result["hd95_mm"]["ed"]["lv"] == pytest.approx(1.5)
    assert compare_with_truth(labels, replace(case, labels=None), 0, 1) is None
    assert compare_with_truth(labels, replace(case, labelled_frames=(0,)), 0, 1) is None


# --------------------------------------------------------------------------- end to end


def test_analyze_end_to_end_on_a_tiny_phantom_case(setup, tmp_path):
    out = tmp_path / "out"
    results = analyze(setup["case"], out, recon_checkpoint=setup["recon"], seg_checkpoint=setup["seg"],
                      options=AnalyzeOptions(acceleration=4.0))
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == results and on_disk["schema"] == SCHEMA
    case = read_case(setup["case"])
    assert on_disk["case"]["input"] == "kspace_fully_sampled" and on_disk["case"]["shape"] == list(case.image.shape)
    assert on_disk["reconstruction"]["method"] == "model" and 3.0 < on_disk["reconstruction"]["acceleration"] < 5.0
    assert set(on_disk["image_quality"]) == {"model", "zero_filled"}
    assert on_disk["ground_truth"]["indices"]["lv_ef_pct"] == pytest.approx(case.indices["lv_ef_pct"])
    idx = on_disk["indices"]
    lv = on_disk["volumes_ml"]["lv"]
    assert idx["lv_edv_ml"] == pytest.approx(lv[idx["ed_frame"]]) and idx["lv_esv_ml"] == pytest.approx(lv[idx["es_frame"]])
    for key in FLOAT_KEYS:
        truth = on_disk["ground_truth"]["indices"][key]
        if idx[key] is not None and truth is not None:
            assert on_disk["ground_truth"]["errors"][key] == pytest.approx(idx[key] - truth)
    labels_img = nib.load(out / on_disk["files"]["labels_nifti"])
    s, t, h, w = case.image.shape
    assert labels_img.shape == (h, w, s, t)
    np.testing.assert_allclose(labels_img.affine, case.affine if case.affine is not None else labels_img.affine)
    for key in ("montage", "cine_gif", "volume_curves", "report", "recon_panel"):
        assert (out / on_disk["files"][key]).stat().st_size > 1000
    page = (out / "report.html").read_text()
    assert "<html" in page.lower() and "<h2>Reconstruction</h2>" in page  # reference, zero-filled, model, errors
    ed_es = on_disk["ed_es"]
    assert ed_es["frame_numbering"] == "0-based" and ed_es["es_frame_number"] == ed_es["es_frame"]


def test_cli_analyze_prints_indices_and_rejects_bad_input(setup, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["analyze", str(setup["case"]), "--out", str(out), "--recon", "zero_filled",
                 "--seg-checkpoint", str(setup["seg"]), "--no-figures"])
    printed = capsys.readouterr().out
    assert code == 0 and "LV EF" in printed and "truth" in printed and str(out / "results.json") in printed
    assert json.loads((out / "results.json").read_text())["reconstruction"]["method"] == "zero_filled"
    bad = tmp_path / "notes.txt"
    bad.write_text("not a cine")
    assert main(["analyze", str(bad), "--out", str(tmp_path / "x"), "--seg-checkpoint", str(setup["seg"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cinemri: error:") and "notes.txt" in err and err.count("\n") == 1
    assert main(["analyze", str(setup["case"]), "--out", str(tmp_path / "y"),
                 "--seg-checkpoint", str(setup["recon"])]) == 2
    assert "cinemri: error:" in capsys.readouterr().err


# ------------------------------------------------------------------------------- weights


def test_export_weights_is_smaller_and_predicts_the_same(setup, tmp_path):
    slim = export_weights(setup["recon"], tmp_path / "slim.pt")
    assert slim.stat().st_size < setup["recon"].stat().st_size
    state = load_checkpoint(slim)  # weights_only=True inside
    assert state["optimizer"] == {} and state["rng"] == []
    a, b = load_reconstructor(setup["recon"]).model, load_reconstructor(slim).model
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name
    # it starts a fine-tuning run (train.init_from) but cannot be resumed
    cfg = load_recon_config(ROOT / "configs/recon/tiny.yaml", [
        f"data.root={setup['case'].parent}", f"train.out_dir={tmp_path / 'ft'}", f"train.init_from={slim}"])
    result = fit(ReconTask(cfg), cfg, stop_after_epoch=0)
    for (name, p), (_, q) in zip(result.model.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name
    with pytest.raises(ValueError, match="optimizer/scheduler state does not fit"):
        fit(ReconTask(cfg), cfg, resume=slim)
    # fp16 export: half the bytes of the weights, loads into the fp32 model with the same outputs
    half = export_weights(setup["recon"], tmp_path / "half.pt", half=True)
    assert all(v.dtype == torch.float16 for v in load_checkpoint(half)["model"].values() if v.is_floating_point())
    c = load_reconstructor(half).model
    for (name, p), (_, q) in zip(a.state_dict().items(), c.state_dict().items()):
        assert q.dtype == p.dtype and torch.allclose(p, q, rtol=1e-3, atol=1e-4), name


def test_export_sets_a_cascades_starting_image_but_no_weight_bearing_argument(setup, tmp_path):
    original = load_reconstructor(setup["recon"]).model
    out = export_weights(setup["recon"], tmp_path / "start.pt", overrides=["model.init_iters=7"])
    loaded = load_reconstructor(out)
    assert loaded.model.init_iters == 7 and loaded.config.model.init_iters == 7
    for (name, p), (_, q) in zip(original.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(p, q), name  # the same weights
    for bad in ("model.num_stages=2", "model.denoiser=crnn", "train.lr=1"):
        with pytest.raises(ValueError, match="only"):
            export_weights(setup["recon"], tmp_path / "bad.pt", overrides=[bad])


def test_export_sets_test_time_defaults_of_a_segmenter(setup, tmp_path):
    from cinemri.seg.inference import load_segmenter

    out = export_weights(setup["seg"], tmp_path / "seg.pt", half=True,
                         overrides=["eval.flip_tta=true", "eval.postprocess=true"])
    _, cfg = load_segmenter(out)
    assert cfg.eval.flip_tta and cfg.eval.postprocess
    _, original = load_segmenter(setup["seg"])
    assert not original.eval.postprocess  # the training checkpoint is untouched
    with pytest.raises(ValueError, match="only eval keys"):
        export_weights(setup["seg"], tmp_path / "bad.pt", overrides=["train.lr=1"])
    with pytest.raises(ValueError, match="flip_tta"):
        export_weights(setup["seg"], tmp_path / "bad.pt", overrides=["eval.flip_tta=[1, 2]"])


def test_ensemble_weights_average_the_members_and_load_as_one_segmenter(setup, tmp_path):
    from cinemri.seg.inference import load_segmenter
    from cinemri.train import save_checkpoint

    state = load_checkpoint(setup["seg"])
    torch.manual_seed(3)
    other = dict(state, model={k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                               for k, v in state["model"].items()})
    save_checkpoint(tmp_path / "other.pt", other)
    out = ensemble_weights([setup["seg"], tmp_path / "other.pt"], tmp_path / "ens.pt",
                           eval_overrides=["eval.postprocess=true"])
    ensemble, cfg = load_segmenter(out)
    assert cfg.model.name == "ensemble" and len(cfg.model.args["members"]) == 2 and cfg.eval.postprocess
    first, _ = load_segmenter(setup["seg"])
    second, _ = load_segmenter(tmp_path / "other.pt")
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        expected = (torch.softmax(first(x), 1) + torch.softmax(second(x), 1)) / 2
        torch.testing.assert_close(torch.softmax(ensemble(x), 1), expected, rtol=1e-5, atol=1e-6)
    # the ensemble segments a case through the same path as one network
    labels = predict_case(ensemble, read_case(setup["case"]), cfg, [0])
    assert labels.shape[1] == 6 and labels.dtype == np.uint8 and labels[:, 0].any()
    # members must share their preprocessing; recon checkpoints and ensembles are refused
    changed = json.loads(json.dumps(state["config"]))
    changed["data"]["preprocess"]["spacing_mm"] = 1.0
    save_checkpoint(tmp_path / "finer.pt", dict(state, config=changed))
    with pytest.raises(ValueError, match="finer.pt: data.preprocess"):
        ensemble_weights([setup["seg"], tmp_path / "finer.pt"], tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a segmentation checkpoint"):
        ensemble_weights([setup["seg"], setup["recon"]], tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="already an ensemble"):
        ensemble_weights([setup["seg"], out], tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="at least two"):
        ensemble_weights([setup["seg"]], tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
    # the CLI writes an ensemble when given several checkpoints
    assert main(["export-weights", str(setup["seg"]), str(tmp_path / "other.pt"), str(tmp_path / "cli.pt"),
                 "--fp16"]) == 0
    assert load_checkpoint(tmp_path / "cli.pt")["model_name"] == "ensemble"


@pytest.mark.parametrize("key, value, channels", [("context_slices", 1, 3), ("reference_frame", True, 2)])
def test_ensemble_of_a_2d_and_a_context_member_gives_each_its_channels(setup, tmp_path, key, value, channels):
    """A 2D member and a 2.5D member (the plane and its neighbouring slices, or the plane and the
    same slice at end diastole): the ensemble's input has the 2.5D member's channels; the 2D member
    takes the first (the plane itself)."""
    from cinemri.seg.config import experiment_from_dict
    from cinemri.seg.inference import load_segmenter
    from cinemri.seg.models import build_segmenter

    raw = json.loads(json.dumps(load_checkpoint(setup["seg"])["config"]))
    raw["data"]["preprocess"][key] = value
    raw["model"]["args"]["in_channels"] = channels
    cfg = experiment_from_dict(raw)
    torch.manual_seed(1)
    net = build_segmenter(cfg.model.name, cfg.model.args)
    untrained_checkpoint(tmp_path / "context.pt", net, cfg.model.name, cfg.model.args, cfg)
    out = ensemble_weights([setup["seg"], tmp_path / "context.pt"], tmp_path / "ens.pt")
    ensemble, ens_cfg = load_segmenter(out)
    members = ens_cfg.model.args["members"]
    assert ens_cfg.data.preprocess.channels == channels and getattr(ens_cfg.data.preprocess, key) == value
    assert members[0]["channels"] == [0] and "channels" not in members[1]
    first, _ = load_segmenter(setup["seg"])
    second, _ = load_segmenter(tmp_path / "context.pt")
    x = torch.randn(2, channels, 48, 48)
    with torch.no_grad():
        expected = (torch.softmax(first(x[:, :1]), 1) + torch.softmax(second(x), 1)) / 2
        torch.testing.assert_close(torch.softmax(ensemble(x), 1), expected, rtol=1e-5, atol=1e-6)
    labels = predict_case(ensemble, read_case(setup["case"]), ens_cfg, [0])
    assert labels.shape[1] == 6 and labels.dtype == np.uint8


def test_resolve_checkpoint(monkeypatch, tmp_path):
    import cinemri.pipeline.weights as weights

    assert resolve_checkpoint(tmp_path / "given.pt", "seg") == tmp_path / "given.pt"
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="no bundled recon weights.*make weights"):
        resolve_checkpoint(None, "recon")
    (tmp_path / "seg_default.pt").write_bytes(b"x")
    assert resolve_checkpoint(None, "seg") == tmp_path / "seg_default.pt"
    with pytest.raises(ValueError, match="kind must be one of"):
        weights.bundled_path("other")


def test_reconstructions_get_the_segmenter_fine_tuned_on_reconstructions(setup, monkeypatch, tmp_path):
    """Without --seg-checkpoint, images analyze reconstructs from (retrospectively) undersampled
    k-space go to seg_recon.pt when it is installed; fully sampled images, zero filling and a
    missing seg_recon.pt go to seg_default.pt; a given checkpoint always wins."""
    import cinemri.pipeline.weights as weights
    from cinemri.pipeline import analysis as pipeline

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    (tmp_path / "seg_default.pt").write_bytes(b"x")
    seen = []

    def record_then_stop(path, *args, **kwargs):
        seen.append(Path(path).name)
        raise ValueError("stop once the segmenter is chosen")

    monkeypatch.setattr(pipeline, "load_segmenter", record_then_stop)

    def chosen(options, seg_checkpoint=None):
        with pytest.raises(ValueError, match="stop once"):
            analyze(setup["case"], tmp_path / "out", seg_checkpoint=seg_checkpoint, options=options)
        return seen[-1]

    cs = AnalyzeOptions(recon_method="cs", cs_iters=1)
    assert chosen(cs) == "seg_default.pt"  # not installed: the default
    (tmp_path / "seg_recon.pt").write_bytes(b"x")
    assert chosen(cs) == "seg_recon.pt"
    assert chosen(replace(cs, undersample=False)) == "seg_default.pt"  # fully sampled k-space
    assert chosen(replace(cs, recon_method="zero_filled")) == "seg_default.pt"
    assert chosen(cs, seg_checkpoint=tmp_path / "mine.pt") == "mine.pt"
    assert weights.resolve_segmenter(None, reconstructed=False) == tmp_path / "seg_default.pt"


def test_bundled_weights_ship_small_and_load_offline():
    from cinemri.pipeline import bundled_path
    from cinemri.seg.inference import load_segmenter

    recon_path, seg_path = bundled_path("recon"), bundled_path("seg")
    assert recon_path.stat().st_size < 8e6 and seg_path.stat().st_size < 10e6  # "a few MB" (seg: fp16)
    loaded = load_reconstructor(recon_path)
    assert loaded.config.model.num_stages == 3 and loaded.config.model.denoiser == "unet3d"
    assert loaded.config.model.denoiser_options["cbam"] is True
    assert loaded.config.model.init == "cs_tv" and loaded.config.model.residual_gates  # configs/recon/cascade_cs_spatial.yaml
    assert loaded.config.model.init_lambda_s > 0 and loaded.config.model.init_iters == 50  # spatial TV, 50 iterations
    assert loaded.model.init_iters == 50  # the model runs the start its config names (Makefile: --set model.init_iters=50)
    assert any("sunnybrook" in str(source).lower() for source in loaded.config.data.train)
    model, cfg = load_segmenter(seg_path)
    assert cfg.model.name == "unet" and cfg.eval.postprocess  # the default segmenter: real ACDC + phantom
    assert any("acdc" in str(source).lower() for source in cfg.data.train)
    recon_seg_path = bundled_path("seg_recon")  # the default fine-tuned on 5x reconstructions too
    assert recon_seg_path.stat().st_size < 10e6
    _, recon_seg_cfg = load_segmenter(recon_seg_path)
    assert recon_seg_cfg.train.init_from.endswith("seg_default.pt") and recon_seg_cfg.eval.crop_to_heart
    assert any("acdc_r5" in str(source) for source in recon_seg_cfg.data.train)
    x = torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        out = model(x)
    assert (out[0] if isinstance(out, (list, tuple)) else out).shape == (1, 4, 64, 64)


def test_analyze_rejects_a_single_frame_before_any_work(tmp_path):
    from cinemri.io import write_case

    image = np.random.default_rng(0).random((2, 1, 24, 24)).astype(np.complex64)  # a picture, one frame
    one = Case(name="still", spacing=(8.0, 1.5, 1.5), image=image)
    path = write_case(one, tmp_path / "still.h5")
    with pytest.raises(ValueError, match="still.h5: 1 frame"):
        analyze(path, tmp_path / "out", seg_checkpoint=tmp_path / "never_read.pt")


# ------------------------------------------------------------------- output folder, failures, progress


def _still_images_case(tmp_path: Path) -> Path:
    from cinemri.io import write_case

    image = np.random.default_rng(0).random((2, 4, 24, 24)).astype(np.complex64)  # images only, 4 frames
    return write_case(Case(name="imgs", spacing=(8.0, 1.5, 1.5), image=image), tmp_path / "imgs.h5")


def test_out_is_checked_before_the_input_is_read(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="--out .*afile: is a file, not a folder"):
        analyze(tmp_path / "absent_input.h5", afile, seg_checkpoint=tmp_path / "never_read.pt")
    with pytest.raises(ValueError, match="afile is a file, not a folder"):
        analyze(tmp_path / "absent_input.h5", afile / "sub", seg_checkpoint=tmp_path / "never_read.pt")


def test_a_read_only_out_is_found_before_any_work(tmp_path, monkeypatch):
    import errno

    import cinemri.files

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cinemri.files.tempfile, "mkstemp", read_only)
    with pytest.raises(OSError, match="--out .*out: cannot write in .*Read-only"):
        analyze(tmp_path / "absent_input.h5", tmp_path / "out", seg_checkpoint=tmp_path / "never_read.pt")


def test_early_errors_leave_no_folder_behind(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    for bad_input in (tmp_path / "absent.h5", _still_images_case(tmp_path)):
        with pytest.raises(ValueError):
            analyze(bad_input, out, seg_checkpoint=tmp_path / "absent.pt")  # bad input, then bad checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs.h5"]  # no out, no parents, no staging folder


def _fake_segmenter(monkeypatch, labels_of):
    import cinemri.pipeline.analysis as pipeline
    from cinemri.seg.inference import Segmentation

    monkeypatch.setattr(pipeline, "load_segmenter", lambda path, device: (None, None))
    monkeypatch.setattr(pipeline, "segment", lambda case, model, cfg, options: (
        Segmentation(labels_of(case.image.shape), 0.9), 0.0))


def _disc_segmentation(shape) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[:shape[2], :shape[3]]
    for t in range(shape[1]):
        r = 7 - t % 3
        labels[:, t][:, (yy - 12) ** 2 + (xx - 12) ** 2 < (r + 2) ** 2] = 2
        labels[:, t][:, (yy - 12) ** 2 + (xx - 12) ** 2 < r ** 2] = 3
        labels[:, t, 2:6, 2:8] = 1
    return labels


def test_no_heart_found_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from cinemri.pipeline.analysis import NoHeartFoundError

    case = _still_images_case(tmp_path)
    _fake_segmenter(monkeypatch, lambda shape: np.zeros(shape, np.uint8))
    with pytest.raises(NoHeartFoundError, match="imgs.h5: no heart found"):
        analyze(case, tmp_path / "out", seg_checkpoint=case)

    def one_lv_voxel(shape):
        labels = np.zeros(shape, np.uint8)
        labels[:, :, 0, 0] = 3
        return labels

    _fake_segmenter(monkeypatch, one_lv_voxel)
    assert main(["analyze", str(case), "--out", str(tmp_path / "out"), "--seg-checkpoint", str(case)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("cinemri: error: ") and "no heart found" in lines[-1]  # not volumes of 0.04 ml
    assert all(line.startswith("cinemri: ") for line in lines)  # progress lines, then one error line
    assert not (tmp_path / "out").exists()


def test_a_failed_rerun_leaves_the_previous_run_as_it_was(tmp_path, monkeypatch):
    import cinemri.io

    case = _still_images_case(tmp_path)
    out = tmp_path / "out"
    _fake_segmenter(monkeypatch, _disc_segmentation)
    first = analyze(case, out, seg_checkpoint=case)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"results.json", "report.html", "imgs_seg.nii.gz", "imgs_montage.png"} <= set(before)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cinemri.io, "write_labels_nifti", full_disk)
    with pytest.raises(OSError, match="No space left"):
        analyze(case, out, seg_checkpoint=case, options=AnalyzeOptions(seed=3))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # not a mix of two runs
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # staging folder removed
    monkeypatch.undo()
    _fake_segmenter(monkeypatch, _disc_segmentation)
    second = analyze(case, out, seg_checkpoint=case, options=AnalyzeOptions(figures=False))
    assert sorted(p.name for p in out.iterdir()) == ["imgs_seg.nii.gz", "results.json"]  # old figures removed
    assert second["indices"] == first["indices"]


def test_cli_analyze_reports_progress_per_slice_on_stderr(setup, tmp_path, capsys):
    code = main(["analyze", str(setup["case"]), "--out", str(tmp_path / "cs"), "--recon", "cs",
                 "--seg-checkpoint", str(setup["seg"]), "--no-figures"])
    err = capsys.readouterr().err
    assert code == 0
    assert "cinemri: reconstructing slice 1/3 (cs)" in err and "cinemri: reconstructing slice 3/3 (cs)" in err
    assert "cinemri: segmenting 3 slices x 6 frames" in err


def test_analyze_says_frames_in_the_inputs_own_numbering():
    from cinemri.cli.analyze_command import _frames

    acdc = {"ed_frame": 0, "es_frame": 1, "source": "file", "frame_numbering": "Info.cfg numbering, 1-based",
            "ed_frame_number": 1, "es_frame_number": 12}  # patient001 without its 4D file: indices 0, 1
    assert _frames(acdc) == "ED frame 1, ES frame 12 (Info.cfg numbering, 1-based; file)"  # was "ES frame 1"


# ------------------------------------------- analyze undersamples as the checkpoint was trained


def _recon_checkpoint(path: Path, data_overrides: list[str]) -> Path:
    """An untrained tiny cascade whose checkpoint records ``data_overrides`` as its training masks."""
    from cinemri.recon.config import MODEL_NAME
    from cinemri.recon import build_reconstructor

    cfg = load_recon_config(ROOT / "configs/recon/tiny.yaml", data_overrides)
    args = cfg.model.model_args()
    torch.manual_seed(0)
    return untrained_checkpoint(path, build_reconstructor(**args), MODEL_NAME, args, cfg)


@pytest.fixture(scope="module")
def equispaced_r8(tmp_path_factory):
    """(a 32 x 64 phantom case file, a checkpoint trained on equispaced R = 8 masks with 4 centre
    lines, an untrained tiny segmenter)."""
    from cinemri.seg.config import load_seg_config
    from cinemri.io import write_case
    from cinemri.phantom import generate_case
    from cinemri.seg.models import build_segmenter

    tmp = tmp_path_factory.mktemp("masks")
    case = write_case(generate_case(3, height=32, width=64, frames=4, slices=3, coils=2, supersample=1),
                      tmp / "case.h5")
    ckpt = _recon_checkpoint(tmp / "r8.pt", ["data.acceleration=8", "data.pattern=equispaced",
                                             "data.center_lines=4"])
    seg_cfg = load_seg_config([ROOT / "configs/seg/tiny.yaml"])
    seg_model = build_segmenter(seg_cfg.model.name, seg_cfg.model.args)
    seg = untrained_checkpoint(tmp / "seg.pt", seg_model, seg_cfg.model.name, dict(seg_cfg.model.args), seg_cfg)
    return case, ckpt, seg


def test_reconstruct_case_takes_the_mask_settings_of_the_checkpoint(equispaced_r8):
    path, ckpt, _ = equispaced_r8
    case, loaded = read_case(path), load_reconstructor(ckpt)
    rec = reconstruct_case(case, "zero_filled", recon=loaded, seed=1)
    assert rec.mask == {"acceleration": 8.0, "pattern": "equispaced", "center_lines": 4, "seed": 1,
                        "from": "checkpoint", "given": {}}
    assert rec.acceleration == pytest.approx(8.0, rel=0.15)
    by_hand = reconstruct_case(case, "zero_filled", acceleration=8.0, pattern="equispaced", center_lines=4, seed=1)
    assert np.array_equal(rec.masks, by_hand.masks)  # exactly the masks the model was trained on
    default = reconstruct_case(case, "zero_filled", seed=1)  # no checkpoint: the data section's defaults
    assert default.mask["from"] == "defaults" and default.acceleration == pytest.approx(5.0, rel=0.15)
    given = reconstruct_case(case, "zero_filled", recon=loaded, acceleration=3.0, seed=1)
    assert given.mask["given"] == {"acceleration": 3.0} and given.mask["pattern"] == "equispaced"
    assert given.acceleration == pytest.approx(3.0, rel=0.15)


def test_analyze_and_recon_predict_undersample_with_the_checkpoints_masks(equispaced_r8, tmp_path, monkeypatch):
    """analyze without --acceleration reconstructs at the checkpoint's R = 8 (it used 5 whatever the model)."""
    from cinemri.pipeline import analysis as pipeline
    from cinemri.recon import inference

    path, ckpt, seg = equispaced_r8
    assert AnalyzeOptions().acceleration is None and AnalyzeOptions().pattern is None
    seen = []

    def reconstruct_then_stop(*args, **kwargs):
        seen.append(reconstruct_case(*args, **kwargs))
        raise ValueError("stop after the reconstruction")

    monkeypatch.setattr(pipeline, "reconstruct_case", reconstruct_then_stop)
    for argv, expected in (([], 8.0), (["--acceleration", "3"], 3.0)):
        assert main(["analyze", str(path), "--recon-checkpoint", str(ckpt), "--seg-checkpoint", str(seg),
                     "--out", str(tmp_path / "a"), *argv]) == 2
        assert seen[-1].mask["acceleration"] == expected and seen[-1].mask["pattern"] == "equispaced"
    # recon predict: the same rule, from the same function
    options = inference.acquisition_options(load_reconstructor(ckpt).config.data, 8.0)
    assert (options.pattern, options.center_lines, options.crop) == ("equispaced", 4, None)
    predicted = inference.inference_samples(read_case(path), options)
    assert np.array_equal(np.stack([s.mask[0, :, 0, :].numpy() for s in predicted]),
                          reconstruct_case(read_case(path), "zero_filled", recon=load_reconstructor(ckpt)).masks)
