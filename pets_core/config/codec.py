"""PetsConfig <-> plain nested dict <-> YAML / text (what a run directory's config.yaml holds).

``build`` checks a nested dict against the tree's declared types (unknown keys, missing required
values, wrong kinds: one ConfigError line each) before the tree validates itself; a saved
config.yaml round-trips exactly (``from_yaml(p) == cfg`` after ``p.write_text(to_yaml(cfg))``).
"""

from __future__ import annotations

import dataclasses
import pprint
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pets_core.config.bounded_yaml import load_yaml_file
from pets_core.config.errors import ConfigError
from pets_core.config.schema import (
    dataclass_of,
    field_types,
    is_dataclass_type,
    strip_optional,
    with_defaults,
)
from pets_core.config.tree import PetsConfig

T = TypeVar("T")


def build(tree: Mapping[str, Any]) -> PetsConfig:
    """Nested dict (e.g. a saved config.yaml) -> validated frozen PetsConfig."""
    return _from_dict(PetsConfig, tree, "")


def _from_dict(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {data!r}")
    fields = field_types(cls)
    if unknown := sorted(set(data) - set(fields)):
        raise ConfigError(
            f"unknown keys in {where or 'config'}: {unknown}; valid: {', '.join(fields)}"
        )
    kwargs = {}
    required = set(fields) - with_defaults(cls)
    for name, ftype in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if name in required:
                raise ConfigError(f"missing config value {path}")
            continue
        value = data[name]
        if is_dataclass_type(ftype):
            kwargs[name] = _from_dict(dataclass_of(ftype, data), value, path)
        else:
            kwargs[name] = _check_leaf(path, ftype, value)
    return cls(**kwargs)


def _check_leaf(path: str, ftype: Any, value: Any) -> Any:
    allows_none = strip_optional(ftype) is not ftype
    base = strip_optional(ftype)
    if value is None:
        if allows_none:
            return None
        raise ConfigError(f"missing config value {path} (null)")
    if typing.get_origin(base) is tuple:
        (item, _) = typing.get_args(base)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        return tuple(_coerce(path, item, v) for v in value)
    return _coerce(path, base, value)


def _coerce(path: str, kind: type, value: Any) -> Any:
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise ConfigError(f"{path} must be {kind.__name__}, got {value!r}")


def to_dict(cfg: PetsConfig) -> dict[str, Any]:
    """Plain nested dict with lists (what config.yaml holds)."""

    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, tuple | list):
            return [plain(v) for v in x]
        return x

    return plain(dataclasses.asdict(cfg))


def flatten(cfg: PetsConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths -> leaf values, e.g. {"ctrl_cfg.opt_cfg.cfg.popsize": 400, ...}."""
    tree = to_dict(cfg) if isinstance(cfg, PetsConfig) else cfg
    out: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping):
                walk(value, path + ".")
            else:
                out[path] = value

    walk(tree, "")
    return out


def to_yaml(cfg: PetsConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def to_text(cfg: PetsConfig) -> str:
    """config.txt: the pretty-printed config dict, as the original writes it."""
    return pprint.pformat(to_dict(cfg), width=100, sort_dicts=False) + "\n"


def from_yaml(path: Path) -> PetsConfig:
    """A saved config.yaml (bounded YAML, :mod:`.bounded_yaml`) -> validated PetsConfig."""
    return build(load_yaml_file(path))
