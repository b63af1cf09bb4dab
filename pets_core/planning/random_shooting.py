"""Random shooting (opt-type Random, §random): the best of uniform samples in the box.

Shapes: N population, H horizon, A action dim.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from pets_core.config.optimizers import RandomCfg
from pets_core.planning.cem import check_bounds, check_init
from pets_core.planning.optimizer import Optimizer, Plan


class RandomShooting(Optimizer):
    """Draw ``popsize`` sequences uniformly in [lower, upper], return the lowest-cost one.

    No iterations and no warm start: ``init_mean`` / ``init_var`` are accepted for the common
    optimiser interface and only checked for shape.
    """

    def __init__(self, *, popsize: int, lower: Tensor, upper: Tensor) -> None:
        if popsize < 1:
            raise ValueError(f"popsize must be >= 1, got {popsize}")
        check_bounds(lower, upper)
        self.popsize, self.lower, self.upper = popsize, lower, upper
        self.config = RandomCfg(popsize)
        self.num_evaluated = 0

    @classmethod
    def from_config(cls, cfg: RandomCfg, lower: Tensor, upper: Tensor, *, per: int = 1):
        return cls(**dataclasses.asdict(cfg), lower=lower, upper=upper)

    @torch.no_grad()
    def plan(
        self,
        init_mean: Tensor,  # (H, A)
        init_var: Tensor,  # (H, A)
        generator: torch.Generator,
    ) -> Plan:  # returns (H, A)
        check_init(init_mean, init_var, self.lower)
        shape = (self.popsize, *self.lower.shape)
        u = torch.rand(shape, generator=generator, device=self.lower.device)  # (N, H, A)
        samples = self.lower + (self.upper - self.lower) * u
        costs = torch.nan_to_num((yield samples), nan=torch.inf)  # (N,)
        self.num_evaluated = self.popsize
        return samples[torch.argmin(costs)]
