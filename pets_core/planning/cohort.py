"""One plan for the S seeds of a cohort: each seed's optimiser on its own state, one rollout.

A cohort is S seeds of one (env, variant, settings) stepped in lockstep. Each seed keeps its own
``MPC`` (prev_sol, action buffer, torch generator, numpy rng, optimiser state such as iCEM's kept
elites, prediction log, plan timing): the per-seed objects are the source of truth, this module
only drives them. ``CohortMPC(mpcs).act(observations)`` equals
``[m.act(o) for m, o in zip(mpcs, observations)]`` bit for bit (actions, every state above, each
generator's state after), and ``MPC.act`` itself is ``act_together([mpc], [obs])``: S = 1 is the
single run, one implementation.

How one step plans: each seed that needs a plan (model trained, action buffer empty; the others
take their random or buffered action exactly as alone) starts its optimiser's coroutine
(``planning.optimizer``). Every round, each seed's coroutine draws its population from its own
generator, in the order a single run draws it, then all seeds' populations are costed together
(``rollout.predicted_costs_together``: each seed's rollout draws from its own generator, runs on its
own model, normaliser, logvar bounds, obs and goal), then each coroutine updates on its own costs.
A seed whose plan has ended (CEM's eps stop, or its last iteration) draws nothing more while the
others go on.

The rollout's arithmetic is the single run's (``predicted_costs_together`` keeps each seed's
candidate blocks and runs the single call's code on them), so the numbers are equal by
construction; what the cohort shares on the CPU is one pass over the planner's lanes per round
(one join for all seeds instead of one per seed and iteration). Stacking the seeds' weights into
one S x E batched matmul (a bigger bmm, as the GPU needs) is not done here: on the CPU the fast
path already runs one oneDNN matmul chain per member, which is what such a stack would run.
CUDA-graphed rollouts (``graph=True``) stay single-run: a cohort of more than one seed refuses
them.

Plan timing: the wall time of a step's joint plan, divided equally among the seeds that planned
in it, is each seed's ``plan_seconds`` share (so per-seed seconds per action sum to the cohort's).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from pets_core.planning.rollout import predicted_costs_together

if TYPE_CHECKING:
    from pets_core.planning.mpc import MPC


class CohortMPC:
    """The controllers of S seeds, planned together; see the module docstring."""

    def __init__(self, mpcs: Sequence[MPC]) -> None:
        self.mpcs = list(mpcs)
        check_cohort(self.mpcs)

    def __len__(self) -> int:
        return len(self.mpcs)

    def act(self, observations: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Seed s's action at ``observations[s] (O,)``, as ``mpcs[s].act(observations[s])``."""
        O, S = self.mpcs[0].task.obs_dim, len(self.mpcs)
        if len(observations) != S:
            raise ValueError(f"CohortMPC.act: got {len(observations)} observations for {S} seeds")
        for s, obs in enumerate(observations):
            if np.shape(obs) != (O,):
                raise ValueError(
                    f"CohortMPC.act: observations[{s}] has shape {np.shape(obs)}, expected (O={O},)"
                )
        return act_together(self.mpcs, observations)


def check_cohort(mpcs: Sequence[MPC]) -> None:
    """One clear ValueError when ``mpcs`` cannot plan as one cohort: none, settings that differ
    from ``mpcs[0]`` (what differs, both values), per-seed state shared between two of them, or
    CUDA-graphed rollouts with more than one seed."""
    if not mpcs:
        raise ValueError("CohortMPC needs at least one MPC")
    first = _settings(mpcs[0])
    for s, mpc in enumerate(mpcs[1:], start=1):
        for name, value in _settings(mpc).items():
            if not _same(value, first[name]):
                raise ValueError(
                    f"CohortMPC: mpcs[{s}] differs from mpcs[0] in {name}: {value} vs {first[name]}"
                )
    seen: dict[tuple[str, int], int] = {}  # (what, id) -> the first seed holding it
    for s, mpc in enumerate(mpcs):
        own = {"model": mpc.model, "optimizer": mpc.optimizer, "generator": mpc.generator,
               "rng": mpc.rng}  # fmt: skip
        for name, obj in own.items():
            other = seen.setdefault((name, id(obj)), s)
            if other != s:
                raise ValueError(
                    f"CohortMPC: mpcs[{other}] and mpcs[{s}] share one {name}; "
                    "each seed needs its own"
                )
    if len(mpcs) > 1 and mpcs[0].graph:
        raise ValueError(
            "CohortMPC: graph=True (CUDA-graphed rollouts) plans one seed at a time; "
            "set ctrl_cfg.graph never for a cohort of more than one seed"
        )


def _settings(mpc: MPC) -> dict[str, object]:
    """What must be equal across a cohort's seeds (env, optimiser, propagation, device, ...)."""
    return {
        "env": mpc.task.name,
        "obs/action dims": (mpc.task.obs_dim, mpc.task.act_dim),
        "action_low": mpc.action_low,
        "action_high": mpc.action_high,
        "plan_hor": mpc.plan_hor,
        "per": mpc.per,
        "optimizer": mpc.optimizer.config,
        "propagation": mpc.propagation,
        "device": mpc.device,
        "fast": mpc.fast,
        "precision": mpc.precision,
        "graph": mpc.graph,
        "log_traj_preds": mpc.log_traj_preds,
        "log_particles": mpc.log_particles,
    }


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return a.shape == np.shape(b) and bool(np.array_equal(a, b))
    return type(a) is type(b) and a == b


@torch.no_grad()
def act_together(mpcs: Sequence[MPC], observations: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``[m.act(o) for m, o in zip(mpcs, observations)]``, the seeds' plans in lockstep."""
    actions: list[np.ndarray | None] = [mpc.ready_action() for mpc in mpcs]
    planning = [s for s, action in enumerate(actions) if action is None]
    if not planning:
        return actions
    start = time.perf_counter()
    obs: dict[int, Tensor] = {}
    plans = {}
    for s in planning:
        obs[s], plans[s] = mpcs[s].start_plan(observations[s])
    samples: dict[int, Tensor] = {}  # seed -> its current population (N, H, A)
    solutions: dict[int, Tensor] = {}  # seed -> its plan's solution (H, A)

    def advance(s: int, costs: Tensor | None) -> None:
        """Seed s's optimiser takes its costs and draws its next population, or ends."""
        try:
            samples[s] = plans[s].send(costs)
        except StopIteration as done:
            solutions[s] = done.value
            samples.pop(s, None)

    for s in planning:
        advance(s, None)
    while samples:
        for s, costs in _costs(mpcs, obs, samples).items():
            advance(s, costs)
    planned = {s: mpcs[s].commit_plan(solutions[s]) for s in planning}  # (per, A) each
    seconds = (time.perf_counter() - start) / len(planning)
    for s in planning:
        actions[s] = mpcs[s].finish_plan(obs[s], solutions[s], planned[s], seconds)
    return actions


def _costs(mpcs, obs: dict[int, Tensor], samples: dict[int, Tensor]) -> dict[int, Tensor]:
    """Each seed's predicted costs ``(N,)`` of its population, one rollout pass for all (a
    graphed controller, single-run only, through its own captured rollout)."""
    seeds = list(samples)
    if any(mpcs[s].graph for s in seeds):
        return {s: mpcs[s].costs(obs[s], samples[s]) for s in seeds}
    queries = [mpcs[s].cost_query(obs[s], samples[s]) for s in seeds]
    return dict(zip(seeds, predicted_costs_together(queries), strict=True))
