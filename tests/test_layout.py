"""The layout's rules that a reader of one file cannot see: imports follow the data flow, no
private names across packages, labels declared once."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "cinemri"


def _package(module: str) -> str:
    """The part of cinemri a dotted module name belongs to: "cinemri.io.acdc" -> "io"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imported_packages(path: Path) -> set[str]:
    """The parts of cinemri that ``path`` imports anywhere (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {_package(name) for name in names if name.startswith("cinemri.")}
    return found


# Data flows one way (DESIGN.md): io/phantom -> data -> recon/seg (models, inference) ->
# metrics/clinical -> tasks or pipeline -> report -> cli. What each part must never import:
APPLICATIONS = {"tasks", "pipeline", "cli"}
NEVER_IMPORTS = {
    **{part: APPLICATIONS for part in ("case", "labels", "files", "errors", "physics", "masks", "clinical",
                                       "plausibility", "metrics", "train", "report")},
    "io": APPLICATIONS | {"data", "recon", "seg", "train"},  # io never imports models
    "phantom": APPLICATIONS | {"data", "recon", "seg", "train"},
    "data": APPLICATIONS | {"recon", "seg"},
    "recon": APPLICATIONS | {"seg"},
    "seg": APPLICATIONS | {"recon"},
    "pipeline": {"tasks", "cli"},  # files in, files out through recon/seg inference; never the tasks
    "tasks": {"pipeline", "cli"},  # training and evaluation; the end-to-end pipeline is its sibling
}


def test_every_part_of_the_package_is_placed_in_the_data_flow():
    parts = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in SRC.glob("*") if p.suffix == ".py" or
             (p.is_dir() and (p / "__init__.py").is_file())}
    assert parts - {"__init__"} - {"cli"} == set(NEVER_IMPORTS)


def test_imports_follow_the_data_flow():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        here = path.relative_to(SRC).parts[0].removesuffix(".py")
        wrong = _imported_packages(path) & NEVER_IMPORTS.get(here, set())
        offenders += [f"{path.relative_to(SRC)} imports cinemri.{there}" for there in sorted(wrong)]
    assert offenders == []


def test_the_import_scan_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from cinemri.tasks.seg import task\n    import cinemri.cli.options\n")
    assert _imported_packages(module) == {"tasks", "cli"}


def test_no_private_name_is_used_across_packages():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        here = _package(".".join(("cinemri", *path.relative_to(SRC).with_suffix("").parts)))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cinemri"):
                there = _package(node.module)
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                private += [p for p in node.module.split(".") if p.startswith("_")]
                if there != here and private:
                    offenders.append(f"{path.relative_to(SRC)}: from {node.module} import {private}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("case", "self_case", "c"):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {owner.id}.{node.attr}")
    assert offenders == []


def test_case_shape_is_public():
    from cinemri.case import Case

    case = Case(name="x", spacing=(8.0, 1.5, 1.5), image=np.zeros((2, 3, 5, 4), np.complex64))
    assert case.shape == (2, 3, 5, 4) and (case.num_slices, case.num_frames) == (2, 3)
    kspace_only = Case(name="k", spacing=(8.0, 1.5, 1.5), kspace=np.zeros((2, 4, 3, 5, 6), np.complex64))
    assert kspace_only.shape == (2, 3, 5, 6)  # (S, T, H, W) from (S, C, T, H, W)


LABEL_CONSTANTS = {"BACKGROUND", "RV", "MYO", "LV", "NUM_CLASSES", "CLASS_NAMES", "STRUCTURES", "DESCRIPTIONS",
                   "ACDC_LABELS", "MNMS_TO_ACDC", "LABEL_VALUES"}
STRUCTURE_NAMES = {"rv", "myo", "lv"}


def _assigned_names(node: ast.AST) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {n.id.lstrip("_") for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _label_declarations(path: Path) -> list[str]:
    """Where ``path`` declares labels itself: assigns a label constant's name at module level, or
    spells the three structure names in one literal (tuple, list, set, dict keys)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and _assigned_names(node) & LABEL_CONSTANTS:
            found.append(f"{path.name}:{node.lineno}: {sorted(_assigned_names(node) & LABEL_CONSTANTS)}")
    for node in ast.walk(tree):
        elements = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            flat = [e.elts[0] if isinstance(e, ast.Tuple) and e.elts else e for e in elements if e is not None]
            words = {e.value for e in flat if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if STRUCTURE_NAMES <= words:
                found.append(f"{path.name}:{node.lineno}: literal {sorted(words & STRUCTURE_NAMES)}")
    return found


def test_labels_are_declared_once():
    labels = SRC / "labels.py"
    assert _label_declarations(labels)  # the scan sees the one declaration
    others = [p for p in sorted(SRC.rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py")) if p != labels]
    offenders = [f"{p.relative_to(REPO)} {hit}" for p in others for hit in _label_declarations(p)]
    assert offenders == []

