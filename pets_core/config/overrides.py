"""The original's -ca / -o grammar (scripts/mbexp.py, _create_ctrl_config) on the config tree.

``-ca KEY VALUE`` picks the variant (model-type, prop-type, opt-type); ``apply_variant`` then does
what the original does with it: sets the modes, forces leaves (num_nets 1 for D / P, npart 1 under
E, ign_var for DE + TS*) and keeps the chosen optimiser's table of the layers'
``ctrl_cfg.opt_cfg.cfg`` as that section (``-o ctrl_cfg.opt_cfg.cfg.popsize 100`` addresses it).
``-o DOTTED.PATH VALUE`` then sets one leaf: every prefix of the path must exist, the leaf is
converted by its declared type (int, float, str, bool, tuples as ``8,8`` or ``[8, 8]``; booleans
"False" / "false" / "" -> False, anything else -> True, the original's make_bool) and read-only
leaves are refused (``read_only_reason``). Each bad input is one ConfigError line naming the
culprit and the valid choices.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

import yaml

from pets_core.config.bounded_yaml import load_yaml
from pets_core.config.errors import ConfigError
from pets_core.config.optimizers import OPT_CFGS
from pets_core.config.schema import (
    dataclass_of,
    field_names,
    field_types,
    is_dataclass_type,
    strip_optional,
)
from pets_core.config.tree import PetsConfig
from pets_core.config.variants import MODEL_TYPES, OPT_TYPES, PROP_TYPES, Variant, VariantError

CA_KEYS = {"model-type": MODEL_TYPES, "prop-type": PROP_TYPES, "opt-type": OPT_TYPES}
CA_DEFAULTS = {"model-type": "PE", "prop-type": "TSinf", "opt-type": "CEM"}

# Leaves -o may never touch (the original's type map has no entry for them).
SET_ELSEWHERE = {
    "env": "-env",
    "variant": "-ca",
    "seed": "--seed",
    "ctrl_cfg.prop_cfg.mode": "-ca prop-type",
    "ctrl_cfg.opt_cfg.mode": "-ca opt-type",
    "ctrl_cfg.prop_cfg.model_init_cfg.model_type": "-ca model-type",
}


def variant_from_ca(ca: Sequence[tuple[str, str]]) -> Variant:
    """-ca KEY VALUE pairs (later wins) over CA_DEFAULTS -> the Variant."""
    chosen = dict(CA_DEFAULTS)
    for key, value in ca:
        if key not in CA_KEYS:
            raise ConfigError(f"unknown -ca key {key!r}; valid: {', '.join(CA_KEYS)}")
        if value not in CA_KEYS[key]:
            raise ConfigError(f"unknown -ca {key} {value!r}; valid: {', '.join(CA_KEYS[key])}")
        chosen[key] = value
    try:
        return Variant(chosen["model-type"], chosen["prop-type"], chosen["opt-type"])  # type: ignore[arg-type]
    except VariantError as err:
        raise ConfigError(f"invalid -ca combination: {err}") from None


def apply_variant(tree: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """What the original's _create_ctrl_config does with -ca: modes, forced and read-only leaves."""
    ctrl = tree["ctrl_cfg"]
    prop, opt = ctrl["prop_cfg"], ctrl["opt_cfg"]
    prop["mode"] = variant.prop
    prop["model_init_cfg"]["model_type"] = variant.model
    if not variant.is_ensemble:
        prop["model_init_cfg"]["num_nets"] = 1
    if variant.prop == "E":
        prop["npart"] = 1
    if variant.model == "DE" and variant.prop.startswith("TS"):
        prop["ign_var"] = True
    tables = _optimizer_tables(opt)
    ctrl["opt_cfg"] = {"mode": variant.opt, "plan_hor": opt["plan_hor"], "cfg": tables[variant.opt]}
    return tree


OPT_SPELLING = (
    f"a YAML layer gives an optimiser's leaves as ctrl_cfg.opt_cfg.cfg.OPT.LEAF, OPT one of "
    f"{', '.join(OPT_CFGS)} (-ca opt-type); -o sets the chosen one's as ctrl_cfg.opt_cfg.cfg.LEAF"
)


def _optimizer_hint(here: str, key: str, rest: Sequence[str]) -> str:
    """An optimiser's leaf under its name (ctrl_cfg.opt_cfg.cem.popsize, the old layers' spelling,
    or ctrl_cfg.opt_cfg.cfg.CEM.popsize, the layers' table) -> the -o path that sets it."""
    names = {name.lower() for name in OPT_CFGS}
    if key.lower() in names and here in ("ctrl_cfg.opt_cfg", "ctrl_cfg.opt_cfg.cfg") and rest:
        return (
            f" (did you mean {'.'.join(['ctrl_cfg.opt_cfg.cfg', *rest])!r}? -ca opt-type "
            "picks the optimiser)"
        )
    return ""


def _optimizer_tables(opt: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The merged layers' ctrl_cfg.opt_cfg.cfg: opt-type -> its leaves. Another key beside it
    (the old per-optimiser sections ctrl_cfg.opt_cfg.cem, ...) is one line naming the spelling."""
    for key in opt:
        if key not in ("plan_hor", "cfg"):
            raise ConfigError(f"YAML layer key ctrl_cfg.opt_cfg.{key}: {OPT_SPELLING}")
    tables = opt.get("cfg") or {}
    for key in tables:
        if key not in OPT_CFGS:
            raise ConfigError(f"YAML layer key ctrl_cfg.opt_cfg.cfg.{key}: {OPT_SPELLING}")
    return {name: dict(tables.get(name) or {}) for name in OPT_CFGS}


def read_only_reason(path: str, variant: Variant) -> str | None:
    """Why a leaf cannot be overridden under this variant (None: it can)."""
    if path in SET_ELSEWHERE:
        return f"it is set by {SET_ELSEWHERE[path]}"
    if path == "ctrl_cfg.prop_cfg.npart" and variant.prop == "E":
        return "prop-type E uses exactly one particle"
    if (
        path == "ctrl_cfg.prop_cfg.ign_var"
        and variant.model == "DE"
        and variant.prop.startswith("TS")
    ):
        return "DE with TS* always propagates each member's mean (ign_var is True)"
    if path == "ctrl_cfg.prop_cfg.model_init_cfg.num_nets" and not variant.is_ensemble:
        return f"model-type {variant.model} has a single network"
    if path.startswith("ctrl_cfg.opt_cfg.cfg."):
        leaf = path.removeprefix("ctrl_cfg.opt_cfg.cfg.")
        owners = [o for o, c in OPT_CFGS.items() if leaf in field_names(c)]
        if owners and variant.opt not in owners:
            return f"opt-type {variant.opt} has no {leaf} (it belongs to {', '.join(owners)})"
    return None


def apply_override(tree: dict[str, Any], variant: Variant, path: str, raw: str) -> None:
    """-o PATH RAW on the nested dict (after apply_variant), in place."""
    keys = path.split(".")
    node: Any = tree
    cls: type = PetsConfig
    for depth, key in enumerate(keys):
        fields = field_types(cls)
        here = ".".join(keys[:depth]) or "the top level"
        if not isinstance(node, dict) or key not in fields:
            raise ConfigError(
                f"unknown -o path {path!r}: {key!r} is not in {here}; valid: {', '.join(fields)}"
                + _optimizer_hint(here, key, keys[depth + 1 :])
            )
        ftype = fields[key]
        if depth < len(keys) - 1:
            if not is_dataclass_type(ftype):
                raise ConfigError(
                    f"unknown -o path {path!r}: {'.'.join(keys[: depth + 1])} is a leaf"
                )
            node, cls = node[key], dataclass_of(ftype, node)
            continue
        if is_dataclass_type(ftype):
            raise ConfigError(
                f"-o path {path!r} is a section, not a leaf; valid leaves: "
                f"{', '.join(field_types(dataclass_of(ftype, node)))}"
            )
        if reason := read_only_reason(path, variant):
            raise ConfigError(f"-o {path} is read-only: {reason}")
        node[key] = _convert(path, ftype, raw)


def _convert(path: str, ftype: Any, raw: str) -> Any:
    """The -o string -> the leaf's declared type."""
    base = strip_optional(ftype)
    if base is bool:  # the original's make_bool
        return raw not in ("False", "false", "")
    if typing.get_origin(base) is tuple:
        (item, _) = typing.get_args(base)
        try:
            text = raw if raw.strip().startswith("[") else f"[{raw}]"
            parsed = load_yaml(text, f"-o {path}")
            return tuple(item(str(v)) for v in parsed)
        except (TypeError, ValueError, yaml.YAMLError):
            raise ConfigError(
                f"-o {path} expects a list of {item.__name__} (e.g. 8,8 or [8, 8]), got {raw!r}"
            ) from None
    try:
        return base(raw)
    except ValueError:
        raise ConfigError(f"-o {path} expects {base.__name__}, got {raw!r}") from None
