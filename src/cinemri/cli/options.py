"""Command-line flags generated from a typed options dataclass, so defaults live once."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping


def _flag_type(annotation) -> tuple[type | None, bool]:
    """(scalar type argparse should parse, whether the field is a tuple of them) for an annotation."""
    is_tuple = typing.get_origin(annotation) is tuple
    hints = [a for a in typing.get_args(annotation) if a is not type(None) and a is not Ellipsis] or [annotation]
    kind = hints[0]
    if typing.get_origin(kind) is tuple:  # Optional[tuple[...]]
        is_tuple, kind = True, typing.get_args(kind)[0]
    return (kind if kind in (int, float, str) else None), is_tuple


def _show_default(value) -> str:
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, tuple) \
        else str(value)


def add_dataclass_flags(parser: argparse.ArgumentParser, options_cls, helps: Mapping[str, str],
                        skip: tuple[str, ...] = ()) -> None:
    """Add ``--field-name`` for every int/float/str/bool field (and tuple of them) of ``options_cls``.

    helps: field name -> help text, one for every flag added (a field whose default is None
        says in its help what None means); the dataclass default is appended once, as
        "(default: ...)". A tuple field takes one or more values (``nargs="+"``).
    Raises ValueError naming a field without help text (a programming error, caught by the
    CLI tests).
    """
    hints = typing.get_type_hints(options_cls)
    group = parser.add_argument_group(f"{options_cls.__name__} (see its docstring)")
    for field in dataclasses.fields(options_cls):
        if field.name in skip:
            continue
        annotation = hints[field.name]
        kind, is_tuple = (bool, False) if annotation is bool else _flag_type(annotation)
        if kind is None:
            continue
        if not helps.get(field.name):
            raise ValueError(f"add_dataclass_flags: no help text for {options_cls.__name__}.{field.name}")
        text = helps[field.name].replace("%", "%%")
        if field.default is not None:
            text += f" (default: {_show_default(field.default)})".replace("%", "%%")
        flag = "--" + field.name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(flag, dest=field.name, type=kind, default=None, metavar=kind.__name__.upper(),
                               nargs="+" if is_tuple else None, help=text)


def collect_dataclass_flags(args: argparse.Namespace, options_cls) -> dict:
    """The flags the user actually gave, as keyword arguments for ``options_cls`` (lists as tuples)."""
    names = {f.name for f in dataclasses.fields(options_cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in names and v is not None}


def add_config_flags(parser: argparse.ArgumentParser,
                     config_help: str = "YAML file(s), merged in order",
                     set_help: str = "override a config value, e.g. train.lr=2e-3 (repeatable)") -> None:
    """``--config FILE...`` (required, merged in order) and repeatable ``--set KEY=VALUE`` -> args.overrides."""
    from pathlib import Path

    parser.add_argument("--config", nargs="+", required=True, type=Path, help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help)


def add_training_data_flag(parser: argparse.ArgumentParser, sources: str) -> None:
    """``--data PATH...``: the training sources, replacing the config's ``data.train``."""
    parser.add_argument("--data", nargs="+", default=None, metavar="PATH",
                        help=f"training sources ({sources}); replaces the config's data.train")


def overrides_with_data(args: argparse.Namespace) -> list[str]:
    """``args.overrides`` plus ``data.train=[...]`` when ``--data`` was given."""
    import json

    overrides = list(args.overrides)
    if args.data:
        overrides.append("data.train=" + json.dumps([str(p) for p in args.data]))
    return overrides


def print_epoch(row) -> None:
    """One line per training epoch, flushed, so progress shows in logs and pipes too."""
    from cinemri.train.progress import format_metrics

    print(format_metrics(row), flush=True)
