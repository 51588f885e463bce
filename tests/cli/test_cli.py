"""The `cinemri` command: help everywhere, one-line errors, and a tiny end-to-end run."""

import json
import subprocess
import sys

import pytest

from cinemri.cli import build_parser, main

COMMANDS = ["phantom", "show", "info", "demo", "recon", "seg", "analyze", "study", "export-weights"]
SUBCOMMANDS = ["phantom", "show", "info", "demo", "recon train", "recon eval", "recon predict", "recon ablate",
               "seg train", "seg eval", "seg predict", "seg ablate", "seg grad-analysis", "analyze",
               "study acceleration", "export-weights"]


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cinemri.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_command():
    result = _run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command.split(), "--help"])
    assert exit_info.value.code == 0
    assert "usage: cinemri " + command in capsys.readouterr().out


def test_bad_path_is_one_clear_line(tmp_path):
    missing = tmp_path / "nope.h5"
    result = _run("info", str(missing))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cinemri: error:") and "nope.h5" in lines[0]


def test_bad_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "garbage.h5"
    bad.write_bytes(b"this is not hdf5")
    result = _run("info", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "garbage.h5" in result.stderr


def test_bad_option_value_exits_nonzero(tmp_path):
    assert main(["phantom", "--out", str(tmp_path), "--cases", "0"]) == 2


def test_phantom_show_info_round_trip(tmp_path, capsys):
    out = tmp_path / "phantom"
    assert main(["phantom", "--out", str(out), "--cases", "2", "--seed", "3", "--height", "64", "--width", "64",
                 "--frames", "8", "--slices", "6", "--coils", "4"]) == 0
    split = json.loads((out / "split.json").read_text())
    names = sorted(n for part in split.values() for n in part)
    assert len(names) == 2
    case_file = out / f"{names[0]}.h5"
    capsys.readouterr()
    assert main(["info", str(case_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["slices"], info["frames"], info["coils"], info["readout"], info["phase_encodes"]) == (6, 8, 4, 64, 64)
    assert info["ed_frame"] == 0 and set(info["labels"]) <= {0, 1, 2, 3}
    assert info["indices"]["lv_edv_ml"] > info["indices"]["lv_esv_ml"] > 0
    assert main(["show", str(case_file), "--out", str(tmp_path / "fig")]) == 0
    written = capsys.readouterr().out.split()
    assert any(p.endswith(".png") for p in written) and any(p.endswith(".gif") for p in written)


def _parsers(parser=None, path=("cinemri",)):
    """(command path, parser) of the top level and every subcommand, walked from the parser itself."""
    import argparse

    parser = parser or build_parser()
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_help_shows_each_default_once_and_every_option_has_help():
    import argparse
    import re

    for command, parser in _parsers():
        text = parser.format_help()
        flat = re.sub(r"\s+", " ", text)
        assert "(default: None)" not in flat, command
        assert not re.search(r"\(default:[^()]*(\([^()]*\)[^()]*)*\)\s*\(default:", flat), command
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            assert (action.help or "").strip(), f"{command} {action.option_strings or action.dest} has no help"
            if action.required:
                assert "(default" not in parser._get_formatter()._get_help_string(action), (command, action.dest)


def test_help_examples_run_outside_this_repository():
    import re

    from cinemri.phantom.dataset import case_seeds

    real_names = {f"phantom_{seed:05d}" for seed in case_seeds(0, 200)}
    for command, parser in _parsers():
        epilog = parser.epilog or ""
        for bad in ("../shared", "shared/data", "src/cinemri", "docs/figures"):
            assert bad not in epilog, (command, bad)
        for name in re.findall(r"phantom_\d+", epilog):
            assert name in real_names, (command, name)  # a file `cinemri phantom --seed 0` really writes


def test_phantom_range_options_take_one_or_two_values(tmp_path):
    from cinemri.io import read_any

    small = ["--cases", "1", "--height", "48", "--width", "40", "--frames", "4", "--slices", "3", "--coils", "1",
             "--supersample", "1"]
    assert main(["phantom", "--out", str(tmp_path / "a"), *small, "--fov-mm", "320", "--slice-distance-mm", "9"]) == 0
    case = read_any(next((tmp_path / "a").glob("phantom_*.h5")))
    assert case.spacing == pytest.approx((9.0, 320 / 48, 320 / 48))
    assert main(["phantom", "--out", str(tmp_path / "b"), *small, "--fov-mm", "300", "310",
                 "--slice-distance-mm", "6", "7"]) == 0
    dz, dy, _ = read_any(next((tmp_path / "b").glob("phantom_*.h5"))).spacing
    assert 6 <= dz <= 7 and 300 / 48 <= dy <= 310 / 48


@pytest.mark.parametrize("flags, words", [
    (["--height", "100000"], "height"), (["--fov-mm", "1", "2", "3"], "fov_mm"), (["--coils", "1000"], "coils"),
    (["--fov-mm", "100", "--height", "512"], "0.3"), (["--cases", "10000000"], "num_cases"),
])
def test_phantom_bad_sizes_are_one_line_before_any_work(tmp_path, flags, words):
    result = _run("phantom", "--out", str(tmp_path / "out"), *flags)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cinemri: error:") and words in lines[0]


def test_phantom_write_error_is_one_line_not_a_crash(tmp_path):
    """A full disk (here: a file-size limit, the same failing write) ends in one line, rc 2, nothing left."""
    import resource

    def limit_file_size():  # runs in the child: writes past 64 kB fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "cinemri.cli", "phantom", "--out", str(out), "--cases", "1",
                             "--height", "48", "--width", "48", "--frames", "4", "--slices", "3", "--coils", "2",
                             "--supersample", "1"], capture_output=True, text=True, preexec_fn=limit_file_size)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "phantom_" in lines[0]
    assert list(out.iterdir()) == []  # no half-written case, no temporary file


# ------------------------------------------------------------- --out checked before any work

OUT_COMMANDS = {  # every command that writes a folder; inputs that do not exist, so any work would fail first
    "phantom": ["phantom", "--cases", "1"],
    "show": ["show", "missing_case.h5"],
    "analyze": ["analyze", "missing_case.h5"],
    "recon eval": ["recon", "eval", "--checkpoint", "missing.pt", "--data", "missing_data"],
    "recon ablate": ["recon", "ablate", "--config", "missing.yaml"],
    "seg eval": ["seg", "eval", "--checkpoint", "missing.pt", "--data", "missing_data"],
    "seg predict": ["seg", "predict", "missing_case.h5", "--checkpoint", "missing.pt"],
    "seg ablate": ["seg", "ablate", "--config", "missing.yaml"],
    "seg grad-analysis": ["seg", "grad-analysis", "--config", "missing.yaml"],
    "study acceleration": ["study", "acceleration", "--data", "missing_data"],
}


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_out_is_checked_before_any_work(command, where, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the missing inputs are missing here
    file = tmp_path / "taken"
    file.write_text("not a folder\n")
    out = file if where == "a file" else file / "run"
    assert main([*OUT_COMMANDS[command], "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cinemri: error: --out"), lines
    assert "is a file" in lines[0] and "missing" not in lines[0]  # the folder, not the inputs, was refused
    assert file.read_text() == "not a folder\n" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_phantom_writes_cmrxrecon_cines_that_read_back_to_the_simulated_kspace(tmp_path, capsys):
    import numpy as np

    from cinemri.io import read_any, read_cmrxrecon
    from cinemri.phantom import generate_case, simulate_kspace

    small = {"height": 40, "width": 34, "frames": 4, "slices": 3, "coils": 2, "supersample": 1}
    flags = [x for key, value in small.items() for x in (f"--{key}", str(value))]
    out = tmp_path / "cmrx"
    assert main(["phantom", "--out", str(out), "--cases", "1", "--seed", "2", "--format", "cmrxrecon", *flags]) == 0
    (mat,) = sorted(out.glob("*.mat"))
    assert sorted(p.name for p in out.iterdir()) == [mat.name, "split.json"]
    assert mat.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    seed = int(mat.stem.split("_")[1])
    truth = generate_case(seed, **small, group="NOR")
    case = read_cmrxrecon(mat)
    assert case.name == mat.stem and case.mask is None and case.spacing_assumed
    assert case.kspace.shape == (3, 2, 4, 40, 34)  # (S, C, T, H = kx, W = ky)
    np.testing.assert_array_equal(case.kspace, simulate_kspace(truth, seed=seed))
    assert read_any(mat).kspace.shape == case.kspace.shape  # format detection reads it too
    capsys.readouterr()
    assert main(["info", str(mat)]) == 0
    assert "cmrxrecon" in capsys.readouterr().out.lower()


def test_mask_and_cs_defaults_come_from_their_options_dataclasses():
    """acceleration, pattern and centre lines live in MaskOptions, the CS settings in CSOptions;
    every flag, help text and options class that has them shows the same values."""
    import argparse
    import inspect
    import re

    from cinemri.pipeline import AnalyzeOptions
    from cinemri.pipeline.reconstruct import reconstruct_case
    from cinemri.pipeline.study import StudyOptions
    from cinemri.cli import study_command
    from cinemri.cli.options import collect_dataclass_flags
    from cinemri.data import ReconOptions
    from cinemri.recon.config import AblationSection, ReconDataSection
    from cinemri.tasks.recon.evaluate import EvalOptions
    from cinemri.masks import MaskOptions, cartesian_mask
    from cinemri.recon import CSOptions, cs_tv

    masks, cs = MaskOptions(), CSOptions()
    expected = {"acceleration": masks.acceleration, "pattern": masks.pattern, "center_lines": masks.center_lines,
                "cs_iters": cs.num_iters, "cs_lambda_t": cs.lambda_t, "cs_lambda_s": cs.lambda_s}
    seen = set()
    for command, parser in _parsers():
        for action in parser._actions:
            if action.dest not in expected or isinstance(action, argparse._SubParsersAction):
                continue
            seen.add(action.dest)
            text = parser._get_formatter()._get_help_string(action) % {"default": action.default}
            shown = re.search(r"\(default: ([^()]*)\)", re.sub(r"\s+", " ", text))
            if action.default is not None:  # a default of the parser itself
                assert action.default == expected[action.dest], (command, action.dest)
            if shown and not shown.group(1).startswith("the "):  # "(default: the checkpoint's ...)" is not a value
                assert float(shown.group(1)) == expected[action.dest] if action.type in (int, float) \
                    else shown.group(1) == expected[action.dest], (command, action.dest, shown.group(1))
    assert seen == set(expected)

    parser = build_parser()
    assert parser.parse_args(["demo"]).acceleration == masks.acceleration
    args = parser.parse_args(["recon", "eval", "--checkpoint", "best.pt", "--data", "cases"])
    options = EvalOptions(**collect_dataclass_flags(args, EvalOptions))
    assert (options.cs_lambda_t, options.cs_lambda_s, options.cs_iters) == (cs.lambda_t, cs.lambda_s, cs.num_iters)
    study = study_command.options_from_args(parser.parse_args(["study", "acceleration", "--data", "d", "--out", "o"]))
    assert (study.pattern, study.center_lines, study.cs_iters) == (masks.pattern, masks.center_lines, cs.num_iters)
    assert study == StudyOptions()
    for section in (ReconOptions(), ReconDataSection()):
        assert (section.acceleration, section.pattern, section.center_lines) == \
            (masks.acceleration, masks.pattern, masks.center_lines)
    assert AnalyzeOptions().cs_iters == AblationSection().cs_iters == cs.num_iters
    signature = inspect.signature(cartesian_mask).parameters
    assert (signature["pattern"].default, signature["center_lines"].default) == (masks.pattern, masks.center_lines)
    signature = inspect.signature(cs_tv).parameters
    assert tuple(signature[n].default for n in ("lambda_t", "lambda_s", "num_iters")) == \
        (cs.lambda_t, cs.lambda_s, cs.num_iters)
    assert inspect.signature(reconstruct_case).parameters["cs_iters"].default == cs.num_iters
    from cinemri.physics import CALIBRATION_LINES, estimate_coil_maps

    assert ReconOptions().calib_lines == CALIBRATION_LINES
    assert inspect.signature(estimate_coil_maps).parameters["center_lines"].default == CALIBRATION_LINES
