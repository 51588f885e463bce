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
