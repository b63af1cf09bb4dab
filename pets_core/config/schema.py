"""The tree's declared field types, read by the -o grammar (overrides) and the dict codec (codec).

The one union in the tree is ``ctrl_cfg.opt_cfg.cfg``: its dataclass is chosen by the sibling
``mode`` (``dataclass_of``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from pets_core.config.errors import ConfigError
from pets_core.config.optimizers import OPT_CFGS


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> its resolved annotation, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def with_defaults(cls: type) -> set[str]:
    """The fields a YAML layer or saved config may leave out."""
    return {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


def strip_optional(ftype: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(ftype) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(ftype) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ftype


def is_dataclass_type(ftype: Any) -> bool:
    """A section (a dataclass, or a union of dataclasses), as opposed to a leaf."""
    if typing.get_origin(ftype) in (types.UnionType, typing.Union):
        return all(dataclasses.is_dataclass(a) for a in typing.get_args(ftype))
    return dataclasses.is_dataclass(ftype)


def dataclass_of(ftype: Any, parent: Mapping[str, Any]) -> type:
    """The section's dataclass; for opt_cfg.cfg the one of opt_cfg.mode (OPT_CFGS)."""
    if typing.get_origin(ftype) in (types.UnionType, typing.Union):
        mode = parent.get("mode")
        if mode not in OPT_CFGS:
            raise ConfigError(
                f"unknown ctrl_cfg.opt_cfg.mode {mode!r}; valid: {', '.join(OPT_CFGS)}"
            )
        return OPT_CFGS[mode]
    return ftype
