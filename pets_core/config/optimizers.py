"""The optimiser sections of the tree: one frozen dataclass per opt-type, each checking its leaves.

The YAML layers give each optimiser's leaves under ``ctrl_cfg.opt_cfg.cfg``, one table per -ca
opt-type (``cfg: {CEM: {popsize: 400, ...}, Random: ...}``); ``-ca opt-type`` keeps the chosen
one as ``ctrl_cfg.opt_cfg.cfg`` (``overrides.apply_variant``), the section ``-o
ctrl_cfg.opt_cfg.cfg.popsize`` addresses: one spelling in the layers, on the command line and in
a run's config.yaml.
``check()`` runs inside the whole tree's validation (``tree.validate``), after the generic
``popsize > 0``; its messages name the leaf by its ``-o`` path.
"""

from __future__ import annotations

import dataclasses

from pets_core.config.errors import ConfigError

WHERE = "ctrl_cfg.opt_cfg.cfg"
"""The -o path every optimiser section is addressed by."""


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

    def check(self) -> None:
        _check_elites(self.num_elites, self.popsize)
        if self.var_update not in ("blended", "elite"):
            raise ConfigError(f"{WHERE}.var_update {self.var_update!r}; valid: blended, elite")
        _check_rules(
            self,
            {
                "max_iters": (self.max_iters >= 1, ">= 1"),
                "alpha": (0.0 <= self.alpha < 1.0, "in [0, 1)"),
                "epsilon": (self.epsilon >= 0.0, ">= 0"),
            },
        )


@dataclasses.dataclass(frozen=True)
class RandomCfg:
    popsize: int

    def check(self) -> None:
        """popsize > 0 is checked with the tree's other positive leaves."""


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

    def check(self) -> None:
        _check_elites(self.num_elites, self.popsize)
        _check_rules(
            self,
            {
                "max_iters": (self.max_iters >= 1, ">= 1"),
                "alpha": (0.0 <= self.alpha < 1.0, "in [0, 1)"),
                "noise_beta": (self.noise_beta >= 0.0, ">= 0"),
                "pop_decay": (self.pop_decay >= 1.0, ">= 1"),
                "keep_elites_frac": (0.0 <= self.keep_elites_frac <= 1.0, "in [0, 1]"),
            },
        )


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

    def check(self) -> None:
        _check_rules(
            self,
            {
                "num_iters": (self.num_iters >= 1, ">= 1"),
                "temperature": (self.temperature > 0.0, "> 0"),
                "sigma": (self.sigma > 0.0, "> 0"),
                "smoothing": (0.0 <= self.smoothing < 1.0, "in [0, 1)"),
            },
        )


OPT_CFGS: dict[str, type] = {"CEM": CEMCfg, "Random": RandomCfg, "iCEM": ICEMCfg, "MPPI": MPPICfg}
"""opt-type -> the dataclass of its ctrl_cfg.opt_cfg.cfg (its table's key in the YAML layers)."""


def _check_elites(num_elites: int, popsize: int) -> None:
    if not 0 < num_elites <= popsize:
        raise ConfigError(f"{WHERE}.num_elites must be in 1..popsize={popsize} (got {num_elites})")


def _check_rules(section: object, rules: dict[str, tuple[bool, str]]) -> None:
    """leaf -> (holds, the rule in words); the first failing leaf is the error."""
    for name, (ok, rule) in rules.items():
        if not ok:
            raise ConfigError(f"{WHERE}.{name} must be {rule} (got {getattr(section, name)})")
