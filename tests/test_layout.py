"""The layout's rules that a reader of one file cannot see: no private names across packages."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src" / "cinemri"


def _package(module: str) -> str:
    """The part of cinemri a dotted module name belongs to: "cinemri.io.acdc" -> "io"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


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
