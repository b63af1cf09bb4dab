"""Random shooting (opt-type Random, §random): the best of uniform samples in the box.

Shapes: N population, H horizon, A action dim.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pets_core.planning.cem import CostFn, check_bounds, check_init


class RandomShooting:
    """Draw ``popsize`` sequences uniformly in [lower, upper], return the lowest-cost one.

    No iterations and no warm start: ``init_mean`` / ``init_var`` are accepted for the common
    optimiser interface and only checked for shape.
    """

    def __init__(self, *, popsize: int, lower: Tensor, upper: Tensor) -> None:
        if popsize < 1:
            raise ValueError(f"popsize must be >= 1, got {popsize}")
        check_bounds(lower, upper)
        self.popsize, self.lower, self.upper = popsize, lower, upper

    @torch.no_grad()
    def optimize(
        self,
        cost_fn: CostFn,
        init_mean: Tensor,  # (H, A)
        init_var: Tensor,  # (H, A)
        generator: torch.Generator,
    ) -> Tensor:  # (H, A)
        check_init(init_mean, init_var, self.lower)
        shape = (self.popsize, *self.lower.shape)
        u = torch.rand(shape, generator=generator, device=self.lower.device)  # (N, H, A)
        samples = self.lower + (self.upper - self.lower) * u
        costs = torch.nan_to_num(cost_fn(samples), nan=torch.inf)  # (N,)
        return samples[torch.argmin(costs)]
