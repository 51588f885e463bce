"""The training loop on the tiny smoothing task: learning, schedule, resume, NaN, best/last."""

import csv
import math
from collections import namedtuple
from dataclasses import dataclass, replace

import pytest
import torch

from cinemri.train import (TrainConfig, TrainingDivergedError, fit, load_checkpoint, lr_factor, move_to_device,
                           resolve_amp, seed_everything)
from cinemri.train.engine import cpu_computes_bf16
from cinemri.train.example import SmoothingTask


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def config(tmp_path, name="run", **changes):
    base = TrainConfig(epochs=3, batch_size=4, lr=1e-2, warmup_epochs=0.5, out_dir=str(tmp_path / name),
                       progress=False, tensorboard=False)
    return replace(base, **changes)


def weights(path):
    return load_checkpoint(path)["model"]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_training_lowers_the_loss(tmp_path):
    task = SmoothingTask(train_size=16, val_size=8)
    cfg = config(tmp_path, epochs=4)
    seed_everything(cfg.seed)
    untrained = task.build_model()
    with torch.no_grad():
        x, y = task.val_dataset.x, task.val_dataset.y
        initial = float(((untrained(x) - y) ** 2).mean())
    result = fit(task, cfg)
    assert result.epochs_completed == 4 and result.global_step == 16
    assert result.history[-1]["val_loss"] < 0.3 * initial
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert math.isclose(float(rows[-1]["val_loss"]), result.history[-1]["val_loss"], rel_tol=1e-12)
    ck = load_checkpoint(result.last_checkpoint)
    assert ck["epoch"] == 4 and ck["global_step"] == 16 and ck["config"]["train"]["epochs"] == 4
    assert ck["model_name"] == "tinynet" and ck["model_args"] == {"width": 8, "dropout": 0.0}
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_lr_schedule_hand_computed(tmp_path):
    # warm-up 4 steps: 1/4, 2/4, 3/4, 4/4; then cosine over 8 steps to min_ratio 0.1
    assert [lr_factor(s, 4, 12, "cosine", 0.1) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 12, "cosine", 0.1) == 1.0
    assert math.isclose(lr_factor(8, 4, 12, "cosine", 0.1), 0.1 + 0.9 * 0.5)
    assert math.isclose(lr_factor(12, 4, 12, "cosine", 0.1), 0.1)
    assert lr_factor(9, 4, 12, "constant", 0.1) == 1.0
    # the engine applies it per optimizer step: after epoch e, lr = lr * factor(4e)
    result = fit(SmoothingTask(train_size=16, val_size=0), config(tmp_path, epochs=3, warmup_epochs=1.0,
                                                                   min_lr_ratio=0.1, monitor="train_loss"))
    for row in result.history:
        assert math.isclose(row["lr"], 1e-2 * lr_factor(row["step"], 4, 12, "cosine", 0.1), rel_tol=1e-9)


def test_onecycle_schedule_matches_torch_onecyclelr():
    """'onecycle' = torch's OneCycleLR (cosine, two phases, no momentum cycling) for the same
    peak step, start ratio 1/div_factor and end ratio 1/(div_factor * final_div_factor)."""
    total, warmup, div, final_div = 20, 5, 25.0, 100.0
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    torch_schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1.0, total_steps=total, pct_start=warmup / total, div_factor=div,
        final_div_factor=final_div, anneal_strategy="cos", cycle_momentum=False, three_phase=False)
    expected = []
    for _ in range(total):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        torch_schedule.step()
    ours = [lr_factor(s, warmup, total, "onecycle", 1 / (div * final_div), start_ratio=1 / div) for s in range(total)]
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert ours[0] == pytest.approx(0.04) and ours[warmup - 1] == pytest.approx(1.0)


def test_resume_is_exact(tmp_path):
    task = SmoothingTask(train_size=16, val_size=4, noise=0.2, dropout=0.2)  # RNG used every step
    full = fit(task, config(tmp_path, "full", epochs=4))
    first = fit(task, config(tmp_path, "split", epochs=4), stop_after_epoch=2)
    assert first.epochs_completed == 2 and load_checkpoint(first.last_checkpoint)["epoch"] == 2
    second = fit(task, config(tmp_path, "split", epochs=4), resume=first.last_checkpoint)
    assert second.epochs_completed == 4 and second.global_step == full.global_step
    a, b = weights(full.last_checkpoint), weights(second.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a = load_checkpoint(full.last_checkpoint)["optimizer"]["state"]
    opt_b = load_checkpoint(second.last_checkpoint)["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)
    rows_full = read_csv(tmp_path / "full" / "metrics.csv")
    rows_split = read_csv(tmp_path / "split" / "metrics.csv")
    assert [int(r["epoch"]) for r in rows_split] == [1, 2, 3, 4]
    assert [r["val_loss"] for r in rows_split] == [r["val_loss"] for r in rows_full]
    # resuming from a checkpoint of another model is refused with the file named
    other = SmoothingTask(train_size=16, val_size=4, width=5)
    with pytest.raises(ValueError, match=r"last\.pt was written with other model args"):
        fit(other, config(tmp_path, "split", epochs=5), resume=first.last_checkpoint)


@dataclass
class ExplodingTask(SmoothingTask):
    explode_at_call: int = 10

    def __post_init__(self):
        super().__post_init__()
        self.calls = 0

    def loss(self, batch, model):
        loss, logs = super().loss(batch, model)
        self.calls += 1
        return (loss * float("nan") if self.calls >= self.explode_at_call else loss), logs


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    task = ExplodingTask(train_size=16, val_size=4, explode_at_call=10)  # 4 steps/epoch: epoch 3, step 10
    with pytest.raises(TrainingDivergedError, match=r"epoch 3, step 10: loss is nan.*last good checkpoint") as info:
        fit(task, config(tmp_path, epochs=4))
    assert (info.value.epoch, info.value.step) == (3, 10)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 2 and last["global_step"] == 8
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == 2
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "config.yaml", "last.pt",
                                                                    "metrics.csv"]


def test_best_follows_monitor_and_mode(tmp_path):
    task = SmoothingTask(train_size=16, val_size=4)
    result = fit(task, config(tmp_path, monitor="val_loss", monitor_mode="max"))
    losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == 1 + losses.index(max(losses))
    assert load_checkpoint(result.best_checkpoint)["epoch"] == result.best_epoch
    assert load_checkpoint(result.last_checkpoint)["epoch"] == 3
    with pytest.raises(ValueError, match=r"train\.monitor: 'val_dice' is not a metric"):
        fit(task, config(tmp_path, "other", epochs=1, monitor="val_dice"))


def test_amp_resolution_and_bf16_on_cpu(tmp_path):
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("off", cpu) is None
    assert resolve_amp("bf16", cpu) is (torch.bfloat16 if cpu_computes_bf16() else None)
    with pytest.raises(ValueError, match="train.amp='fp16' needs a CUDA device"):
        resolve_amp("fp16", cpu)
    result = fit(SmoothingTask(train_size=8, val_size=4), config(tmp_path, epochs=1, amp="bf16"))
    assert math.isfinite(result.history[0]["train_loss"])


def test_bf16_on_a_cpu_without_native_bf16_is_full_precision(monkeypatch):
    import cinemri.train.engine as engine

    cpu = torch.device("cpu")
    monkeypatch.setattr(engine, "cpu_computes_bf16", lambda: False)
    assert resolve_amp("bf16", cpu) is None
    monkeypatch.setattr(engine, "cpu_computes_bf16", lambda: True)
    assert resolve_amp("bf16", cpu) is torch.bfloat16
    assert isinstance(cpu_computes_bf16(), bool)


def test_move_to_device_walks_containers():
    Pair = namedtuple("Pair", "a b")

    @dataclass
    class Sample:
        image: torch.Tensor
        meta: dict

    batch = {"s": Sample(torch.ones(2), {"spacing": torch.zeros(1), "id": "p1"}), "p": Pair(torch.ones(1), 3),
             "l": [torch.ones(1)]}
    moved = move_to_device(batch, torch.device("meta"))
    assert moved["s"].image.is_meta and moved["s"].meta["spacing"].is_meta and moved["s"].meta["id"] == "p1"
    assert isinstance(moved["p"], Pair) and moved["p"].a.is_meta and moved["p"].b == 3
    assert moved["l"][0].is_meta


def test_metrics_csv_widens_and_truncates(tmp_path):
    from cinemri.train.progress import MetricsLog

    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, tensorboard=False)
    log.append({"epoch": 1, "step": 4, "train_loss": 0.5})
    log.append({"epoch": 2, "step": 8, "train_loss": 0.25, "val_loss": 0.125})  # new column: file rewritten
    log.append({"epoch": 3, "step": 12, "train_loss": 0.2, "val_loss": 0.1})
    rows = read_csv(path)
    assert list(rows[0]) == ["epoch", "step", "train_loss", "val_loss"]
    assert rows[0]["val_loss"] == "" and rows[1]["val_loss"] == "0.125"
    again = MetricsLog(path, tensorboard=False)  # a resumed run from epoch 2 forgets epoch 3
    again.truncate_after(2)
    assert [r["epoch"] for r in read_csv(path)] == ["1", "2"]


def test_val_every_and_missing_val_dataset(tmp_path):
    result = fit(SmoothingTask(train_size=8, val_size=4), config(tmp_path, epochs=3, val_every=2))
    assert ["val_loss" in row for row in result.history] == [False, True, True]  # the last epoch always validates
    with pytest.raises(ValueError, match="train.monitor is 'val_loss' but the task has no val_dataset"):
        fit(SmoothingTask(train_size=8, val_size=0), config(tmp_path, "b", epochs=1))


def test_divergence_is_one_line_from_the_command_naming_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import cinemri.tasks.recon.task as recon_task
    from cinemri.cli import main
    from cinemri.errors import RunStopped

    def diverging_train(*args, **kwargs):
        fit(ExplodingTask(train_size=16, val_size=4, explode_at_call=10), config(tmp_path, epochs=4))

    monkeypatch.setattr(recon_task, "train", diverging_train)
    assert issubclass(TrainingDivergedError, RunStopped)
    assert main(["recon", "train", "--config", "unused.yaml"]) == 1  # not a traceback
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("cinemri: error: training diverged at epoch 3, step 10")
    assert str(tmp_path / "run" / "last.pt") in err


def test_resume_applies_a_changed_lr_and_records_what_ran(tmp_path):
    task = SmoothingTask(train_size=16, val_size=0)
    cfg = config(tmp_path, epochs=4, warmup_epochs=0.0, schedule="constant", monitor="train_loss")
    first = fit(task, cfg, stop_after_epoch=2)
    resumed = fit(task, replace(cfg, lr=1e-3, weight_decay=0.5), resume=first.last_checkpoint)
    assert [row["lr"] for row in resumed.history] == [1e-3, 1e-3]  # was trained on at the old 1e-2
    state = load_checkpoint(resumed.last_checkpoint)
    assert state["config"]["train"]["lr"] == 1e-3
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [1e-3, 1e-3]
    assert [g["weight_decay"] for g in state["optimizer"]["param_groups"]] == [0.5, 0.0]
    assert "lr: 0.001" in (tmp_path / "run" / "config.yaml").read_text()


def test_resume_with_more_epochs_replans_the_cosine(tmp_path):
    task = SmoothingTask(train_size=16, val_size=0)  # 4 steps per epoch
    cfg = config(tmp_path, epochs=3, warmup_epochs=1.0, min_lr_ratio=0.1, monitor="train_loss")
    first = fit(task, cfg, stop_after_epoch=2)
    longer = fit(task, replace(cfg, epochs=6), resume=first.last_checkpoint)
    for row in longer.history:  # the cosine now spans 6 epochs (24 steps), not 3
        assert math.isclose(row["lr"], 1e-2 * lr_factor(row["step"], 4, 24, "cosine", 0.1), rel_tol=1e-9)
    assert load_checkpoint(longer.last_checkpoint)["config"]["train"]["epochs"] == 6


def test_resume_refuses_a_changed_seed(tmp_path):
    task = SmoothingTask(train_size=16, val_size=0)
    cfg = config(tmp_path, epochs=3, monitor="train_loss")
    first = fit(task, cfg, stop_after_epoch=1)
    with pytest.raises(ValueError, match=r"last\.pt: train\.seed was 0, now 7"):
        fit(task, replace(cfg, seed=7), resume=first.last_checkpoint)
