"""Cross-entropy method over box-bounded action sequences, as the original's TF CEM (§cem).

Shapes: N population, K elites, H horizon, A action dim.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

from pets_core.config.optimizers import CEMCfg
from pets_core.planning.optimizer import Optimizer, Plan

VarUpdate = Literal["blended", "elite"]


def check_init(init_mean: Tensor, init_var: Tensor, lower: Tensor) -> None:
    """An optimizer's start ``(H, A)`` must match its bounds' shape."""
    if init_mean.shape != lower.shape or init_var.shape != lower.shape:
        raise ValueError(
            f"init_mean {tuple(init_mean.shape)} and init_var {tuple(init_var.shape)} must "
            f"match the bounds' (H, A) = {tuple(lower.shape)}"
        )


def check_bounds(lower: Tensor, upper: Tensor) -> None:
    """``lower``/``upper`` are ``(H, A)`` with H >= 1 and ``lower <= upper``."""
    if lower.ndim != 2 or lower.shape != upper.shape:
        raise ValueError(
            f"lower and upper must both be (H, A), got {tuple(lower.shape)}, {tuple(upper.shape)}"
        )
    if lower.shape[0] < 1:
        raise ValueError(f"horizon H must be >= 1, got lower of shape {tuple(lower.shape)}")
    if bool((lower > upper).any()):
        raise ValueError("lower must be <= upper everywhere")


class CEMOptimizer(Optimizer):
    """CEM with the original's truncated sampling, variance cap, alpha-blending and eps stop.

    While ``i < max_iters`` and ``max(var) > epsilon``:
    ``var_c = min(((mean - lower)/2)^2, ((upper - mean)/2)^2, var)``; draw ``popsize`` samples
    from N(mean, var_c) truncated at +-2 std (inverse-CDF sampling, no rejection loop), so every
    sample lies in the box; the ``num_elites`` lowest costs give the elite mean and population
    variance; ``mean <- alpha mean + (1 - alpha) elite_mean`` and
    ``var <- alpha var + (1 - alpha) elite_var`` (``var_update="blended"``, the original since
    Nov 2018) or ``var <- elite_var`` (``"elite"``, the earlier code the paper's runs presumably
    used). Returns the final mean, not the best sample.
    """

    def __init__(
        self,
        *,
        popsize: int,
        num_elites: int,
        max_iters: int,
        epsilon: float,
        alpha: float,
        lower: Tensor,  # (H, A)
        upper: Tensor,  # (H, A)
        var_update: VarUpdate = "blended",
    ) -> None:
        if num_elites < 1:
            raise ValueError(f"num_elites must be >= 1, got {num_elites}")
        if popsize < num_elites:
            raise ValueError(f"popsize ({popsize}) must be >= num_elites ({num_elites})")
        if max_iters < 0:
            raise ValueError(f"max_iters must be >= 0, got {max_iters}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if var_update not in ("blended", "elite"):
            raise ValueError(f"var_update must be 'blended' or 'elite', got {var_update!r}")
        check_bounds(lower, upper)
        self.popsize, self.num_elites, self.max_iters = popsize, num_elites, max_iters
        self.epsilon, self.alpha, self.var_update = epsilon, alpha, var_update
        self.lower, self.upper = lower, upper
        self.config = CEMCfg(popsize, num_elites, max_iters, epsilon, alpha, var_update)
        self.num_iters = 0
        """Iterations run by the last plan (< max_iters when eps stopped it)."""
        self.num_evaluated = 0

    @classmethod
    def from_config(cls, cfg: CEMCfg, lower: Tensor, upper: Tensor, *, per: int = 1):
        return cls(**dataclasses.asdict(cfg), lower=lower, upper=upper)

    @torch.no_grad()
    def plan(
        self,
        init_mean: Tensor,  # (H, A)
        init_var: Tensor,  # (H, A)
        generator: torch.Generator,
    ) -> Plan:  # returns (H, A)
        check_init(init_mean, init_var, self.lower)
        mean, var = init_mean.clone(), init_var.clone()
        alpha = self.alpha
        self.num_iters = self.num_evaluated = 0
        # one host sync per iteration (the eps test), none inside the cost function; once the
        # test fails the plan ends and draws nothing more
        while self.num_iters < self.max_iters and float(var.max()) > self.epsilon:
            samples = self.sample(mean, var, generator)  # (N, H, A)
            costs = yield samples  # (N,)
            self.num_evaluated += self.popsize
            costs = torch.nan_to_num(costs, nan=torch.inf)  # a NaN candidate is never an elite
            elites = samples[torch.topk(costs, self.num_elites, largest=False).indices]  # (K, H, A)
            elite_mean = elites.mean(dim=0)
            elite_var = (elites - elite_mean).square().mean(dim=0)
            mean = alpha * mean + (1 - alpha) * elite_mean
            var = (
                alpha * var + (1 - alpha) * elite_var if self.var_update == "blended" else elite_var
            )
            self.num_iters += 1
        return mean

    def sample(self, mean: Tensor, var: Tensor, generator: torch.Generator) -> Tensor:
        half_gap = torch.minimum(mean - self.lower, self.upper - mean) / 2
        std = torch.minimum(half_gap.square(), var).sqrt()  # (H, A)
        noise = torch.empty((self.popsize, *mean.shape), device=mean.device, dtype=mean.dtype)
        torch.nn.init.trunc_normal_(noise, a=-2.0, b=2.0, generator=generator)  # (N, H, A)
        # |noise| <= 2 and 2 std <= the gap to each bound; the clamp only absorbs float rounding
        return torch.clamp(noise.mul_(std).add_(mean), self.lower, self.upper)
