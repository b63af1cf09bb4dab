"""The original's config tree (spec sec. 6.3) as frozen dataclasses, built from YAML layers.

Layers, later wins: ``config/pets/default.yaml`` < ``config/envs/<env>.yaml`` < ``-ca`` choices
< ``-o DOTTED.PATH VALUE`` overrides, applied in command-line order as ``scripts/mbexp.py`` does:
every prefix of the path must exist, the leaf is converted by its declared type (int, float, str,
bool; booleans "False" / "false" / "" -> False, anything else -> True) and read-only leaves are
refused. As in the original, ``-ca opt-type`` copies the chosen optimiser's settings into
``ctrl_cfg.opt_cfg.cfg`` (so ``-o ctrl_cfg.opt_cfg.cfg.popsize 100`` addresses it); the YAML
layers keep one section per optimiser (cem, random, icem, mppi: ``OPT_CFGS``).
"""

from __future__ import annotations

import dataclasses
import pprint
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pets_core.planning.propagation import PropagationSpec
from pets_core.variants import (
    MODEL_TYPES,
    OPT_TYPES,
    PROP_TYPES,
    Variant,
    VariantError,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
CA_KEYS = {"model-type": MODEL_TYPES, "prop-type": PROP_TYPES, "opt-type": OPT_TYPES}
CA_DEFAULTS = {"model-type": "PE", "prop-type": "TSinf", "opt-type": "CEM"}

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad -env / -ca / -o input; the message names the culprit and the valid choices."""


# ----------------------------------------------------------------------------- the tree
@dataclasses.dataclass(frozen=True)
class SimCfg:
    task_hor: int
    """Steps per episode (TASK_HORIZON; no early termination)."""
    stochastic: bool = False
    """Execute a_t + N(0, noise_std^2) (clipped); the stored action stays noise-free."""
    noise_std: float | None = None


@dataclasses.dataclass(frozen=True)
class LoopCfg:
    ntrain_iters: int
    """MPC iterations after the initial random rollouts."""
    nrollouts_per_iter: int = 1
    """Episodes per iteration that become training data / logs."""
    ninit_rollouts: int = 1
    """Random-action episodes before the first iteration."""


@dataclasses.dataclass(frozen=True)
class ExpLogCfg:
    nrecord: int = 0
    """Episodes per iteration recorded to train_iter<i>/rollout<j>.mp4."""
    record_iters: tuple[int, ...] = ()
    """Iterations that record (1-based; negative counts from the end, -1 = the last); empty =
    every iteration, as the original. Not in the original; it never changes what a run computes."""
    neval: int = 1
    """Episodes per iteration whose return goes into logs.mat["returns"]."""


@dataclasses.dataclass(frozen=True)
class ExpCfg:
    sim_cfg: SimCfg
    exp_cfg: LoopCfg
    log_cfg: ExpLogCfg


@dataclasses.dataclass(frozen=True)
class ModelInitCfg:
    model_type: str
    """D, P, DE or PE (set by -ca model-type)."""
    num_nets: int
    """E: ensemble members (1 for D / P)."""
    hidden_dims: tuple[int, ...]
    weight_decays: tuple[float, ...]
    """One per layer, input -> output (len(hidden_dims) + 1)."""
    learning_rate: float
    model_dir: str | None = None
    load_model: bool = False
    max_logvar_init: float = 0.5
    min_logvar_init: float = -10.0


@dataclasses.dataclass(frozen=True)
class ModelTrainCfg:
    batch_size: int = 32
    epochs: int = 5
    holdout_ratio: float = 0.0
    max_logging: int = 5000


@dataclasses.dataclass(frozen=True)
class PropCfg:
    mode: str
    """Propagation: E, DS, TS1, TSinf or MM (set by -ca prop-type)."""
    npart: int
    """P: particles per candidate (1 under E)."""
    model_init_cfg: ModelInitCfg
    model_train_cfg: ModelTrainCfg
    model_pretrained: bool = False
    ign_var: bool = False
    """Propagate the mean instead of sampling (forced True for DE + TS*)."""


@dataclasses.dataclass(frozen=True)
class CEMCfg:
    popsize: int
    """N: candidate sequences per CEM iteration."""
    num_elites: int
    """K: lowest-cost candidates refitting the sampling distribution."""
    max_iters: int = 5
    epsilon: float = 0.001
    alpha: float = 0.1
    var_update: str = "blended"
    """blended (post-Nov-2018 fix) or elite (pre-fix: v <- elite variance)."""


@dataclasses.dataclass(frozen=True)
class RandomCfg:
    popsize: int


@dataclasses.dataclass(frozen=True)
class ICEMCfg:
    """iCEM (Pinneri et al., CoRL 2020); defaults are the paper's."""

    popsize: int
    """N: fresh samples in the first iteration (per env: CEM's N)."""
    num_elites: int = 10
    """K: lowest-cost candidates refitting the sampling distribution."""
    max_iters: int = 3
    alpha: float = 0.1
    """Momentum of the mean / std update."""
    noise_beta: float = 2.0
    """Colored-noise exponent: PSD ~ 1 / f^beta along the horizon (0 = white; per task)."""
    pop_decay: float = 1.25
    """gamma: iteration i samples max(N gamma^-i, 2 K)."""
    keep_elites_frac: float = 0.3
    """xi: fraction of the elites carried into the next iteration (and, shifted, the next plan)."""


@dataclasses.dataclass(frozen=True)
class MPPICfg:
    """MPPI (Williams et al., ICRA 2017; information-theoretic MPC)."""

    popsize: int
    """N: perturbed sequences per iteration (per env: CEM's N)."""
    num_iters: int = 5
    """Refinements of the plan per action (1 in the paper's real-time setting)."""
    temperature: float = 1.0
    """lambda: weights exp(-(cost - min cost) / lambda)."""
    sigma: float = 1.0
    """Noise std in units of the initial std (high - low) / 4."""
    smoothing: float = 0.0
    """Mean smoothing along the horizon, U_t <- (1-s) U_t + s U_{t-1} (0 = off)."""


OPT_CFGS: dict[str, tuple[str, type]] = {
    "CEM": ("cem", CEMCfg),
    "Random": ("random", RandomCfg),
    "iCEM": ("icem", ICEMCfg),
    "MPPI": ("mppi", MPPICfg),
}
"""opt-type -> (its section under ctrl_cfg.opt_cfg in the YAML layers, its dataclass)."""


@dataclasses.dataclass(frozen=True)
class OptCfg:
    mode: str
    """CEM, Random, iCEM or MPPI (set by -ca opt-type)."""
    plan_hor: int
    """H: planning horizon."""
    cfg: CEMCfg | RandomCfg | ICEMCfg | MPPICfg


@dataclasses.dataclass(frozen=True)
class CtrlLogCfg:
    save_all_models: bool = False
    log_traj_preds: bool = False
    log_particles: bool = False


@dataclasses.dataclass(frozen=True)
class CtrlCfg:
    prop_cfg: PropCfg
    opt_cfg: OptCfg
    log_cfg: CtrlLogCfg
    per: int = 1
    """Actions executed per optimisation."""


@dataclasses.dataclass(frozen=True)
class PetsConfig:
    env: str
    variant: str
    seed: int
    exp_cfg: ExpCfg
    ctrl_cfg: CtrlCfg

    @property
    def parsed_variant(self) -> Variant:
        return Variant(*self.variant.split("-"))  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        _validate(self)


# Leaves -o may never touch (the original's type map has no entry for them).
_SET_ELSEWHERE = {
    "env": "-env",
    "variant": "-ca",
    "seed": "--seed",
    "ctrl_cfg.prop_cfg.mode": "-ca prop-type",
    "ctrl_cfg.opt_cfg.mode": "-ca opt-type",
    "ctrl_cfg.prop_cfg.model_init_cfg.model_type": "-ca model-type",
}


def _validate(cfg: PetsConfig) -> None:
    variant = cfg.parsed_variant
    sim, loop, elog = cfg.exp_cfg.sim_cfg, cfg.exp_cfg.exp_cfg, cfg.exp_cfg.log_cfg
    prop, opt = cfg.ctrl_cfg.prop_cfg, cfg.ctrl_cfg.opt_cfg
    init, train = prop.model_init_cfg, prop.model_train_cfg
    positive = {
        "exp_cfg.sim_cfg.task_hor": sim.task_hor,
        "exp_cfg.exp_cfg.nrollouts_per_iter": loop.nrollouts_per_iter,
        "exp_cfg.log_cfg.neval": elog.neval,
        "ctrl_cfg.per": cfg.ctrl_cfg.per,
        "ctrl_cfg.opt_cfg.plan_hor": opt.plan_hor,
        "ctrl_cfg.opt_cfg.cfg.popsize": opt.cfg.popsize,
        "ctrl_cfg.prop_cfg.model_train_cfg.batch_size": train.batch_size,
        "ctrl_cfg.prop_cfg.model_init_cfg.learning_rate": init.learning_rate,
    }
    non_negative = {
        "exp_cfg.exp_cfg.ntrain_iters": loop.ntrain_iters,
        "exp_cfg.exp_cfg.ninit_rollouts": loop.ninit_rollouts,
        "exp_cfg.log_cfg.nrecord": elog.nrecord,
        "ctrl_cfg.prop_cfg.model_train_cfg.epochs": train.epochs,
    }
    for path, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{path} must be > 0 (got {value})")
    for path, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{path} must be >= 0 (got {value})")
    if bad := [i for i in elog.record_iters if i == 0 or abs(i) > loop.ntrain_iters]:
        raise ConfigError(
            f"exp_cfg.log_cfg.record_iters: {bad[0]} is not an iteration; valid: "
            f"1..{loop.ntrain_iters} or -{loop.ntrain_iters}..-1 (from the end)"
        )
    if sim.stochastic and (sim.noise_std is None or sim.noise_std < 0):
        raise ConfigError("exp_cfg.sim_cfg.stochastic needs exp_cfg.sim_cfg.noise_std >= 0")
    if cfg.ctrl_cfg.per > opt.plan_hor:
        raise ConfigError(f"ctrl_cfg.per ({cfg.ctrl_cfg.per}) must be <= plan_hor ({opt.plan_hor})")
    if not 0.0 <= train.holdout_ratio < 1.0:
        raise ConfigError(
            f"model_train_cfg.holdout_ratio must be in [0, 1) (got {train.holdout_ratio})"
        )
    if len(init.weight_decays) != len(init.hidden_dims) + 1:
        raise ConfigError(
            "model_init_cfg.weight_decays needs len(hidden_dims) + 1 = "
            f"{len(init.hidden_dims) + 1} "
            f"values (one per layer), got {len(init.weight_decays)}"
        )
    if any(h <= 0 for h in init.hidden_dims) or not init.hidden_dims:
        raise ConfigError(
            f"model_init_cfg.hidden_dims must be positive ints (got {init.hidden_dims})"
        )
    if isinstance(opt.cfg, CEMCfg):
        c = opt.cfg
        if not 0 < c.num_elites <= c.popsize:
            raise ConfigError(
                "ctrl_cfg.opt_cfg.cfg.num_elites must be in "
                f"1..popsize={c.popsize} (got {c.num_elites})"
            )
        if c.var_update not in ("blended", "elite"):
            raise ConfigError(
                f"ctrl_cfg.opt_cfg.cfg.var_update {c.var_update!r}; valid: blended, elite"
            )
        if c.max_iters < 1 or not 0.0 <= c.alpha < 1.0:
            raise ConfigError("ctrl_cfg.opt_cfg.cfg needs max_iters >= 1 and 0 <= alpha < 1")
    if isinstance(opt.cfg, ICEMCfg):
        _validate_icem(opt.cfg)
    if isinstance(opt.cfg, MPPICfg):
        _validate_mppi(opt.cfg)
    if variant.is_ensemble and init.num_nets <= 1:
        raise ConfigError(
            f"ctrl_cfg.prop_cfg.model_init_cfg.num_nets: ensembled models ({variant.model}) must "
            f"have more than one net (got {init.num_nets})"
        )
    try:
        PropagationSpec.from_prop_cfg(prop)
    except VariantError as err:
        raise ConfigError(str(err)) from None


def _validate_icem(c: ICEMCfg) -> None:
    where = "ctrl_cfg.opt_cfg.cfg"
    if not 0 < c.num_elites <= c.popsize:
        raise ConfigError(
            f"{where}.num_elites must be in 1..popsize={c.popsize} (got {c.num_elites})"
        )
    checks = {
        "max_iters": (c.max_iters >= 1, ">= 1"),
        "alpha": (0.0 <= c.alpha < 1.0, "in [0, 1)"),
        "noise_beta": (c.noise_beta >= 0.0, ">= 0"),
        "pop_decay": (c.pop_decay >= 1.0, ">= 1"),
        "keep_elites_frac": (0.0 <= c.keep_elites_frac <= 1.0, "in [0, 1]"),
    }
    for name, (ok, rule) in checks.items():
        if not ok:
            raise ConfigError(f"{where}.{name} must be {rule} (got {getattr(c, name)})")


def _validate_mppi(c: MPPICfg) -> None:
    checks = {
        "num_iters": (c.num_iters >= 1, ">= 1"),
        "temperature": (c.temperature > 0.0, "> 0"),
        "sigma": (c.sigma > 0.0, "> 0"),
        "smoothing": (0.0 <= c.smoothing < 1.0, "in [0, 1)"),
    }
    for name, (ok, rule) in checks.items():
        if not ok:
            value = getattr(c, name)
            raise ConfigError(f"ctrl_cfg.opt_cfg.cfg.{name} must be {rule} (got {value})")


# ----------------------------------------------------------------------------- loading
def env_names(config_dir: Path = CONFIG_DIR) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in (config_dir / "envs").glob("*.yaml")))


def load_config(
    env: str,
    ca: Sequence[tuple[str, str]] = (),
    overrides: Sequence[tuple[str, str]] = (),
    *,
    seed: int = 0,
    config_dir: Path = CONFIG_DIR,
) -> PetsConfig:
    """-env, -ca KEY VALUE pairs and -o PATH VALUE pairs (command-line order) -> PetsConfig."""
    valid_envs = env_names(config_dir)
    if env not in valid_envs:
        raise ConfigError(f"unknown env {env!r}; valid: {', '.join(valid_envs)}")
    tree: dict[str, Any] = {}
    for path in (config_dir / "pets" / "default.yaml", config_dir / "envs" / f"{env}.yaml"):
        _deep_update(tree, yaml.safe_load(path.read_text()) or {})
    variant = _variant_from_ca(ca)
    tree = _apply_variant(tree, variant)
    tree = {"env": env, "variant": variant.name, "seed": int(seed), **tree}
    for path, value in overrides:
        _apply_override(tree, variant, path, value)
    return build(tree)


def _variant_from_ca(ca: Sequence[tuple[str, str]]) -> Variant:
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


def _apply_variant(tree: dict[str, Any], variant: Variant) -> dict[str, Any]:
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
    section = OPT_CFGS[variant.opt][0]
    opt_tree = {"mode": variant.opt, "plan_hor": opt["plan_hor"], "cfg": dict(opt[section])}
    ctrl["opt_cfg"] = opt_tree
    return tree


def read_only_reason(path: str, variant: Variant) -> str | None:
    """Why a leaf cannot be overridden under this variant (None: it can)."""
    if path in _SET_ELSEWHERE:
        return f"it is set by {_SET_ELSEWHERE[path]}"
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
        owners = [o for o, (_, c) in OPT_CFGS.items() if leaf in _field_names(c)]
        if owners and variant.opt not in owners:
            return f"opt-type {variant.opt} has no {leaf} (it belongs to {', '.join(owners)})"
    return None


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _apply_override(tree: dict[str, Any], variant: Variant, path: str, raw: str) -> None:
    keys = path.split(".")
    node: Any = tree
    cls: type = PetsConfig
    for depth, key in enumerate(keys):
        fields = _field_types(cls, node)
        here = ".".join(keys[:depth]) or "the top level"
        if not isinstance(node, dict) or key not in fields:
            raise ConfigError(
                f"unknown -o path {path!r}: {key!r} is not in {here}; valid: {', '.join(fields)}"
            )
        ftype = fields[key]
        if depth < len(keys) - 1:
            if not _is_dataclass_type(ftype):
                raise ConfigError(
                    f"unknown -o path {path!r}: {'.'.join(keys[: depth + 1])} is a leaf"
                )
            node, cls = node[key], _dataclass_of(ftype, node)
            continue
        if _is_dataclass_type(ftype):
            raise ConfigError(
                f"-o path {path!r} is a section, not a leaf; valid leaves: "
                f"{', '.join(_field_types(_dataclass_of(ftype, node), node[key]))}"
            )
        if reason := read_only_reason(path, variant):
            raise ConfigError(f"-o {path} is read-only: {reason}")
        node[key] = _convert(path, ftype, raw)


def _convert(path: str, ftype: Any, raw: str) -> Any:
    base = _strip_optional(ftype)
    if base is bool:  # the original's make_bool
        return raw not in ("False", "false", "")
    if typing.get_origin(base) is tuple:
        (item, _) = typing.get_args(base)
        parsed = yaml.safe_load(raw if raw.strip().startswith("[") else f"[{raw}]")
        try:
            return tuple(_scalar(item, str(v)) for v in parsed)
        except (TypeError, ValueError):
            raise ConfigError(
                f"-o {path} expects a list of {item.__name__} (e.g. 8,8 or [8, 8]), got {raw!r}"
            ) from None
    try:
        return _scalar(base, raw)
    except ValueError:
        raise ConfigError(f"-o {path} expects {base.__name__}, got {raw!r}") from None


def _scalar(kind: type, raw: str) -> Any:
    return kind(raw)


# ----------------------------------------------------------------------------- dict <-> tree
def build(tree: Mapping[str, Any]) -> PetsConfig:
    """Nested dict (e.g. a saved config.yaml) -> validated frozen PetsConfig."""
    return _from_dict(PetsConfig, tree, "")


def _from_dict(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {data!r}")
    fields = _field_types(cls, data)
    if unknown := sorted(set(data) - set(fields)):
        raise ConfigError(
            f"unknown keys in {where or 'config'}: {unknown}; valid: {', '.join(fields)}"
        )
    kwargs = {}
    required = {f.name for f in dataclasses.fields(cls)} - _with_defaults(cls)
    for name, ftype in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if name in required:
                raise ConfigError(f"missing config value {path}")
            continue
        value = data[name]
        if _is_dataclass_type(ftype):
            kwargs[name] = _from_dict(_dataclass_of(ftype, data), value, path)
        else:
            kwargs[name] = _check_leaf(path, ftype, value)
    return cls(**kwargs)


def _check_leaf(path: str, ftype: Any, value: Any) -> Any:
    allows_none = _strip_optional(ftype) is not ftype
    base = _strip_optional(ftype)
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
    return build(yaml.safe_load(Path(path).read_text()))


def first_difference(a: PetsConfig, b: PetsConfig) -> str | None:
    fa, fb = flatten(a), flatten(b)
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            return f"{key}: {fa.get(key)!r} != {fb.get(key)!r}"
    return None


# ----------------------------------------------------------------------------- helpers
def _deep_update(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def _field_types(cls: type, node: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _with_defaults(cls: type) -> set[str]:
    return {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


def _strip_optional(ftype: Any) -> Any:
    if typing.get_origin(ftype) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(ftype) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ftype


def _is_dataclass_type(ftype: Any) -> bool:
    if typing.get_origin(ftype) in (types.UnionType, typing.Union):
        return all(dataclasses.is_dataclass(a) for a in typing.get_args(ftype))
    return dataclasses.is_dataclass(ftype)


def _dataclass_of(ftype: Any, parent: Mapping[str, Any]) -> type:
    """The one union in the tree: opt_cfg.cfg is the dataclass of opt_cfg.mode (OPT_CFGS)."""
    if typing.get_origin(ftype) in (types.UnionType, typing.Union):
        mode = parent.get("mode")
        if mode not in OPT_CFGS:
            raise ConfigError(
                f"unknown ctrl_cfg.opt_cfg.mode {mode!r}; valid: {', '.join(OPT_CFGS)}"
            )
        return OPT_CFGS[mode][1]
    return ftype


def describe_overridable(variant: Variant, cfg: PetsConfig) -> Iterable[str]:
    """Every -o path that may be overridden under this variant."""
    for path in flatten(cfg):
        if read_only_reason(path, variant) is None:
            yield path
