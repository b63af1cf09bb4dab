"""MPPI (opt-type MPPI): information-theoretic MPC of Williams et al. (ICRA 2017, T-RO 2018).

The plan is the free-energy-optimal control of the sampling distribution: perturb the current
plan ``U`` with Gaussian noise, weight each perturbed sequence by ``exp(-cost / lambda)`` and move
``U`` to the weighted average. The MPC warm-starts ``U`` with the previous plan shifted left.

Shapes: N population, H horizon, A action dim.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from pets_core.config.optimizers import MPPICfg
from pets_core.planning.cem import check_bounds, check_init
from pets_core.planning.optimizer import Optimizer, Plan


def mppi_weights(costs: Tensor, temperature: float) -> Tensor:  # (N,) -> (N,)
    """``w_k = exp(-(S_k - min S) / lambda) / sum_j exp(-(S_j - min S) / lambda)``.

    Subtracting ``min S`` (the paper's ``rho``) changes nothing mathematically and keeps the best
    weight at ``exp(0) = 1`` (no overflow or underflow to all-zero). Infinite costs get weight 0;
    the caller handles the case where no cost is finite.
    """
    return torch.softmax(-(costs - costs.min()) / temperature, dim=0)


class MPPIOptimizer(Optimizer):
    """MPPI with ``num_iters`` refinements of the plan per call.

    Each iteration: ``eps ~ N(0, (sigma^2) init_var)`` i.i.d. per step (``sigma`` is in units of
    the MPC's initial standard deviation ``(high - low) / 4``), ``V = clip(U + eps)``,
    ``S = cost(V)``, weights ``w = mppi_weights(S, temperature)``, ``U <- sum_k w_k V_k`` (a convex
    combination of in-box sequences, so ``U`` stays in the box). With ``smoothing = s > 0`` the
    new plan is low-pass filtered along the horizon, ``U_t <- (1 - s) U_t + s U_{t-1}`` (mean
    smoothing; 0 = off). The control-cost term ``u^T Sigma^-1 eps`` of the full
    information-theoretic cost is not added (as in mbrl-lib): the cost is the task's alone, the
    same objective CEM, iCEM and random shooting see. Returns ``U``.
    """

    def __init__(
        self,
        *,
        popsize: int,
        num_iters: int,
        temperature: float,
        sigma: float,
        lower: Tensor,  # (H, A)
        upper: Tensor,  # (H, A)
        smoothing: float = 0.0,
    ) -> None:
        if popsize < 1:
            raise ValueError(f"popsize must be >= 1, got {popsize}")
        if num_iters < 1:
            raise ValueError(f"num_iters must be >= 1, got {num_iters}")
        if not temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not sigma > 0.0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        check_bounds(lower, upper)
        self.popsize, self.num_iters = popsize, num_iters
        self.temperature, self.sigma, self.smoothing = temperature, sigma, smoothing
        self.lower, self.upper = lower, upper
        self.config = MPPICfg(popsize, num_iters, temperature, sigma, smoothing)
        self.num_evaluated = 0

    @classmethod
    def from_config(cls, cfg: MPPICfg, lower: Tensor, upper: Tensor, *, per: int = 1):
        return cls(**dataclasses.asdict(cfg), lower=lower, upper=upper)

    @torch.no_grad()
    def plan(
        self,
        init_mean: Tensor,  # (H, A)
        init_var: Tensor,  # (H, A)
        generator: torch.Generator,
    ) -> Plan:  # returns (H, A)
        check_init(init_mean, init_var, self.lower)
        plan = torch.clamp(init_mean, self.lower, self.upper)  # (H, A)
        std = self.sigma * init_var.sqrt()  # (H, A)
        self.num_evaluated = 0
        for _ in range(self.num_iters):
            noise = torch.randn(
                (self.popsize, *plan.shape), generator=generator, device=plan.device
            )  # (N, H, A)
            samples = torch.clamp(plan + std * noise, self.lower, self.upper)
            costs = torch.nan_to_num((yield samples), nan=torch.inf)  # (N,)
            self.num_evaluated += self.popsize
            if not bool(torch.isfinite(costs).any()):  # the one host sync per iteration
                continue  # nothing to weight: keep the plan
            weights = mppi_weights(costs, self.temperature)  # (N,)
            plan = torch.einsum("n,nha->ha", weights, samples)
            if self.smoothing > 0.0:
                plan = torch.clamp(_smooth(plan, self.smoothing), self.lower, self.upper)
        return plan


def _smooth(plan: Tensor, s: float) -> Tensor:
    """Causal exponential filter along the horizon: ``y_0 = x_0``, ``y_t = (1-s) x_t + s y_t-1``."""
    out = plan.clone()
    for t in range(1, plan.shape[0]):
        out[t] = (1 - s) * plan[t] + s * out[t - 1]
    return out
