"""Checkpoints: atomic writes, safe loading, clear errors for bad files, RNG round trip."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cinemri.train import check_model, load_checkpoint, load_model_state, save_checkpoint
from cinemri.seg.models import UNet2D
from cinemri.train.checkpoint import REQUIRED_KEYS, capture_rng, restore_rng, widen_input_channels
from cinemri.train.example import TinyNet


def minimal_state(model: torch.nn.Module) -> dict:
    opt = torch.optim.AdamW(model.parameters())
    return {"format": "cinemri-checkpoint", "format_version": 1, "cinemri_version": "0.1.0",
            "model_name": "tinynet", "model_args": {"width": 4, "dropout": 0.0}, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": {}, "scaler": {}, "epoch": 1, "global_step": 3,
            "best_metric": None, "best_epoch": None, "rng": [capture_rng()], "config": {"train": {"lr": 0.1}}}


def test_save_is_atomic_and_weights_only_loadable(tmp_path):
    model = TinyNet(width=4)
    path = tmp_path / "ck" / "last.pt"
    save_checkpoint(path, minimal_state(model))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left
    raw = torch.load(path, weights_only=True)
    assert set(REQUIRED_KEYS) <= set(raw)
    state = load_checkpoint(path)
    other = TinyNet(width=4)
    load_model_state(other, state, path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, minimal_state(TinyNet(width=4)))
    before = path.read_bytes()

    def crashing_save(obj, handle):
        handle.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, minimal_state(TinyNet(width=4)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated", "not_dict", "no_format", "missing_keys"])
def test_bad_checkpoints_raise_value_error_naming_file(tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    good = minimal_state(TinyNet(width=4))
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("model: weights\n")
    elif kind == "truncated":
        save_checkpoint(path, good)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "not_dict":
        torch.save([1, 2, 3], path)
    elif kind == "no_format":
        torch.save({"model": good["model"]}, path)
    elif kind == "missing_keys":
        del good["optimizer"], good["rng"]
        torch.save(good, path)
    with pytest.raises(ValueError, match=rf"checkpoint .*{kind}\.pt") as info:
        load_checkpoint(path)
    if kind == "missing_keys":
        assert "optimizer" in str(info.value) and "rng" in str(info.value)


def test_unsafe_pickle_is_rejected(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cinemri-checkpoint", "payload": Path("/etc")}, path)  # not weights_only-safe
    with pytest.raises(ValueError, match=r"evil\.pt is not a readable torch file"):
        load_checkpoint(path)


def test_wrong_model_rejected(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, minimal_state(TinyNet(width=4)))
    state = load_checkpoint(path)
    check_model(state, path, "tinynet", {"width": 4, "dropout": 0.0})
    with pytest.raises(ValueError, match=r"last\.pt was written with other model args \(width: checkpoint 4 vs 6\)"):
        check_model(state, path, "tinynet", {"width": 6, "dropout": 0.0})
    with pytest.raises(ValueError, match=r"last\.pt holds model 'tinynet', expected 'unet'"):
        check_model(state, path, "unet", {"width": 4, "dropout": 0.0})
    with pytest.raises(ValueError, match=r"last\.pt: weights do not fit the model"):
        load_model_state(TinyNet(width=6), state, path)


def test_weight_free_args_do_not_block_loading(tmp_path):
    """channels_last (memory layout) and init (the cascade's starting image) change how a model
    runs, not its weights: a checkpoint written with them loads into a model built without them."""
    path = tmp_path / "last.pt"
    state = minimal_state(TinyNet(width=4))
    state["model_args"] = {"width": 4, "dropout": 0.0, "channels_last": True, "init": "view_sharing"}
    save_checkpoint(path, state)
    check_model(load_checkpoint(path), path, "tinynet", {"width": 4, "dropout": 0.0})
    check_model(load_checkpoint(path), path, "tinynet", {"width": 4, "dropout": 0.0, "channels_last": False})
    check_model(load_checkpoint(path), path, "tinynet",  # a CS start with spatial TV fine-tunes the same weights
                {"width": 4, "dropout": 0.0, "init": "cs_tv", "init_iters": 20, "init_lambda_s": 0.0005})
    with pytest.raises(ValueError, match=r"width: checkpoint 4 vs 6"):
        check_model(load_checkpoint(path), path, "tinynet", {"width": 6, "dropout": 0.0})


def test_a_checkpoint_starts_a_model_with_more_input_channels_that_computes_the_same(tmp_path):
    """Fine-tuning a segmenter given one more image: the added channel starts at zero weight, so the
    widened U-Net's logits equal the original's whatever the new channel holds."""
    torch.manual_seed(0)
    args = {"base_width": 8, "depth": 2, "norm": "instance"}
    narrow = UNet2D(in_channels=1, **args).eval()
    path = tmp_path / "narrow.pt"
    state = minimal_state(narrow)
    state["model_name"], state["model_args"] = "unet", dict(args)
    save_checkpoint(path, state)
    wide = UNet2D(in_channels=2, **args).eval()
    wide_args = {**args, "in_channels": 2}
    widened = widen_input_channels(load_checkpoint(path), wide, wide_args, path)
    check_model(widened, path, "unet", wide_args)
    load_model_state(wide, widened, path)
    image, other = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(wide(torch.cat([image, other], 1)), narrow(image))
    # the same channel count passes through untouched; a model whose input no weight reads is refused
    assert widen_input_channels(load_checkpoint(path), narrow, args, path)["model_args"] == args
    with pytest.raises(ValueError, match=r"narrow\.pt: no weight reads its 1 input channel"):
        widen_input_channels(load_checkpoint(path), TinyNet(width=4), {"in_channels": 3}, path)


def test_rng_round_trip_survives_save_and_load(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    rng = capture_rng()
    expected = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random())
    path = tmp_path / "last.pt"
    state = minimal_state(TinyNet(width=4))
    state["rng"] = [rng]
    save_checkpoint(path, state)
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restore_rng(load_checkpoint(path)["rng"][0])
    got = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and got[3] == expected[3]
