"""Reconstruction experiments: training task, engine hooks, checkpoint loading, eval, predict, ablate, CLI."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from io_builders import write_mat5

from cinemri.case import Case
from cinemri.cli import main
from cinemri.data import collate_recon
from cinemri.pipeline.predict import predict_recon as predict
from cinemri.recon.config import load_recon_config
from cinemri.recon.inference import load_reconstructor
from cinemri.tasks.recon.ablation import ablate
from cinemri.tasks.recon.evaluate import EvalOptions, evaluate
from cinemri.tasks.recon.task import ReconTask, train
from cinemri.io import read_case, write_case
from cinemri.masks import cartesian_mask
from cinemri.metrics import psnr
from cinemri.phantom import write_dataset
from cinemri.physics import sense_forward
from cinemri.recon import zero_filled as zero_filled_recon
from cinemri.train import fit, load_checkpoint, save_checkpoint, seed_everything
from cinemri.train.example import SmoothingTask

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "recon" / "tiny.yaml"
DEMO = Path("/work/shared/data/samples/cmrxrecon2024_demo/cine_sax.mat")


pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """3 cases of 32x32, 6 frames, 4 slices, 4 coils; split train 2 / val 1 / test 1."""
    root = tmp_path_factory.mktemp("phantom")
    paths = write_dataset(root, 3, seed=3, height=32, width=32, frames=6, slices=4, coils=4, supersample=1)
    names = [p.stem for p in paths]
    (root / "split.json").write_text(json.dumps({"train": names[:2], "val": names[2:], "test": names[2:]}))
    return root


def tiny_overrides(phantom, out, *extra):
    return [f"data.root={phantom}", f"train.out_dir={out}", *extra]


@pytest.fixture(scope="module")
def trained(phantom, tmp_path_factory):
    """One short training of the tiny config (fixed mask, one slice of one case, 60 steps)."""
    out = tmp_path_factory.mktemp("run")
    overrides = tiny_overrides(phantom, out, "train.epochs=6", "train.max_steps_per_epoch=10",
                               "train.lr=3e-2", "train.schedule=constant", "train.warmup_epochs=0.1",
                               "data.max_train_cases=1", "data.max_slices_per_case=1", "data.train_mask_mode=fixed")
    config = load_recon_config(TINY, overrides)
    task = ReconTask(config)
    result = fit(task, config)
    return result, task, config, out


# ---------------------------------------------------------------------------- training


def test_training_lowers_loss_and_beats_zero_filling(trained):
    result, task, config, out = trained
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.7 * losses[0]
    sample = task.train_dataset[0]
    batch = task.collate([sample])
    seed_everything(config.train.seed)  # the engine's initial weights
    untrained = task.build_model().eval()
    with torch.no_grad():
        pred = result.model(batch.kspace, batch.mask, batch.maps)[0]
        start = untrained(batch.kspace, batch.mask, batch.maps)[0]
    zero_filled = zero_filled_recon(batch.kspace, batch.mask, batch.maps)[0]
    assert psnr(pred, sample.target) > psnr(start, sample.target) + 1.5
    assert psnr(pred, sample.target) > psnr(zero_filled, sample.target)
    assert {"val_psnr", "val_ssim", "val_nmse", "val_loss", "val_psnr_worst_frame"} <= set(result.history[-1])
    assert result.history[-1]["val_psnr_worst_frame"] <= result.history[-1]["val_psnr"]
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()


def test_resume_continues(phantom, tmp_path):
    overrides = tiny_overrides(phantom, tmp_path, "train.epochs=2", "train.max_steps_per_epoch=2")
    first = train([TINY], overrides, stop_after_epoch=1)
    assert first.epochs_completed == 1 and first.global_step == 2
    second = train([TINY], overrides, resume=tmp_path / "last.pt")
    assert second.epochs_completed == 2 and second.global_step == 4
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


def test_bad_config_key_is_a_clear_error(phantom, tmp_path):
    with pytest.raises(ValueError, match="unknown key 'model.num_stage'"):
        load_recon_config(TINY, ["model.num_stage=2"])
    with pytest.raises(ValueError, match="loss kind"):
        load_recon_config(TINY, ["loss.kind=l1+huber"])
    with pytest.raises(ValueError, match="no split 'nope'"):
        ReconTask(load_recon_config(TINY, tiny_overrides(phantom, tmp_path, "data.train_split=nope")))


# ------------------------------------------------------------------------ engine hooks


class _EpochRecorder(torch.utils.data.Dataset):
    def __init__(self, base):
        self.base, self.epochs = base, []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.base[i]


@dataclass
class _HookTask(SmoothingTask):
    progress: list = field(default_factory=list)
    restored: dict | None = None

    def set_progress(self, epoch, step, total_epochs):
        self.progress.append((epoch, step, total_epochs))

    def state_dict(self):
        return {"seen": len(self.progress)}

    def load_state_dict(self, state):
        self.restored = dict(state)


def test_engine_calls_set_epoch_progress_and_task_state(tmp_path):
    from cinemri.train import TrainConfig

    task = _HookTask(train_size=8, val_size=0)
    task.train_dataset = _EpochRecorder(task.train_dataset)
    cfg = TrainConfig(epochs=2, batch_size=4, out_dir=str(tmp_path), progress=False, tensorboard=False,
                      monitor="train_loss")
    fit(task, cfg, stop_after_epoch=1)
    assert task.train_dataset.epochs == [0] and task.progress == [(0, 0, 2), (0, 1, 2)]
    assert load_checkpoint(tmp_path / "last.pt")["task"] == {"seen": 2}
    again = _HookTask(train_size=8, val_size=0)
    again.train_dataset = _EpochRecorder(again.train_dataset)
    fit(again, cfg, resume=tmp_path / "last.pt")
    assert again.restored == {"seen": 2} and again.train_dataset.epochs == [1]
    assert again.progress == [(1, 0, 2), (1, 1, 2)]


# --------------------------------------------------------------- checkpoints, eval, predict


def test_load_reconstructor_and_bad_checkpoints(trained, tmp_path):
    result, task, config, out = trained
    loaded = load_reconstructor(out / "last.pt")
    assert loaded.config.model == config.model and not loaded.model.training
    for a, b in zip(loaded.model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b.cpu())
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_reconstructor(garbage)
    state = load_checkpoint(out / "last.pt")
    state["model_name"] = "tinynet"
    other = tmp_path / "other.pt"
    save_checkpoint(other, state)
    with pytest.raises(ValueError, match="other.pt.*tinynet"):
        load_reconstructor(other)


def test_eval_writes_documented_results(trained, phantom, tmp_path):
    _, _, _, out = trained
    options = EvalOptions(split="test", max_slices_per_case=2, cs_iters=30)
    result = evaluate(out / "last.pt", phantom, out_dir=tmp_path / "eval", json_path=tmp_path / "r.json",
                      options=options)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["methods"].keys() == {"model", "zero_filled", "cs_tv"}
    for entry in saved["methods"].values():
        assert set(entry["summary"]) == {"psnr", "ssim", "nmse", "psnr_worst_frame"} and entry["seconds_per_slice"] > 0
        assert {"mean", "std", "n"} <= set(entry["summary"]["psnr"])
    assert saved["methods"]["cs_tv"]["num_iters"] == 30 and "data range" in saved["conventions"]
    (case,) = saved["cases"].values()
    assert case["slices"] == 2
    # CS-TV removes aliasing, so it must beat zero filling on the phantom
    assert case["cs_tv"]["psnr"] > case["zero_filled"]["psnr"]
    assert 0 < case["zero_filled"]["ssim"] < case["cs_tv"]["ssim"] <= 1
    for method in ("model", "zero_filled", "cs_tv"):  # one phase is at most as good as the whole cine
        assert case[method]["psnr_worst_frame"] <= case[method]["psnr"] + 1e-9
    for name in ("metrics.csv", "metrics.json", "comparison.png", "comparison.gif"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    header = (tmp_path / "eval" / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("case,model_psnr,model_ssim,model_nmse,model_psnr_worst_frame,zero_filled_psnr")
    assert result["methods"]["model"]["params"] > 0


def test_predict_round_trip_on_fully_sampled_case(trained, phantom, tmp_path):
    _, _, _, out = trained
    source = json.loads((phantom / "split.json").read_text())["test"][0]
    original = read_case(phantom / f"{source}.h5")
    with pytest.raises(ValueError, match="fully sampled"):
        predict(phantom / f"{source}.h5", out / "last.pt", tmp_path / "x.h5")
    written = predict(phantom / f"{source}.h5", out / "last.pt", tmp_path / "recon.h5", acceleration=5)
    case = read_case(written)
    assert case.image.shape == original.image.shape and case.image.dtype == np.complex64
    np.testing.assert_array_equal(case.labels, original.labels)
    assert (case.spacing, case.ed_frame, case.es_frame) == (original.spacing, original.ed_frame, original.es_frame)
    ratio = np.abs(case.image).mean() / np.abs(original.image).mean()
    assert 0.8 < ratio < 1.25  # the dataset's normalisation was undone
    assert case.name == original.name
    renamed = predict(phantom / f"{source}.h5", out / "last.pt", tmp_path / "r.h5", acceleration=5, name="r5")
    assert read_case(renamed).name == "r5"


def test_predict_undersampled_case_and_cmrxrecon_mat(trained, phantom, tmp_path):
    _, _, _, out = trained
    name = json.loads((phantom / "split.json").read_text())["test"][0]
    original = read_case(phantom / f"{name}.h5")
    mask = cartesian_mask(6, 32, 4.0, 4, "vd_random", seed=1).numpy()  # (T, W)
    full = sense_forward(torch.from_numpy(original.image), torch.from_numpy(original.coil_maps)).numpy()
    under = Case(name="under", spacing=original.spacing, kspace=full * mask[None, None, :, None, :], mask=mask,
                 labels=original.labels, ed_frame=original.ed_frame, es_frame=original.es_frame)
    path = write_case(under, tmp_path / "under.h5")
    with pytest.raises(ValueError, match="already undersampled"):
        predict(path, out / "last.pt", tmp_path / "x.h5", acceleration=5)
    case = read_case(predict(path, out / "last.pt", tmp_path / "under_recon.h5"))
    assert case.image.shape == original.image.shape and case.ed_frame == original.ed_frame
    # CMRxRecon .mat, MATLAB dims (kx, ky, coils, slices, frames); the real demo when present
    mat = DEMO if DEMO.is_file() else write_mat5(
        tmp_path / "cine_sax.mat", {"kspace_full": full[:2].transpose(3, 4, 1, 0, 2)})
    case = read_case(predict(mat, out / "last.pt", tmp_path / "mat_recon.h5", acceleration=4))
    expected = (1, 1, 512, 246) if mat == DEMO else (2, 6, 32, 32)
    assert case.image.shape == expected and np.isfinite(case.image).all()


# ----------------------------------------------------------------------- ablate and CLI


def test_ablate_two_variants_writes_table_and_resumes(phantom, tmp_path):
    config = tmp_path / "ablation.yaml"
    config.write_text(f"base: {TINY}\ntrain: {{epochs: 1, max_steps_per_epoch: 2, val_every: 1}}\n"
                      f"data: {{root: {phantom}, max_slices_per_case: 1}}\n"
                      "ablation:\n  cs_iters: 5\n  variants:\n    l1: []\n    l2: ['loss.kind=l2']\n")
    result = ablate(config, tmp_path / "abl")
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "| l1 |" in table and "| l2 |" in table and "| zero_filled |" in table and "| cs_tv |" in table
    assert "Same budget for every variant: 1 epochs, batch" in table
    assert (tmp_path / "abl" / "ablation.png").stat().st_size > 0
    assert result["variants"]["l1"]["params"] == result["variants"]["l2"]["params"]
    assert result["variants"]["l1"]["steps"] == 2 and "| 2 |" in table  # 1 epoch of 2 steps
    done = tmp_path / "abl" / "l2" / "result.json"
    before = done.stat().st_mtime_ns
    ablate(config, tmp_path / "abl")  # finished variants are skipped
    assert done.stat().st_mtime_ns == before
    text = config.read_text()
    config.write_text(text + "    longer: ['train.epochs=5']\n")
    with pytest.raises(ValueError, match="'longer'.*budget"):
        ablate(config, tmp_path / "abl")
    config.write_text(text + "    quicker: ['train.time_budget_min=1']\n")
    with pytest.raises(ValueError, match="'quicker'.*budget"):
        ablate(config, tmp_path / "abl")
    config.write_text(text + "    typo: ['model.denoiser_options.bogus=1']\n")
    with pytest.raises(ValueError, match="bogus"):
        ablate(config, tmp_path / "abl2")
    assert not (tmp_path / "abl2").exists()  # refused before anything trained


def test_cli_train_and_errors(phantom, tmp_path, capsys):
    args = ["recon", "train", "--config", str(TINY), "--set", f"data.root={phantom}", "--set",
            f"train.out_dir={tmp_path}", "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=1"]
    assert main(args) == 0
    out = capsys.readouterr().out  # captured, not a terminal: one line per epoch all the same
    assert "last checkpoint" in out and any(line.startswith("epoch=1 ") for line in out.splitlines())
    assert main([*args, "--set", "model.bogus=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'model.bogus'" in err[0]
    assert main(["recon", "eval", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(phantom)]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert math.isfinite(load_checkpoint(tmp_path / "last.pt")["metrics"]["train_loss"])


# ------------------------------------------------- real cine sources, new options, any image size


def _magnitude_h5(folder: Path, name: str, seed: int, h: int = 36, w: int = 30) -> Path:
    """A magnitude cine case (image only, like a DICOM series): 2 slices, 6 frames."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    body = (((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.42 * w)) ** 2 < 1).astype(np.float32)
    heart = (((yy - h / 2) / 5.0) ** 2 + ((xx - w / 2) / 4.0) ** 2 < 1).astype(np.float32)
    beat = 1 + 0.3 * np.sin(np.linspace(0, 2 * np.pi, 6, endpoint=False))[:, None, None]
    image = np.stack([60 * body + 80 * heart * beat + 5 * rng.random((6, h, w)) for _ in range(2)])  # (S, T, H, W)
    return write_case(Case(name=name, spacing=(8.0, 1.4, 1.4), image=image.astype(np.complex64)), folder / f"{name}.h5")


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    """A folder of three magnitude subjects, one of them named like the real-anatomy test case."""
    root = tmp_path_factory.mktemp("subjects")
    for seed, name in enumerate(("SCDA", "SCDB", "patient090_4d")):
        _magnitude_h5(root, name, seed)
    (root / "notes.txt").write_text("not a case")
    return root


def test_sources_split_by_subject_and_exclude_the_test_case(subjects, phantom, tmp_path):
    from cinemri.recon.config import ReconDataSection
    from cinemri.tasks.recon.data import source_cases

    data = ReconDataSection(train=[str(subjects), str(phantom)], val_names=["SCDB"], exclude_names=["patient090"])
    cases = source_cases(data)
    split = json.loads((phantom / "split.json").read_text())
    assert [p.name for p in cases["train"]] == ["SCDA.h5"] + [f"{n}.h5" for n in split["train"]]
    assert [p.name for p in cases["val"]] == ["SCDB.h5"] + [f"{n}.h5" for n in split["val"]]
    with pytest.raises(ValueError, match="val_names.*SCDX"):
        source_cases(ReconDataSection(train=[str(subjects)], val_names=["SCDX"]))
    with pytest.raises(ValueError, match="does not exist"):
        source_cases(ReconDataSection(train=[str(tmp_path / "nowhere")]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no case"):
        source_cases(ReconDataSection(train=[str(tmp_path / "empty")]))


def test_recipe_hard_dc_schedule_hand_computed():
    from cinemri.recon.config import ReconRecipeSection

    recipe = ReconRecipeSection(hard_dc_steps=2, hard_dc_ramp_steps=4)
    assert [recipe.dc_hardness(s) for s in range(8)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert ReconRecipeSection().dc_hardness(0) == 0.0
    with pytest.raises(ValueError, match="hard_dc_steps"):
        ReconRecipeSection(hard_dc_steps=-1)


def test_training_on_magnitude_subjects_with_every_new_option(subjects, phantom, tmp_path):
    """Strips, augmentation, simulated coils, bf16, view sharing, channels-last, hard DC early, gates,
    onecycle: a few steps run, validation mixes image sizes, the schedule state resumes."""
    overrides = [
        f"train.out_dir={tmp_path}", "train.epochs=2", "train.max_steps_per_epoch=2", "train.batch_size=2",
        "train.amp=bf16", "train.schedule=onecycle", "train.warmup_epochs=1",
        f"data.train={json.dumps([str(subjects), str(phantom)])}", "data.val_names=[SCDB]",
        "data.exclude_names=[patient090]", "data.strip_rows=8", "data.max_val_slices_per_case=1",
        "data.augment={flip: true, rot90: true, time_reverse: true, time_shift: true, crop: [24, 24], frames: 4}",
        "data.simulation={coils: [2, 4], replace_maps: true}",
        "model.init=view_sharing", "model.channels_last=true", "recipe.hard_dc_steps=2", "recipe.hard_dc_ramp_steps=1",
        "model.residual_gates=true",
    ]
    config = load_recon_config(TINY, overrides)
    task = ReconTask(config)
    assert len(task.val_dataset) == 2  # SCDB (36 x 30) and the phantom's val case (32 x 32): mixed sizes
    sample = task.train_dataset[0]
    assert sample.kspace.shape[1:] == (4, 8, 24) and sample.target.shape == (4, 8, 24)
    result = fit(task, config, stop_after_epoch=1)
    assert task.steps_done == 2 and task.dc_hardness == 1.0
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["task"] == {"steps_done": 2}
    assert state["model_args"]["init"] == "view_sharing" and state["model_args"]["channels_last"] is True
    assert state["model_args"]["residual_gates"] is True and state["model"]["gates"].abs().max() > 0  # learned
    again = ReconTask(config)
    result = fit(again, config, resume=tmp_path / "last.pt")
    assert again.steps_done == 4 and again.dc_hardness == 0.0
    row = result.history[-1]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_psnr"])
    loaded = load_reconstructor(tmp_path / "last.pt")
    assert loaded.model.init == "view_sharing" and loaded.model.channels_last and loaded.model.gates is not None
    # inference may pick the other memory layout: the same image up to fp32 rounding
    plain = load_reconstructor(tmp_path / "last.pt", channels_last=False).model
    weight = next(p for p in plain.denoisers.parameters() if p.dim() == 5)
    assert not plain.channels_last and weight.is_contiguous()
    batch = collate_recon([task.val_dataset[0]])
    with torch.no_grad():
        torch.testing.assert_close(plain(batch.kspace, batch.mask, batch.maps),
                                   loaded.model(batch.kspace, batch.mask, batch.maps), rtol=1e-4, atol=1e-5)


def test_cli_train_takes_data_sources(subjects, phantom, tmp_path, capsys):
    args = ["recon", "train", "--config", str(TINY), "--data", str(subjects), str(phantom),
            "--set", "data.val_names=[SCDB]", "--set", "data.exclude_names=[patient090]",
            "--set", f"train.out_dir={tmp_path}", "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=1"]
    assert main(args) == 0
    saved = load_checkpoint(tmp_path / "last.pt")["config"]["data"]
    assert saved["train"] == [str(subjects), str(phantom)] and saved["val_names"] == ["SCDB"]


def _odd_case(tmp_path: Path) -> Path:
    """Image + coil maps (phantom-like) at 37 x 50, 2 slices, 6 frames, 3 coils."""
    g = torch.Generator().manual_seed(9)
    image = torch.randn(2, 6, 37, 50, dtype=torch.complex64, generator=g)
    maps = torch.randn(2, 3, 37, 50, dtype=torch.complex64, generator=g)
    maps = maps / maps.abs().square().sum(dim=1, keepdim=True).sqrt()
    case = Case(name="odd", spacing=(8.0, 1.5, 1.5), image=image.numpy(), coil_maps=maps.numpy())
    return write_case(case, tmp_path / "odd.h5")


def test_predict_and_analyze_run_on_the_whole_field_of_view(trained, tmp_path):
    """A checkpoint trained on crops still reconstructs an odd-sized input at its own size."""
    from cinemri.pipeline.reconstruct import reconstruct_case

    _, _, _, out = trained
    state = load_checkpoint(out / "last.pt")
    state["config"]["data"]["crop"] = [16, 16]  # as if trained on 16 x 16 crops
    cropped = tmp_path / "cropped.pt"
    save_checkpoint(cropped, state)
    path = _odd_case(tmp_path)
    case = read_case(predict(path, cropped, tmp_path / "odd_recon.h5", acceleration=5))
    assert case.image.shape == (2, 6, 37, 50) and np.isfinite(case.image).all()
    recon = reconstruct_case(read_case(path), "model", recon=load_reconstructor(cropped))
    assert recon.image.shape == (2, 6, 37, 50) and recon.reference.shape == (2, 6, 37, 50)


def test_cli_predict_uses_the_bundled_weights_at_the_input_size(tmp_path, capsys):
    path = _odd_case(tmp_path)
    assert main(["recon", "predict", str(path), "--out", str(tmp_path / "r.h5"), "--acceleration", "5"]) == 0
    assert read_case(tmp_path / "r.h5").image.shape == (2, 6, 37, 50)


def test_eval_scores_magnitude_cases_and_finds_case_folders(trained, subjects, tmp_path):
    from cinemri.tasks.recon.evaluate import resolve_data

    _, _, _, out = trained
    options = EvalOptions(max_slices_per_case=1, cs_iters=5, figures=False)
    result = evaluate(out / "last.pt", [subjects / "SCDA.h5"], options=options)  # simulated coils, fixed seed
    again = evaluate(out / "last.pt", [subjects / "SCDA.h5"], options=options)
    assert result["cases"]["SCDA"]["model"] == again["cases"]["SCDA"]["model"]
    assert result["cases"]["SCDA"]["cs_tv"]["psnr"] > result["cases"]["SCDA"]["zero_filled"]["psnr"]
    series = tmp_path / "series"
    (series / "SCD0000901").mkdir(parents=True)
    assert resolve_data(subjects, "test") == sorted(subjects.glob("*.h5"))
    with pytest.raises(ValueError, match="no split.json and no case"):
        resolve_data(series, "test")
