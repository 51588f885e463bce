"""Segmentation experiments: config, split, training, eval, predict, ablation, gradient analysis, CLI
(tiny ACDC-like data)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cinemri.seg.config import load_seg_config
from cinemri.tasks.seg.data import discover_cases, split_cases

REAL_ACDC = Path("/work/shared/data/acdc/training")
TINY = Path(__file__).resolve().parents[3] / "configs" / "seg" / "tiny.yaml"
GROUPS = ("NOR", "DCM", "HCM", "MINF", "RV")


def heart_labels(shape_xy: tuple[int, int], slices: int, radius: float, centre: tuple[float, float]) -> np.ndarray:
    """(X, Y, Z) uint8: LV disc (3), myocardial ring (2), RV crescent (1); smaller towards the apex."""
    x, y = np.meshgrid(np.arange(shape_xy[0]), np.arange(shape_xy[1]), indexing="ij")
    out = np.zeros((*shape_xy, slices), np.uint8)
    for z in range(slices):
        r = radius * (1.0 - 0.25 * z / max(slices - 1, 1))
        d = np.hypot(x - centre[0], y - centre[1])
        rv = np.hypot(x - centre[0], y - (centre[1] - 1.6 * r))
        out[..., z][(rv < 1.3 * r) & (d >= 1.5 * r)] = 1
        out[..., z][(d >= r) & (d < 1.5 * r)] = 2
        out[..., z][d < r] = 3
    return out


def write_patient(root: Path, index: int, shape_xy=(40, 36), slices=3, spacing=(2.0, 2.2, 8.0)) -> Path:
    """patientNNN folder: Info.cfg (ED 1, ES 2, Group), frame01/02 images and _gt files."""
    rng = np.random.default_rng(index)
    pid = f"patient{index:03d}"
    folder = root / pid
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = (-10.0, 5.0, 2.0 + index)
    centre = (shape_xy[0] / 2 + rng.uniform(-2, 2), shape_xy[1] / 2 + rng.uniform(-2, 2))
    radius = rng.uniform(4.5, 6.0)
    table = np.array([60.0, 200.0, 40.0, 220.0], np.float32)  # bg, RV blood, MYO, LV blood
    for frame, scale in ((1, 1.0), (2, 0.75)):
        labels = heart_labels(shape_xy, slices, radius * scale, centre)
        image = (table[labels] + rng.normal(0, 8, labels.shape)).astype(np.float32)
        for data, suffix in ((image, ""), (labels, "_gt")):
            img = nib.Nifti1Image(data, affine)
            img.header.set_zooms(spacing)
            nib.save(img, str(folder / f"{pid}_frame{frame:02d}{suffix}.nii.gz"))
    (folder / "Info.cfg").write_text(f"ED: 1\nES: 2\nGroup: {GROUPS[index % len(GROUPS)]}\nHeight: 170\n")
    return folder


def write_acdc_root(root: Path, count: int = 6) -> Path:
    """An ACDC-like training root with patients 001..count."""
    for i in range(1, count + 1):
        write_patient(root, i)
    return root


pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py


@pytest.fixture(scope="module")
def acdc(tmp_path_factory) -> Path:
    return write_acdc_root(tmp_path_factory.mktemp("acdc") / "training", 10)


@pytest.fixture(scope="module")
def trained(acdc, tmp_path_factory):
    """A tiny U-Net trained for 3 short epochs; (FitResult, config)."""
    from cinemri.tasks.seg.task import train

    out = tmp_path_factory.mktemp("run")
    cfg = load_seg_config([TINY], [f"data.train=[{acdc}]", f"train.out_dir={out}", "train.epochs=3",
                                   "train.max_steps_per_epoch=5", "data.preprocess.size=[24, 24]"])
    return train(cfg), cfg


def test_bad_config_key_and_values_give_clear_errors(acdc):
    with pytest.raises(ValueError, match=r"unknown key 'loss\.kindd'"):
        load_seg_config([TINY], ["loss.kindd=ce"])
    with pytest.raises(ValueError, match="loss.schedule must be one of"):
        load_seg_config([TINY], ["loss.schedule=exponential"])
    from cinemri.tasks.seg.task import SegTask

    cfg = load_seg_config([TINY], [f"data.train=[{acdc}]", "model.args={widht: 8}"])
    with pytest.raises(ValueError, match=r"model.args: segmenter 'unet' takes no argument\(s\) \['widht'\]"):
        SegTask(cfg)
    cfg = load_seg_config([TINY], [f"data.train=[{acdc}]", "model.name=ensemble", "model.args={members: []}"])
    with pytest.raises(ValueError, match="'ensemble' is not trained"):
        SegTask(cfg)
    cfg = load_seg_config([TINY], [f"data.train=[{acdc}]", "loss.schedule=linear", "loss.schedule_args={w2: 1}"])
    with pytest.raises(ValueError, match="schedule_args"):
        SegTask(cfg)


def test_split_by_patient_stratified_seeded_and_patient090_never_trained(acdc, tmp_path):
    cfg = load_seg_config([TINY], [f"data.train=[{acdc}]", "data.val_fraction=0.2"]).data
    train, val = split_cases(cfg)
    assert {r.name for r in train} | {r.name for r in val} == {f"patient{i:03d}" for i in range(1, 11)}
    assert not {r.name for r in train} & {r.name for r in val}
    assert sorted(r.group for r in val) == sorted(GROUPS)  # 2 per group x 0.2 -> 1 per group
    assert split_cases(cfg) == (train, val)  # seeded
    write_patient(tmp_path, 90)
    refs = discover_cases([tmp_path / "patient090", acdc])
    train2, val2 = split_cases(cfg, [tmp_path / "patient090", acdc])
    assert len(refs) == 11 and "patient090" in {r.name for r in val2} and "patient090" not in {r.name for r in train2}
    if REAL_ACDC.is_dir():  # the real set: 100 patients, 20 per group, 4 of each in validation
        real = load_seg_config([TINY], [f"data.train=[{REAL_ACDC}]"]).data
        t, v = split_cases(real)
        assert len(t) + len(v) == 100 and "patient090" not in {r.name for r in t}
        assert all(sum(r.group == g for r in v) >= 6 for g in GROUPS)  # val_fraction 0.3 -> 6 per group
    else:
        assert len(train) == 8


def test_short_training_raises_validation_dice(trained):
    result, _ = trained
    dice = [row["val_dice_mean"] for row in result.history]
    assert len(dice) == 3 and dice[-1] > dice[0] + 0.02
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
    assert {"train_ce", "train_dice", "train_w_ce"} <= set(result.history[0])


def test_task_state_restores_generator_and_schedule(acdc):
    import torch

    from cinemri.tasks.seg.task import SegTask

    cfg = load_seg_config([TINY], [f"data.train=[{acdc}]", "loss.schedule=linear", "data.max_cases=2"])
    task = SegTask(cfg)
    task.set_progress(3, 0, 5)
    state = task.state_dict()
    first = torch.rand(4, generator=task.generator)
    other = SegTask(cfg)
    other.load_state_dict(state)
    torch.testing.assert_close(torch.rand(4, generator=other.generator), first)
    assert other.criterion.weight == pytest.approx(task.criterion.weight) and task.criterion.weight < 1.0


def test_eval_perfect_predictor_scores_dice_one_and_zero_distance(trained, acdc, tmp_path, monkeypatch):
    import cinemri.tasks.seg.evaluate as seg_eval

    result, _ = trained
    monkeypatch.setattr(seg_eval, "predict_case", lambda model, case, cfg, frames, **_: case.labels.copy())
    summary = seg_eval.evaluate(result.best_checkpoint, [str(acdc)], split="val", out_dir=tmp_path / "ev",
                                json_path=tmp_path / "ev.json")
    for phase in ("ed", "es"):
        scores = summary["phases"][phase]
        for s in ("rv", "myo", "lv"):
            assert scores[f"dice_{s}"]["mean"] == 1.0
            assert scores[f"hd95_{s}_mm"]["mean"] == 0.0 and scores[f"hd_{s}_mm"]["mean"] == 0.0
    ef = summary["clinical"]["lv_ef_pct"]
    assert ef["bias"] == 0.0 and ef["sd"] == 0.0 and ef["pearson_r"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "ev.json").read_text()) == summary
    assert (tmp_path / "ev" / "per_case.csv").is_file() and (tmp_path / "ev" / "clinical.csv").is_file()


def test_eval_real_model_writes_expected_keys(trained, acdc, tmp_path):
    from cinemri.cli import main

    result, _ = trained
    code = main(["seg", "eval", "--checkpoint", str(result.best_checkpoint), "--data", str(acdc),
                 "--json", str(tmp_path / "e.json"), "--flip-tta", "--largest-component", "--max-cases", "2"])
    assert code == 0
    summary = json.loads((tmp_path / "e.json").read_text())
    assert summary["tta"] is True and summary["lcc"] is True and len(summary["cases"]) == 2
    assert {"ed", "es", "all"} == set(summary["phases"])
    assert {"dice_rv", "dice_myo", "dice_lv", "dice_mean", "hd95_lv_mm", "hd_rv_mm"} <= set(summary["phases"]["ed"])
    assert {"lv_ef_pct", "lv_edv_ml", "rv_ef_pct", "lv_mass_g"} <= set(summary["clinical"])
    assert 0.0 <= summary["phases"]["ed"]["dice_mean"]["mean"] <= 1.0


def test_predict_round_trip_keeps_frame_shape_and_affine(trained, acdc, tmp_path):
    from cinemri.cli import main
    from cinemri.io import read_case

    result, _ = trained
    patient = acdc / "patient003"
    assert main(["seg", "predict", str(patient), "--checkpoint", str(result.best_checkpoint),
                 "--out", str(tmp_path)]) == 0
    for frame in (1, 2):
        source = nib.load(str(patient / f"patient003_frame{frame:02d}.nii.gz"))
        out = nib.load(str(tmp_path / f"patient003_frame{frame:02d}_seg.nii.gz"))
        assert out.shape == source.shape
        np.testing.assert_array_equal(out.affine, source.affine)
        assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2, 3}
    case = read_case(tmp_path / "patient003.h5")
    assert case.labels.shape == case.image.shape == (3, 2, 40, 36)
    image = nib.Nifti1Image(np.asarray(source.dataobj, np.float32), source.affine)  # plain NIfTI input
    nib.save(image, str(tmp_path / "plain.nii.gz"))
    assert main(["seg", "predict", str(tmp_path / "plain.nii.gz"), "--checkpoint", str(result.best_checkpoint),
                 "--out", str(tmp_path / "plain")]) == 0
    out = nib.load(str(tmp_path / "plain" / "plain_seg.nii.gz"))
    assert out.shape == source.shape and np.array_equal(out.affine, source.affine)


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path, capsys):
    from cinemri.cli import main

    assert main(["seg", "eval", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


def test_ablation_runs_writes_table_and_skips_finished_variants(acdc, tmp_path):
    from cinemri.tasks.seg.ablation import ablate

    config = tmp_path / "ablation.yaml"
    config.write_text(f"base: {TINY}\ntrain: {{epochs: 1, max_steps_per_epoch: 2}}\n"
                      f"data: {{train: [{acdc}], preprocess: {{size: [24, 24]}}}}\n"
                      "ablation:\n  models: {unet: {name: unet, args: {base_width: 4, depth: 2}}}\n"
                      "  losses: {ce: {kind: ce}, dice: {kind: dice}}\n  augment: [false]\n  eval_max_cases: 2\n")
    table = ablate([str(config)], tmp_path / "out", ["train.time_budget_min=10"])
    assert "| unet-ce-noaug |" in table and "| unet-dice-noaug |" in table
    assert "Same budget for every variant: 10 minutes of training each (at most 1 epochs)" in table
    assert (tmp_path / "out" / "ablation.png").is_file()
    done = tmp_path / "out" / "unet-ce-noaug" / "result.json"
    done.write_text(done.read_text().replace('"dice_rv"', '"dice_rv": 0.123, "old_dice_rv"'))
    assert "| unet-ce-noaug | 0.123 |" in ablate([str(config)], tmp_path / "out")  # finished: not retrained


def test_eval_split_test_selects_the_held_out_cases_of_split_json(tmp_path):
    from cinemri.tasks.seg.evaluate import _select
    from cinemri.phantom import write_dataset

    paths = write_dataset(tmp_path, 3, seed=1, height=32, width=32, frames=4, slices=3, coils=1, supersample=1)
    names = sorted(p.stem for p in paths)
    (tmp_path / "split.json").write_text(json.dumps({"train": names[:1], "val": names[1:2], "test": names[2:]}))
    cfg = load_seg_config([TINY], [f"data.train=[{tmp_path}]", "data.exclude_train=[]"])
    assert [r.name for r in _select(cfg, None, "test")] == names[2:]
    assert [r.name for r in _select(cfg, None, "val")] == names[1:2]
    assert [r.name for r in _select(cfg, None, "train")] == names[:1]
    with pytest.raises(ValueError, match="split must be one of"):
        _select(cfg, None, "holdout")


def _h5_cases(folder: Path, count: int = 3) -> list[Path]:
    from io_builders import make_case

    from cinemri.io import write_case

    folder.mkdir(parents=True, exist_ok=True)
    return [write_case(make_case(seed=i), folder / f"tiny{i}.h5") for i in range(count)]


def test_a_truncated_case_in_a_source_folder_is_an_error_not_dropped(tmp_path):
    paths = _h5_cases(tmp_path / "data")
    (tmp_path / "data" / "split.json").write_text(json.dumps({"train": ["tiny0", "tiny1"], "val": ["tiny2"]}))
    assert len(discover_cases([tmp_path / "data"])) == 3
    paths[1].write_bytes(paths[1].read_bytes()[:300])  # truncated: was silently left out of training
    with pytest.raises(ValueError, match=r"data source .*data: 1 case file\(s\) cannot be read, first: .*tiny1\.h5"):
        discover_cases([tmp_path / "data"])


def test_a_train_case_of_split_json_missing_from_the_folder_is_an_error(tmp_path):
    paths = _h5_cases(tmp_path / "data")
    (tmp_path / "data" / "split.json").write_text(json.dumps({"train": ["tiny0", "tiny1"], "val": ["tiny2"],
                                                               "test": ["gone_test_case"]}))
    assert len(discover_cases([tmp_path / "data"])) == 3  # a missing test case does not concern training
    paths[0].unlink()
    with pytest.raises(ValueError, match=r"split.json lists 1 train/val case\(s\) not found .*tiny0"):
        discover_cases([tmp_path / "data"])


def test_a_labelled_frame_outside_the_cine_is_one_line_not_an_index_error(tmp_path):
    import h5py

    from cinemri.data.seg import SegDataset

    path = _h5_cases(tmp_path / "data", 1)[0]
    with h5py.File(path, "r+") as f:
        f.attrs["labelled_frames"] = [0, 7]  # of 3 frames
    with pytest.raises(ValueError, match=r"tiny0\.h5: labelled frame\(s\) \[7\]"):
        SegDataset([path])


class _BrightIsLV(torch.nn.Module):
    """A stand-in segmenter: LV wherever the normalised image is positive, else background."""

    def forward(self, x):
        logits = torch.full((x.shape[0], 4, *x.shape[-2:]), -10.0)
        logits[:, 3] = 10.0 * x[:, 0]
        logits[:, 0] = 0.0
        return logits


def test_crop_to_heart_segments_a_training_size_window_around_an_off_centre_heart():
    from cinemri.case import Case
    from cinemri.seg.config import SegExperiment
    from cinemri.seg.inference import _heart_centre, segment_case, test_time_options

    y, x = np.mgrid[:48, :56]
    disc = np.hypot(y - 9, x - 44) < 5  # the "heart", far from the image centre (24, 28)
    image = np.where(disc, 1.0, 0.0) + 0.01 * np.random.default_rng(0).random((48, 56))
    case = Case(name="offcentre", spacing=(8.0, 1.5, 1.5), image=np.repeat(image[None, None], 2, 1).astype(np.complex64))
    cfg = SegExperiment()
    cfg.data.preprocess = type(cfg.data.preprocess)(spacing_mm=1.5, size=(16, 16))
    model = _BrightIsLV()
    assert _heart_centre(model, case, dataclasses.replace(cfg.data.preprocess, size=None), [0, 1], 8, "cpu") == (9, 44)
    found = segment_case(model, case, cfg, test_time=test_time_options(cfg, crop_to_heart=True))
    assert np.array_equal(found.labels[0, 0] == 3, disc) and 0.99 < found.confidence <= 1.0
    with pytest.raises(ValueError, match="unknown test-time option"):
        test_time_options(cfg, flip=True)


def test_scale_tta_averages_magnified_views_of_the_same_anatomy():
    from cinemri.case import Case
    from cinemri.seg.config import SegEvalSection, SegExperiment
    from cinemri.seg.inference import segment_case, test_time_options

    y, x = np.mgrid[:48, :56]
    disc = np.hypot(y - 20, x - 30) < 8
    image = np.where(disc, 1.0, 0.0) + 0.01 * np.random.default_rng(0).random((48, 56))
    case = Case(name="disc", spacing=(8.0, 1.5, 1.5), image=np.repeat(image[None, None], 2, 1).astype(np.complex64))
    cfg = SegExperiment()
    cfg.data.preprocess = type(cfg.data.preprocess)(spacing_mm=1.5, size=(16, 16))
    probe = _Probe()
    segment_case(probe, case, cfg, [0], test_time=test_time_options(cfg, scale_tta=(1.0, 1.25)))
    # the whole field of view at 1.5 mm and at 1.2 mm (1.25x finer), one plane each
    assert [tuple(v.shape[-2:]) for v in probe.seen] == [(48, 56), (60, 70)]
    probe.seen.clear()
    segment_case(probe, case, cfg, [0], test_time=test_time_options(cfg, crop_to_heart=True, scale_tta=(1.0, 1.25)))
    assert [tuple(v.shape[-2:]) for v in probe.seen][-2:] == [(16, 16), (20, 20)]  # the window grows with it
    found = segment_case(_BrightIsLV(), case, cfg, [0], test_time=test_time_options(cfg, crop_to_heart=True,
                                                                                     scale_tta=(1.0, 1.25)))
    assert np.array_equal(found.labels[0, 0] == 3, disc)  # both views agree on the disc, on the original grid
    for bad in ((), (0.0,), (1.0, 10.0)):
        with pytest.raises(ValueError, match="scale_tta"):
            SegEvalSection(scale_tta=bad)


def test_cli_train_takes_the_data_from_the_command_line_and_prints_each_epoch(acdc, tmp_path, capsys):
    from cinemri.cli import main

    out = tmp_path / "run"
    args = ["seg", "train", "--config", str(TINY), "--data", str(acdc), "--set", f"train.out_dir={out}",
            "--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=1", "--set", "data.preprocess.size=[24, 24]",
            "--set", "train.amp=off"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()  # captured, not a terminal
    assert [line.split()[0] for line in lines if line.startswith("epoch=")] == ["epoch=1", "epoch=2"]
    names = {line.split()[1] for line in (out / "split.txt").read_text().splitlines()}
    assert names == {p.name for p in acdc.iterdir() if p.is_dir()}  # every case of --data, split by patient
    assert main([*args[:4], str(tmp_path / "nowhere"), *args[5:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]


def test_grad_analysis_runs_on_tiny_batches(tmp_path, one_thread):
    from cinemri.cli import main

    root = write_acdc_root(tmp_path / "acdc", 10)
    code = main(["seg", "grad-analysis", "--config", str(TINY), "--out", str(tmp_path / "ga"),
                 "--set", f"data.train=[{root}]", "--set", "analysis.batches=2", "--set", "analysis.batch_size=2",
                 "--set", "analysis.measure_epochs=[1]", "--set", "loss.schedule=adaptive",
                 "--set", "train.max_steps_per_epoch=2", "--set", "data.preprocess.size=[24, 24]"])
    assert code == 0
    numbers = json.loads((tmp_path / "ga" / "grad_analysis.json").read_text())
    assert [p["epoch"] for p in numbers["points"]] == [0, 1]
    first = numbers["points"][0]
    for loss in ("ce", "dice", "combined"):
        assert 0.0 <= first[loss]["bg_fraction_l1"] <= 1.0 and first[loss]["norm_l2"] > 0
        assert -1.0 <= first[loss]["param"]["mean_cosine"] <= 1.0 if "param" in first[loss] else True
    assert 0.0 < first["adaptive_target_w"] < 1.0 and not math.isnan(first["ce"]["param"]["mean_norm"])
    assert set(numbers["schedules"]) == {"constant", "linear", "cosine", "step"}
    for name in ("grad_background_fraction", "grad_per_class", "grad_dice_stability", "grad_schedules"):
        assert (tmp_path / "ga" / f"{name}.png").stat().st_size > 1000


class _Probe(torch.nn.Module):
    """Records its inputs; predicts background everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], 4, *x.shape[2:])


def test_reference_frame_model_trains_on_ed_es_cases_and_sees_the_ed_plane(acdc, tmp_path):
    """reference_frame: trains on ACDC-style cases (ED and ES only), and inference gives the
    network each plane with the same slice at the case's end-diastolic frame."""
    from cinemri.data.seg import SliceGrid
    from cinemri.io import read_acdc
    from cinemri.seg.inference import load_segmenter, predict_case, test_time_options
    from cinemri.tasks.seg.task import train

    cfg = load_seg_config([TINY], [f"data.train=[{acdc}]", f"train.out_dir={tmp_path}", "train.epochs=1",
                                   "train.max_steps_per_epoch=2", "data.preprocess.size=[24, 24]",
                                   "data.preprocess.reference_frame=true",
                                   "model.args={base_width: 4, depth: 2, in_channels: 2}"])
    train(cfg)
    model, loaded = load_segmenter(tmp_path / "last.pt")
    assert loaded.data.preprocess.reference_frame and loaded.data.preprocess.channels == 2
    case = read_acdc(acdc / "patient001")
    case = dataclasses.replace(case, ed_frame=1)  # not frame 0: the channel must follow ed_frame
    probe = _Probe()
    predict_case(probe, case, loaded, [0], test_time=test_time_options(loaded, crop_to_heart=False))
    seen = torch.cat(probe.seen)  # (S, 2, h, w): frame 0, slices in order
    whole = dataclasses.replace(loaded.data.preprocess, size=None)
    grid = SliceGrid.plan(case.image.shape, case.spacing, whole)
    for s in range(case.image.shape[0]):
        expected = [grid.prepare_image(np.abs(case.image[s, t]), whole) for t in (0, 1)]
        np.testing.assert_allclose(seen[s].numpy(), np.stack(expected), rtol=1e-6, atol=1e-6)


def test_context_model_trains_and_segments_with_the_neighbouring_slices(acdc, tmp_path):
    """2.5D: in_channels must match the context; training and inference give the network the
    plane and its neighbouring slices (the edge slice repeated), prepared like the plane."""
    from cinemri.data.seg import SliceGrid
    from cinemri.io import read_acdc
    from cinemri.seg.inference import load_segmenter, predict_case, test_time_options
    from cinemri.tasks.seg.task import train

    with pytest.raises(ValueError, match="set model.args.in_channels: 3"):
        load_seg_config([TINY], ["data.preprocess.context_slices=1"])
    cfg = load_seg_config([TINY], [f"data.train=[{acdc}]", f"train.out_dir={tmp_path}", "train.epochs=1",
                                   "train.max_steps_per_epoch=2", "data.preprocess.size=[24, 24]",
                                   "data.preprocess.context_slices=1",
                                   "model.args={base_width: 4, depth: 2, in_channels: 3}"])
    train(cfg)
    model, loaded = load_segmenter(tmp_path / "last.pt")
    assert loaded.data.preprocess.channels == 3
    case = read_acdc(acdc / "patient001")
    labels = predict_case(model, case, loaded, [0], test_time=test_time_options(loaded, crop_to_heart=True))
    assert labels.shape == case.image.shape and labels.dtype == np.uint8
    probe = _Probe()
    predict_case(probe, case, loaded, [0], test_time=test_time_options(loaded, crop_to_heart=False))
    seen = torch.cat(probe.seen)  # (S, 3, h, w): frame 0, slices in order
    whole = dataclasses.replace(loaded.data.preprocess, size=None)
    grid = SliceGrid.plan(case.image.shape, case.spacing, whole)
    slices = case.image.shape[0]
    assert seen.shape[:2] == (slices, 3)
    for s in range(slices):
        expected = [grid.prepare_image(np.abs(case.image[n, 0]), whole) for n in (s, max(s - 1, 0),
                                                                                    min(s + 1, slices - 1))]
        np.testing.assert_allclose(seen[s].numpy(), np.stack(expected), rtol=1e-6, atol=1e-6)
