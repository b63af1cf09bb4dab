"""The optimiser protocol: what CEM, iCEM, MPPI and random shooting share, written down once.

An optimiser is built from its frozen config (``pets_core.config.optimizers``: ``CEMCfg``,
``ICEMCfg``, ``MPPICfg``, ``RandomCfg``) and the action box ``[lower, upper]`` ``(H, A)``, and
plans as a coroutine: ``plan(init_mean, init_var, generator)`` yields each population of
candidate sequences ``(N, H, A)``, is sent their costs ``(N,)`` and returns the solution
``(H, A)``. All of its random draws come from ``generator``, made inside the coroutine before it
yields the candidates they produce. ``optimize(cost_fn, ...)`` drives that coroutine with one cost
function (a single run); ``planning.cohort`` drives the coroutines of S seeds in lockstep and
costs their candidates in one rollout. One implementation of each optimiser serves both.

Shapes: N population, H horizon, A action dim.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Protocol, Self, runtime_checkable

from torch import Tensor

from pets_core.config.optimizers import CEMCfg, ICEMCfg, MPPICfg, RandomCfg

CostFn = Callable[[Tensor], Tensor]  # (N, H, A) -> (N,), lower is better
Plan = Generator[Tensor, Tensor, Tensor]
"""Yields candidates ``(N, H, A)``, is sent their costs ``(N,)``, returns the solution."""
OptimizerCfg = CEMCfg | ICEMCfg | MPPICfg | RandomCfg


@runtime_checkable
class Optimizer(Protocol):
    """Every planner optimiser (``run.builders.make_optimizer`` builds them from their config)."""

    config: OptimizerCfg
    """The frozen settings it was built from."""
    lower: Tensor  # (H, A)
    upper: Tensor  # (H, A)
    num_evaluated: int
    """Candidate sequences evaluated by the last plan."""

    @classmethod
    def from_config(cls, cfg, lower: Tensor, upper: Tensor, *, per: int = 1) -> Self:
        """The optimiser of ``cfg`` over ``[lower, upper]``; ``per`` is the number of actions the
        MPC executes per plan (iCEM shifts its kept elites by it; the others ignore it)."""
        ...

    def plan(self, init_mean: Tensor, init_var: Tensor, generator) -> Plan:
        """The coroutine of one plan from ``(init_mean, init_var)`` ``(H, A)`` each."""
        ...

    def reset(self) -> None:
        """A new episode: forget whatever the last plan left (iCEM's elites); else nothing."""

    def optimize(self, cost_fn: CostFn, init_mean: Tensor, init_var: Tensor, generator) -> Tensor:
        """One plan with ``cost_fn`` pricing every population: the solution ``(H, A)``."""
        return run_plan(self.plan(init_mean, init_var, generator), cost_fn)


def run_plan(plan: Plan, cost_fn: CostFn) -> Tensor:
    """Drive ``plan`` to its end, answering each population with ``cost_fn``."""
    try:
        samples = next(plan)
        while True:
            samples = plan.send(cost_fn(samples))
    except StopIteration as done:
        return done.value
