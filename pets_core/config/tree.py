"""The original's config tree (§cli) as frozen dataclasses, and its validation.

Field defaults are the original's; the paper's per-env values live in the YAML layers
(``config/pets/default.yaml`` < ``config/envs/<env>.yaml``, see ``layers``). A ``PetsConfig`` is
validated when it is built (``validate``): every check names the culprit by its ``-o`` path. The
optimiser sections (``ctrl_cfg.opt_cfg.cfg``) are in ``optimizers``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

from pets_core.config.errors import ConfigError
from pets_core.config.optimizers import CEMCfg, ICEMCfg, MPPICfg, RandomCfg
from pets_core.config.propagation import PropagationSpec
from pets_core.config.variants import Variant, VariantError


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
class OptCfg:
    mode: str
    """CEM, Random, iCEM or MPPI (set by -ca opt-type)."""
    plan_hor: int
    """H: planning horizon."""
    cfg: CEMCfg | RandomCfg | ICEMCfg | MPPICfg
    """The section of ``mode`` (optimizers.OPT_CFGS)."""


@dataclasses.dataclass(frozen=True)
class CtrlLogCfg:
    save_all_models: bool = False
    log_traj_preds: bool = False
    log_particles: bool = False


PRECISIONS = ("fp32", "bf16", "bf16-hidden", "bf16-trunk")
"""How the planner multiplies the model's layers (pets_core.planning.forward.layer_dtypes): fp32;
bf16 every layer; bf16-hidden the hidden-to-hidden layers (input layer and head fp32); bf16-trunk
all but the head."""

GRAPH_MODES = ("auto", "always", "never")
"""``ctrl_cfg.graph``: captured planning and training steps on CUDA (auto), always, or never
(words YAML does not read as booleans, unlike on / off)."""


@dataclasses.dataclass(frozen=True)
class CtrlCfg:
    prop_cfg: PropCfg
    opt_cfg: OptCfg
    log_cfg: CtrlLogCfg
    per: int = 1
    """Actions executed per optimisation."""
    precision: str = "fp32"
    """The planner's matmul precision, one of PRECISIONS. Not in the original (fp32); the bf16
    modes are opt-in speed modes (README: bf16 agreement). Training is always fp32."""
    graph: str = "auto"
    """One of GRAPH_MODES: replay the planner's horizon rollout and the trainer's step as CUDA
    graphs (pets_core.graphs). ``auto``: on CUDA, off elsewhere; the results are the eager path's
    (README: Benchmarks, "Measured on one NVIDIA H200")."""


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
        validate(self)


def float_leaves(node: object, where: str = "") -> Iterator[tuple[str, float]]:
    """(-o path, value) of every float leaf (a tuple's items as ``path[i]``), depth first."""
    for field in dataclasses.fields(node):  # type: ignore[arg-type]
        path, value = f"{where}{field.name}", getattr(node, field.name)
        if dataclasses.is_dataclass(value):
            yield from float_leaves(value, path + ".")
        elif isinstance(value, float):
            yield path, value
        elif isinstance(value, tuple):
            yield from ((f"{path}[{i}]", v) for i, v in enumerate(value) if isinstance(v, float))


def validate(cfg: PetsConfig) -> None:
    """Every cross-leaf rule of a built config; raises ConfigError naming the first culprit.

    Every float leaf must be finite (a nan or inf learning rate, weight decay or log-variance
    bound would train a NaN model to an exit-0 "success"); then each leaf's range."""
    for path, value in float_leaves(cfg):
        if not math.isfinite(value):
            raise ConfigError(f"{path} must be a finite number (got {value})")
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
        "ctrl_cfg.prop_cfg.model_init_cfg.num_nets": init.num_nets,
        "ctrl_cfg.prop_cfg.npart": prop.npart,
        "ctrl_cfg.prop_cfg.model_train_cfg.max_logging": train.max_logging,
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
    if cfg.ctrl_cfg.precision not in PRECISIONS:
        raise ConfigError(
            f"ctrl_cfg.precision {cfg.ctrl_cfg.precision!r}; valid: {', '.join(PRECISIONS)}"
        )
    if cfg.ctrl_cfg.graph not in GRAPH_MODES:
        raise ConfigError(f"ctrl_cfg.graph {cfg.ctrl_cfg.graph!r}; valid: {', '.join(GRAPH_MODES)}")
    if cfg.ctrl_cfg.per > opt.plan_hor:
        raise ConfigError(f"ctrl_cfg.per ({cfg.ctrl_cfg.per}) must be <= plan_hor ({opt.plan_hor})")
    if not 0.0 <= train.holdout_ratio < 1.0:
        raise ConfigError(
            f"model_train_cfg.holdout_ratio must be in [0, 1) (got {train.holdout_ratio})"
        )
    if bad := [w for w in init.weight_decays if w < 0]:
        raise ConfigError(
            f"ctrl_cfg.prop_cfg.model_init_cfg.weight_decays must be >= 0 (got {bad[0]})"
        )
    if not init.min_logvar_init < init.max_logvar_init:
        raise ConfigError(
            "ctrl_cfg.prop_cfg.model_init_cfg.min_logvar_init must be < max_logvar_init "
            f"(got {init.min_logvar_init} and {init.max_logvar_init})"
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
    opt.cfg.check()
    if variant.is_ensemble and init.num_nets <= 1:
        raise ConfigError(
            f"ctrl_cfg.prop_cfg.model_init_cfg.num_nets: ensembled models ({variant.model}) must "
            f"have more than one net (got {init.num_nets})"
        )
    try:
        PropagationSpec.from_prop_cfg(prop)
    except VariantError as err:
        raise ConfigError(str(err)) from None
