"""Training to a wall-clock budget (train.time_budget_min): where it stops, the LR it follows,
and a resume that extends it. The engine's clock is replaced by one that ticks 1 s per reading."""

import itertools
import math
from dataclasses import replace

import pytest

from cinemri.train import TrainConfig, fit, load_checkpoint, lr_factor
from cinemri.train import engine
from cinemri.train.example import SmoothingTask

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture
def one_second_steps(monkeypatch):
    """Every reading of the training clock is 1 s after the last: each step takes 1 s."""
    ticks = itertools.count()
    monkeypatch.setattr(engine, "_clock", lambda: float(next(ticks)))


def config(tmp_path, **changes):
    base = TrainConfig(epochs=3, batch_size=2, lr=1e-2, warmup_epochs=0.5, min_lr_ratio=0.1, out_dir=str(tmp_path),
                       progress=False, tensorboard=False)
    return replace(base, **changes)


def test_budget_stops_mid_epoch_validates_and_saves(tmp_path, one_second_steps):
    # 8 steps per epoch, 24 planned; a 5 s budget ends the run after step 5 of epoch 1
    result = fit(SmoothingTask(train_size=16, val_size=4), config(tmp_path, time_budget_min=5 / 60))
    assert result.global_step == 5 and result.epochs_completed == 1
    (row,) = result.history
    assert "val_loss" in row and math.isfinite(row["val_loss"])  # validated although val_every is not due
    state = load_checkpoint(result.last_checkpoint)
    assert state["global_step"] == 5 and state["train_seconds"] == 5.0
    # the schedule ran on the budget: all of it spent -> the cosine's end, not step 5's value
    assert math.isclose(row["lr"], 1e-2 * 0.1, rel_tol=1e-9)
    assert not math.isclose(row["lr"], 1e-2 * lr_factor(5, 4, 24, "cosine", 0.1))


def test_lr_follows_the_fraction_of_the_budget(tmp_path, one_second_steps):
    # 48 s budget for 24 planned steps: the schedule advances half a step per 1-s step
    result = fit(SmoothingTask(train_size=16, val_size=0),
                 config(tmp_path, time_budget_min=48 / 60, monitor="train_loss"))
    assert [r["step"] for r in result.history] == [8, 16, 24]  # epochs cap the run before the budget
    for row in result.history:
        virtual = int(24 * row["step"] / 48)
        assert math.isclose(row["lr"], 1e-2 * lr_factor(virtual, 4, 24, "cosine", 0.1), rel_tol=1e-9)


def test_resume_with_a_larger_budget_continues(tmp_path, one_second_steps):
    task = SmoothingTask(train_size=16, val_size=4)
    first = fit(task, config(tmp_path, time_budget_min=5 / 60))
    again = fit(SmoothingTask(train_size=16, val_size=4), config(tmp_path, time_budget_min=5 / 60),
                resume=first.last_checkpoint)
    assert again.global_step == 5  # the budget was spent: nothing more to do
    longer = fit(SmoothingTask(train_size=16, val_size=4), config(tmp_path, time_budget_min=12 / 60),
                 resume=first.last_checkpoint)
    assert longer.global_step == 12 and load_checkpoint(longer.last_checkpoint)["train_seconds"] == 12.0


def test_budget_must_be_positive():
    with pytest.raises(ValueError, match="time_budget_min"):
        TrainConfig(time_budget_min=0)
