"""Typed experiment configuration: dataclasses, YAML loading, composition, overrides.

Every default lives once, in a dataclass field. YAML files and ``--set`` overrides only
change values; an unknown key or a value of the wrong type is a ``ValueError`` that names
the key and where it came from (file or override).

A task describes its whole experiment as a dataclass whose fields are sections, each a
dataclass of its own; the engine's section is always :class:`TrainConfig` under ``train``::

    @dataclass
    class ReconExperiment:
        train: TrainConfig = field(default_factory=TrainConfig)
        model: UNetSection = field(default_factory=UNetSection)
        data: ReconDataSection = field(default_factory=ReconDataSection)

    cfg = load_config(ReconExperiment, ["configs/base.yaml", "configs/unet.yaml"],
                      overrides=["train.lr=1e-3", "model.cbam=false"])

:func:`make_experiment` builds such a dataclass from a mapping of section classes when a
task prefers to register its sections at run time.

YAML is read with PyYAML's safe loader plus one change: numbers like ``1e-3`` (YAML 1.2
floats without a dot) are read as floats, not strings. A file may name other files under
the key ``base`` (a path or a list of paths, relative to the file); they are merged first,
in order, and the file's own keys win. Mappings merge key by key; any other value replaces.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union

import yaml

T = TypeVar("T")

BASE_KEY = "base"


@dataclass
class TrainConfig:
    """Settings of the training engine (:func:`cinemri.train.fit`).

    The LR follows a linear warm-up over ``warmup_epochs`` (fractions allowed; counted
    in optimizer steps) from ``lr / warmup_steps`` to ``lr``, then ``schedule``:
    ``"cosine"`` decays to ``lr * min_lr_ratio`` at the last step, ``"constant"`` stays;
    ``"onecycle"`` instead rises along a cosine from ``lr * start_lr_ratio`` to ``lr`` over
    the warm-up and falls along a cosine to ``lr * min_lr_ratio`` (torch's OneCycleLR).
    ``amp``: ``"auto"`` is bf16 on a CUDA device that supports it, else fp16 on CUDA,
    and off on CPU; ``"bf16"`` on a CPU without native bf16 kernels (AVX2 only) is fp32, the
    faster precision there (``cinemri.train.engine.cpu_computes_bf16``); ``"fp16"`` needs CUDA
    and uses a gradient scaler.
    ``grad_clip``: max global L2 norm of the gradients; ``None`` disables clipping.
    ``monitor``/``monitor_mode``: the metric that decides ``best_name``, a column of the
    metrics table: ``val_<key>`` for a key returned by the task's ``validate``, or
    ``train_loss``/``train_<key>``; the last epoch always goes to ``last_name``.
    ``max_steps_per_epoch``: cap on optimizer steps per epoch (smoke runs); ``None`` = all.
    ``init_from``: a checkpoint whose weights start the run (fine-tuning: the optimizer,
    schedule and epoch count start afresh; the model and its args must match, except a model with
    more ``in_channels``, whose added inputs start at zero weight). ``--resume``
    takes precedence.
    ``time_budget_min``: minutes of training (the steps, data loading included; validation
    not) after which the run stops: the step that crosses it ends the epoch, which is then
    validated and saved. The LR schedule then runs on the fraction of the budget spent instead
    of the step count (the warm-up and decay keep their shares of ``epochs`` x steps), so runs
    compared at equal wall time each complete their schedule. ``epochs`` stays an upper bound.
    """

    epochs: int = 50
    batch_size: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 1.0
    schedule: Literal["cosine", "constant", "onecycle"] = "cosine"
    min_lr_ratio: float = 0.0
    start_lr_ratio: float = 0.04
    grad_clip: float | None = 1.0
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    out_dir: str = "runs/default"
    val_every: int = 1
    monitor: str = "val_loss"
    monitor_mode: Literal["min", "max"] = "min"
    last_name: str = "last.pt"
    best_name: str = "best.pt"
    metrics_name: str = "metrics.csv"
    max_steps_per_epoch: int | None = None
    progress: bool = True
    tensorboard: bool = True
    find_unused_parameters: bool = False
    init_from: str | None = None
    time_budget_min: float | None = None

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "val_every": self.val_every}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"train.{name} must be >= 1, got {value!r}")
        nonneg = {"lr": self.lr, "weight_decay": self.weight_decay, "warmup_epochs": self.warmup_epochs,
                  "min_lr_ratio": self.min_lr_ratio, "start_lr_ratio": self.start_lr_ratio,
                  "num_workers": self.num_workers}
        for name, value in nonneg.items():
            if value < 0:
                raise ValueError(f"train.{name} must be >= 0, got {value!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"train.grad_clip must be > 0 or null, got {self.grad_clip!r}")
        if self.time_budget_min is not None and not self.time_budget_min > 0:
            raise ValueError(f"train.time_budget_min must be > 0 or null, got {self.time_budget_min!r}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(f"train.max_steps_per_epoch must be >= 1 or null, got {self.max_steps_per_epoch!r}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"train.betas must lie in [0, 1), got {self.betas!r}")
        for name in ("last_name", "best_name", "metrics_name"):
            value = getattr(self, name)
            if not value or Path(value).name != value:
                raise ValueError(f"train.{name} must be a plain file name, got {value!r}")


@dataclass
class Experiment:
    """The smallest experiment: only the engine's section. Tasks define their own."""

    train: TrainConfig = field(default_factory=TrainConfig)


def make_experiment(name: str, sections: Mapping[str, type]) -> type:
    """A dataclass with ``train: TrainConfig`` plus one field per section class.

    Each section class must be a dataclass whose fields all have defaults.
    """
    if "train" in sections:
        raise ValueError("sections: 'train' is reserved for TrainConfig")
    fields: list[tuple[str, type, Any]] = [("train", TrainConfig, field(default_factory=TrainConfig))]
    for key, cls in sections.items():
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"sections[{key!r}] must be a dataclass type, got {cls!r}")
        fields.append((key, cls, field(default_factory=cls)))
    return dataclasses.make_dataclass(name, fields)


# ---------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-3`` as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """The Python value of a YAML scalar or flow collection, e.g. ``"1e-3"`` -> 0.001."""
    return yaml.load(text, Loader=_Loader)


def _read_yaml(path: Path, chain: tuple[Path, ...], origins: dict[tuple[str, ...], str]) -> dict:
    """The merged mapping of ``path`` and its ``base`` files (bases first)."""
    path = path.resolve()
    if path in chain:
        raise ValueError(f"config file {path}: circular 'base' chain {' -> '.join(map(str, chain + (path,)))}")
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path}: invalid YAML ({err})") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: top level must be a mapping, got {type(data).__name__}")
    merged: dict = {}
    bases = data.pop(BASE_KEY, [])
    for base in [bases] if isinstance(bases, str) else bases:
        if not isinstance(base, str):
            raise ValueError(f"config file {path}: '{BASE_KEY}' entries must be paths, got {base!r}")
        _merge(merged, _read_yaml(path.parent / base, chain + (path,), origins), (), {}, "")
    _merge(merged, data, (), origins, f"config file {path}")
    return merged


def _merge(dst: dict, src: Mapping, prefix: tuple[str, ...], origins: dict, source: str) -> None:
    """Merge ``src`` into ``dst`` in place; record ``source`` for every key path touched."""
    for key, value in src.items():
        path = prefix + (str(key),)
        if source:
            origins[path] = source
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, path, origins, source)
        else:
            dst[key] = dict(value) if isinstance(value, Mapping) else value
            if isinstance(value, Mapping) and source:
                _record(value, path, origins, source)


def _record(value: Mapping, prefix: tuple[str, ...], origins: dict, source: str) -> None:
    for key, sub in value.items():
        origins[prefix + (str(key),)] = source
        if isinstance(sub, Mapping):
            _record(sub, prefix + (str(key),), origins, source)


def apply_override(raw: dict, override: str, origins: dict[tuple[str, ...], str]) -> None:
    """Apply one ``"section.key=value"`` override to the raw mapping ``raw`` in place."""
    key, sep, text = override.partition("=")
    parts = tuple(key.strip().split("."))
    if not sep or not all(parts):
        raise ValueError(f"override {override!r}: expected 'section.key=value'")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ValueError(f"override {override!r}: {'.'.join(parts[:i + 1])} is not a section")
        origins[parts[: i + 1]] = f"override {override!r}"
        node = child
    node[parts[-1]] = parse_value(text)
    origins[parts] = f"override {override!r}"


def load_config(schema: type[T], files: str | Path | Sequence[str | Path] = (),
                overrides: Sequence[str] = ()) -> T:
    """Build a ``schema`` instance from YAML ``files`` (merged in order) and ``overrides``.

    ``schema`` is a dataclass type whose fields have defaults (nested dataclasses become
    sections). ``overrides`` are ``"a.b=value"`` strings; the value is parsed as YAML.

    Raises:
        ValueError: a missing or invalid file, an unknown key, a value of the wrong type, or
            a failed section check; the message names the key and the file or override.
    """
    if isinstance(files, (str, Path)):
        files = [files]
    origins: dict[tuple[str, ...], str] = {}
    raw: dict = {}
    for path in files:
        _merge(raw, _read_yaml(Path(path), (), origins), (), {}, "")
    for override in overrides:
        apply_override(raw, override, origins)
    return build(schema, raw, origins)


def build(schema: type[T], raw: Mapping[str, Any], origins: Mapping[tuple[str, ...], str] | None = None,
          source: str = "config") -> T:
    """A ``schema`` instance from a plain nested mapping, with full type checking."""
    return _build(schema, raw, (), dict(origins or {}), source)


def _where(path: tuple[str, ...], origins: Mapping[tuple[str, ...], str], source: str) -> str:
    for cut in range(len(path), 0, -1):
        if path[:cut] in origins:
            return origins[path[:cut]]
    return source


def _build(cls: type, raw: Any, path: tuple[str, ...], origins: dict, source: str) -> Any:
    name = ".".join(path) or "<top level>"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{_where(path, origins, source)}: {name} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in known:
            raise ValueError(f"{_where(path + (str(key),), origins, source)}: unknown key "
                             f"'{'.'.join(path + (str(key),))}' (known: {', '.join(sorted(known))})")
    values = {}
    for key, value in raw.items():
        values[key] = _coerce(hints[key], value, path + (key,), origins, source)
    try:
        return cls(**values)
    except ValueError as err:
        raise ValueError(f"{_where(path, origins, source)}: {err}") from err


def _coerce(hint: Any, value: Any, path: tuple[str, ...], origins: dict, source: str) -> Any:
    """``value`` checked (and minimally converted) against the type ``hint``."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, value, path, origins, source)
    ok, out = _match(hint, value)
    if ok:
        return out
    key = ".".join(path)
    raise ValueError(f"{_where(path, origins, source)}: {key} expects {_type_name(hint)}, "
                     f"got {type(value).__name__} {value!r}")


def _match(hint: Any, value: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return True, value
    if hint is type(None):
        return value is None, value
    if origin in (Union, types.UnionType):
        for arg in args:
            ok, out = _match(arg, value)
            if ok:
                return True, out
        return False, value
    if origin is Literal:
        if isinstance(value, bool) and not any(isinstance(a, bool) for a in args):
            # YAML 1.1 reads off/no/false (on/yes/true) as booleans: a documented choice
            # such as train.amp=off is accepted as typed
            spelled = next((a for a in args if isinstance(a, str) and a.lower() in _YAML_BOOL_WORDS[value]), None)
            if spelled is not None:
                return True, spelled
        return any(type(a) is type(value) and a == value for a in args), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return False, value
            items = [_match(a, v) for a, v in zip(args, value)]
        else:
            item_hint = args[0] if args else Any
            items = [_match(item_hint, v) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        converted = [v for _, v in items]
        return True, tuple(converted) if (origin or hint) is tuple else converted
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            return False, value
        key_hint, val_hint = args if args else (Any, Any)
        items = [(_match(key_hint, k), _match(val_hint, v)) for k, v in value.items()]
        if not all(k[0] and v[0] for k, v in items):
            return False, value
        return True, {k[1]: v[1] for k, v in items}
    raise ValueError(f"config schema: unsupported field type {hint!r}")


_YAML_BOOL_WORDS = {False: ("off", "no", "false", "n"), True: ("on", "yes", "true", "y")}


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as plain nested dicts/lists/scalars (tuples become lists): YAML- and
    ``torch.load(weights_only=True)``-safe, and accepted back by :func:`build`."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ValueError(f"config must be a dataclass instance, got {type(config).__name__}")
    return to_plain(dataclasses.asdict(config))


def to_plain(value: Any) -> Any:
    """Mappings to dicts with str keys and tuples to lists, recursively; other values as they are.

    Plain values compare equal after a YAML or ``torch.save``/``torch.load`` round trip.
    """
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def dump_config(config: Any, path: str | Path) -> None:
    """Write the config as YAML to ``path`` (loadable with :func:`load_config`)."""
    from cinemri.files import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
