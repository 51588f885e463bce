"""Reconstructed training cases (cinemri.pipeline.recon_set) and the benchmarks' slice acquisition."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from cinemri.data.simulate import undersampled_slice
from cinemri.case import Case
from cinemri.io import read_case
from cinemri.pipeline.recon_set import (cascade_slice_method, reconstruct_slices, reconstructed_case,
                                        slice_method, write_reconstructed_set)
from cinemri.recon import ResNet3D
from cinemri.recon.cascade import Cascade
from cinemri.tasks.seg.data import discover_cases

pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py


def _labelled_case(name: str = "patient007", seed: int = 0) -> Case:
    """A magnitude cine (S=2, T=5, 16 x 48) labelled at frames 1 (ED) and 3 (ES)."""
    rng = np.random.default_rng(seed)
    image = (rng.random((2, 5, 16, 48)) * 200).astype(np.complex64)
    labels = np.zeros((2, 5, 16, 48), np.uint8)
    labels[:, [1, 3], 4:10, 10:30] = rng.integers(0, 4, size=(2, 2, 6, 20))
    return Case(name=name, spacing=(8.0, 1.5, 1.5), image=image, labels=labels, ed_frame=1, es_frame=3,
                labelled_frames=(1, 3), group="NOR")


def _centred_fft2(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def test_single_coil_slice_is_the_masked_fft_of_the_magnitude():
    magnitude = np.random.default_rng(0).random((4, 12, 48)).astype(np.float32)  # (T, H, W)
    kspace, mask, maps = undersampled_slice(magnitude, 5.0, seed=3)
    assert kspace.shape == (1, 1, 4, 12, 48) and mask.shape == (1, 1, 4, 1, 48) and maps.shape == (1, 1, 12, 48)
    expected = _centred_fft2(magnitude) * mask[0, 0].numpy()  # (T, H, W)
    np.testing.assert_allclose(kspace[0, 0].numpy(), expected, atol=1e-5)
    assert mask.sum(dim=-1).squeeze().tolist() == [10] * 4  # round(48 / 5) lines per frame
    again, mask_again, _ = undersampled_slice(magnitude, 5.0, seed=3)
    assert torch.equal(mask, mask_again) and torch.equal(kspace, again)
    coils, mask8, maps8 = undersampled_slice(magnitude, 5.0, seed=3, coils=8)
    assert coils.shape == (1, 8, 4, 12, 48)
    torch.testing.assert_close(maps8.abs().square().sum(dim=1), torch.ones(1, 12, 48))
    assert (coils * ~mask8).abs().max() == 0  # nothing where a line was not sampled


def test_full_sampling_reconstructs_the_magnitude_and_5x_does_not():
    magnitude = np.random.default_rng(1).random((2, 4, 12, 48)).astype(np.float32)  # (S, T, H, W)
    image, seconds = reconstruct_slices(magnitude, slice_method("zero_filled"), 1.0, seeds=[0, 1])
    np.testing.assert_allclose(image, magnitude, atol=1e-5)
    assert image.dtype == np.float32 and seconds >= 0
    undersampled, _ = reconstruct_slices(magnitude, slice_method("zero_filled"), 5.0, seeds=[0, 1])
    assert np.abs(undersampled - magnitude).mean() > 0.05


def test_cascade_slice_method_is_scale_free():
    """The cascade sees k-space divided by its zero-filled 99th percentile: scaling the data
    scales the image and nothing else."""
    torch.manual_seed(0)
    model = Cascade(lambda: ResNet3D(width=3, num_blocks=1), num_stages=2).eval()
    kspace, mask, maps = undersampled_slice(np.random.default_rng(2).random((4, 12, 48)).astype(np.float32), 5.0, 0)
    run = cascade_slice_method(model)
    torch.testing.assert_close(run(kspace * 1000.0, mask, maps), run(kspace, mask, maps) * 1000.0,
                               rtol=1e-4, atol=1e-2)


def test_reconstructed_case_keeps_the_labelled_frames_with_their_labels():
    case = _labelled_case()
    full = reconstructed_case(case, "zero_filled", acceleration=1.0)
    assert full.name == "patient007_r1_zero_filled"
    assert (full.ed_frame, full.es_frame, full.labelled_frames) == (0, 1, (0, 1))
    np.testing.assert_array_equal(full.labels, case.labels[:, [1, 3]])
    np.testing.assert_allclose(full.image.real, np.abs(case.image[:, [1, 3]]), rtol=1e-5, atol=1e-3)
    assert full.image.dtype == np.complex64 and not full.image.imag.any()
    fivefold = reconstructed_case(case, "cs", acceleration=5.0, cs_iters=3)
    assert fivefold.name == "patient007_r5_cs" and fivefold.image.shape == full.image.shape
    assert not np.allclose(fivefold.image, full.image, atol=1e-2)
    with pytest.raises(ValueError, match="checkpoint"):
        reconstructed_case(case, "model")
    with pytest.raises(ValueError, match="patient007.*labelled frames"):
        reconstructed_case(replace(case, labels=None), "cs")


def test_written_set_is_a_training_source_and_a_rerun_keeps_its_files(tmp_path):
    loaders = [lambda i=i: _labelled_case(f"patient00{i}", seed=i) for i in (1, 2)]
    out = tmp_path / "set"
    files = write_reconstructed_set(loaders, out, ["zero_filled", "cs"], cs_iters=2)
    assert [f.name for f in files] == ["patient001_r5_zero_filled.h5", "patient001_r5_cs.h5",
                                       "patient002_r5_zero_filled.h5", "patient002_r5_cs.h5"]
    assert json.loads((out / "split.json").read_text()) == {"train": [f.stem for f in files]}
    refs = discover_cases([out])
    assert sorted(r.name for r in refs) == sorted(f.stem for f in files) and {r.role for r in refs} == {"train"}
    back = read_case(files[1])
    np.testing.assert_array_equal(back.labels, _labelled_case("patient001", seed=1).labels[:, [1, 3]])
    assert (back.ed_frame, back.es_frame, back.group) == (0, 1, "NOR")
    stamp = files[0].stat().st_mtime_ns
    write_reconstructed_set(loaders, out, ["zero_filled", "cs"], cs_iters=2)
    assert files[0].stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="methods"):
        write_reconstructed_set([], out, ["bart"])
    with pytest.raises(ValueError, match="checkpoint"):
        write_reconstructed_set([], out, ["model"])


def test_cli_writes_only_the_train_cases_of_a_split(tmp_path, capsys):
    from cinemri.cli import main
    from cinemri.io import write_case

    source = tmp_path / "cases"
    source.mkdir()
    for i in (1, 2):
        write_case(_labelled_case(f"patient00{i}", seed=i), source / f"patient00{i}.h5")
    split = tmp_path / "split.txt"
    split.write_text("train patient001\nval patient002\n")
    out = tmp_path / "set"
    assert main(["seg", "recon-set", "--data", str(source), "--split", str(split), "--methods", "zero_filled",
                 "--out", str(out)]) == 0
    assert json.loads((out / "split.json").read_text()) == {"train": ["patient001_r5_zero_filled"]}
    assert "wrote 1 cases" in capsys.readouterr().out
    split.write_text("train patient003\n")
    assert main(["seg", "recon-set", "--data", str(source), "--split", str(split), "--out", str(out)]) != 0
    assert "no case" in capsys.readouterr().err
