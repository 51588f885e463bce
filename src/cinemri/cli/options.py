"""Command-line flags generated from a typed options dataclass, so defaults live once."""

from __future__ import annotations

import argparse
import dataclasses
import typing


def _flag_type(annotation):
    """The scalar type argparse should parse for a dataclass field annotation."""
    hints = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    kind = hints[0]
    return kind if kind in (int, float, str) else None


def add_dataclass_flags(parser: argparse.ArgumentParser, options_cls, skip: tuple[str, ...] = ()) -> None:
    """Add ``--field-name`` for every int/float/str/bool field of ``options_cls``."""
    hints = typing.get_type_hints(options_cls)
    group = parser.add_argument_group(f"{options_cls.__name__} (see its docstring)")
    for field in dataclasses.fields(options_cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        annotation = hints[field.name]
        if annotation is bool:
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"default: {field.default}")
            continue
        kind = _flag_type(annotation)
        if kind is None:
            continue
        group.add_argument(flag, dest=field.name, type=kind, default=None, metavar=kind.__name__.upper(),
                           help=f"default: {field.default}")


def collect_dataclass_flags(args: argparse.Namespace, options_cls) -> dict:
    """The flags the user actually gave, as keyword arguments for ``options_cls``."""
    names = {f.name for f in dataclasses.fields(options_cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def add_config_flags(parser: argparse.ArgumentParser,
                     config_help: str = "YAML file(s), merged in order",
                     set_help: str = "override a config value, e.g. train.lr=2e-3 (repeatable)") -> None:
    """``--config FILE...`` (required, merged in order) and repeatable ``--set KEY=VALUE`` -> args.overrides."""
    from pathlib import Path

    parser.add_argument("--config", nargs="+", required=True, type=Path, help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help)
