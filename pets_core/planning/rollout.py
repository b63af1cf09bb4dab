"""The rollout (§propagation): predicted particles and costs of candidate action sequences.

How particles move is a ``PropagationSpec`` (planning.propagation); each mode is one strategy
in ``planning.strategies.STRATEGIES``.

Shapes: N candidates, P particles per candidate, E members, H horizon, O obs, A action, T target.

Particles are numbered candidate-major as in the original, row ``k * P + p``. Internally:

* TSinf keeps them member-major, ``(E, N, P/E, O)``: particle ``p`` of every candidate is pinned
  to member ``p // (P/E)`` for the whole horizon, so each step is one ``members`` call with no
  gather (the original's reshape to ``[B, K*P/B, d]``).
* E, DS, TS1 and MM keep ``(N, P, O)``. TS1 draws, per candidate and step, a uniformly random
  permutation of the P particles (``rand(N, P).argsort``), gives position ``i`` to member
  ``i // (P/E)`` (exactly P/E particles per member: balanced), predicts and undoes the permutation.
  DS and MM use the ensemble's moment-matched Gaussian at each particle's own input; MM then
  replaces all P samples of a candidate by fresh draws from their per-dim mean and population
  variance, on the model OUTPUT (a delta for most dims), before ``obs_postproc``.

Sampling ``p = mean + std * eps`` happens when the variance is used: not under E or ``ign_var``,
and not for deterministic members under TS* (the original forces ``ign_var`` for DE + TS*); DS/MM
with DE sample from the variance of the member means (§predict). A particle whose accumulated
cost is NaN costs 1e6; a candidate's cost is the mean over its particles (undiscounted sum over H).

All steps are batched on the model's device; a call's randomness (sampling noise, TS1
permutations, MM re-draws) comes from one ``torch.Generator``, drawn up front in a fixed order, and
the horizon loop has no host synchronisation. Candidates never interact, so on CPU blocks of them
roll out concurrently on single-threaded lanes (pets_core.planning.lanes) with the same numbers.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from itertools import pairwise
from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor

from pets_core.config.propagation import PropagationSpec
from pets_core.planning.forward import make_predictor
from pets_core.planning.lanes import num_lanes, run_chains
from pets_core.planning.strategies import STRATEGIES

_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model -> (predictor, {call key: StaticGraph}): the captured rollouts of the model's current
planning layout, one per shape, task, goal use and matmul mode (iCEM's shrinking populations each
keep theirs instead of recapturing at every CEM iteration)."""

MAX_GRAPHS_PER_MODEL = 16
"""Captured rollouts kept per model (the oldest goes first); each holds its own buffers."""

NAN_COST = 1e6
"""Cost of a particle whose accumulated cost is NaN (the original's ``tf.where(is_nan, 1e6)``)."""


def _check_inputs(task, obs: Tensor, action_seqs: Tensor) -> None:
    if obs.ndim != 1 or obs.shape[0] != task.obs_dim:
        raise ValueError(f"obs must have shape (O={task.obs_dim},), got {tuple(obs.shape)}")
    if action_seqs.ndim != 3 or action_seqs.shape[2] != task.act_dim:
        raise ValueError(
            f"action_seqs must have shape (N, H, A={task.act_dim}), got {tuple(action_seqs.shape)}"
        )
    if action_seqs.shape[0] < 1 or action_seqs.shape[1] < 1:
        raise ValueError(
            f"need N >= 1 candidates and horizon H >= 1, got {tuple(action_seqs.shape)}"
        )


@torch.no_grad()
def predicted_costs(
    model,
    task,
    obs: Tensor,  # (O,)
    action_seqs: Tensor,  # (N, H, A)
    *,
    spec: PropagationSpec,
    goal: Tensor | None,
    generator: torch.Generator,
    fast: bool | str = "auto",
    precision: str = "fp32",
    graph: bool = False,
) -> Tensor:  # (N,)
    """Mean over P particles of the undiscounted predicted cost of each candidate (§propagation).

    ``fast`` picks how the model is called (pets_core.planning.forward): ``"auto"`` uses the
    planning layout of the model's weights when it exposes them, ``False`` the contract's
    ``predict`` / ``predict_moments``; both give the same numbers up to float rounding.
    ``precision="bf16"`` (opt-in, fast layout only) runs the model's matmuls in bfloat16.
    ``graph=True`` (fast layout only) replays the horizon rollout as one captured CUDA graph
    (pets_core.graphs): the same costs, one launch instead of ~1000 on CUDA.
    """
    if graph:
        return _graphed_costs(model, task, obs, action_seqs, spec, goal, generator, fast, precision)
    costs, _ = _propagate(
        model, task, obs, action_seqs, spec, goal, generator, fast, precision, record=False
    )
    return costs


@torch.no_grad()
def predicted_particles(
    model,
    task,
    obs: Tensor,  # (O,)
    action_seqs: Tensor,  # (N, H, A)
    *,
    spec: PropagationSpec,
    goal: Tensor | None,
    generator: torch.Generator,
    fast: bool | str = "auto",
    precision: str = "fp32",
) -> tuple[Tensor, Tensor]:
    """The particles' predicted observations ``(N, H+1, P, O)`` (index 0 = obs) and costs ``(N,)``.

    Particle ``p`` here is particle ``p`` of the original's candidate-major layout.
    """
    costs, states = _propagate(
        model, task, obs, action_seqs, spec, goal, generator, fast, precision, record=True
    )
    return torch.stack(states, dim=1), costs


class CostQuery(NamedTuple):
    """One ``predicted_costs`` call (without ``graph``): one seed's candidates at its obs."""

    model: object
    task: object
    obs: Tensor  # (O,)
    action_seqs: Tensor  # (N, H, A)
    spec: PropagationSpec
    goal: Tensor | None
    generator: torch.Generator
    fast: bool | str = "auto"
    precision: str = "fp32"


@torch.no_grad()
def predicted_costs_together(queries: Sequence[CostQuery]) -> list[Tensor]:  # [(N_s,)]
    """``[predicted_costs(*q) for q in queries]`` with the same numbers, in one pass: the seeds
    of a cohort (planning.cohort), each its own model, obs, goal, candidates and generator.

    Each query is split into exactly the candidate blocks its single call uses and each block
    runs the single call's code on the same inputs (its own model's planning layout and
    normaliser, its own draws from its own generator, in the same order), so the costs are the
    single call's bit for bit. What is shared is the pass over the CPU lanes: the blocks that the
    single calls would each hand to the lanes (``run_chains`` of more than one block) go there
    together, one join for all seeds; a query of one block runs on the calling thread, as alone.
    Two queries must not share a model (its planning layout holds one prepared batch at a time).
    """
    prepared = [_prepare(*q, record=False) for q in queries]
    predictors = [predictor for predictor, _, _ in prepared]
    if len({id(p) for p in predictors}) != len(predictors):
        raise ValueError("predicted_costs_together: two queries share one model; give each its own")
    run_chains([job for _, jobs, _ in prepared if len(jobs) > 1 for job in jobs])
    for _, jobs, _ in prepared:
        if len(jobs) == 1:
            run_chains(jobs)
    return [torch.cat([cost for cost, _ in results]) for _, _, results in prepared]


def _propagate(
    model, task, obs, action_seqs, spec: PropagationSpec, goal, generator, fast, precision, *,
    record: bool,
) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    _, jobs, results = _prepare(
        model, task, obs, action_seqs, spec, goal, generator, fast, precision, record=record
    )
    run_chains(jobs)
    costs = torch.cat([cost for cost, _ in results])
    return costs, (results[0][1] if record else [])


def _prepare(
    model, task, obs, action_seqs, spec: PropagationSpec, goal, generator, fast, precision, *,
    record: bool,
) -> tuple[object, list, list]:  # fmt: skip
    """The predictor (prepared for ``action_seqs``), the rollout's jobs (one per block of
    candidates) and the list each job writes its block's ``(costs, states)`` into. The random
    draws are made here, from ``generator``, before any job runs."""
    spec.check_model(model)
    _check_inputs(task, obs, action_seqs)
    obs = obs.to(dtype=torch.float32, device=action_seqs.device)
    N, H, A = action_seqs.shape
    predictor = make_predictor(model, A, fast, precision)
    predictor.prepare(action_seqs)
    draws = STRATEGIES[spec.mode].draw(spec, H, N, task.out_dim, generator, obs.device)
    # candidates never interact: blocks of them roll out independently (on CPU lanes, each
    # single-threaded, no barrier inside the horizon loop; see planning.lanes)
    lanes = num_lanes() if predictor.supports_lanes and not record else 1
    num_blocks = 2 * lanes if N >= 8 * lanes else min(lanes, N)
    bounds = [N * i // num_blocks for i in range(num_blocks + 1)]
    results: list = [None] * num_blocks

    def block(i: int, cand: slice):
        def job() -> None:
            results[i] = _rollout(
                predictor, task, spec, obs, action_seqs, goal, draws, cand, record=record
            )

        return job

    jobs = [block(i, slice(lo, hi)) for i, (lo, hi) in enumerate(pairwise(bounds))]
    return predictor, jobs, results


def _graphed_costs(
    model, task, obs, action_seqs, spec: PropagationSpec, goal, generator, fast, precision
) -> Tensor:
    """``_propagate``'s costs through a StaticGraph (pets_core.graphs): the same draws (same
    order, same generator), the same rollout function over all N candidates in one block, on
    fixed buffers; one CUDA graph replay per call on CUDA. Graphs are kept per model and call
    shape (``_GRAPHS``) and captured again when the planning layout (the weights) changes."""
    from pets_core.graphs import StaticGraph

    spec.check_model(model)
    _check_inputs(task, obs, action_seqs)
    if fast is False:
        raise ValueError("graph=True needs the fast planner forward (fast='auto' or 'bmm')")
    obs = obs.to(dtype=torch.float32, device=action_seqs.device)
    N, H, A = action_seqs.shape
    predictor = make_predictor(model, A, fast, precision)
    draws = STRATEGIES[spec.mode].draw(spec, H, N, task.out_dim, generator, obs.device)
    goal = None if goal is None else goal.to(dtype=torch.float32, device=obs.device)

    def rollout(obs, action_seqs, goal, **draws) -> Tensor:  # on the static buffers
        predictor.prepare(action_seqs)
        cost, _ = _rollout(
            predictor, task, spec, obs, action_seqs, goal, draws, slice(0, N), record=False
        )
        return cost

    # the fp32 matmul mode is baked into the captured kernels (TF32 or not): part of the key
    key = (task.name, spec, goal is None, tuple(action_seqs.shape),
           torch.get_float32_matmul_precision())  # fmt: skip
    cached = _GRAPHS.get(model)
    if cached is None or cached[0] is not predictor:  # new weights: a new planning layout
        _GRAPHS.pop(model, None)  # free the old graphs' memory before capturing anew
        cached = _GRAPHS[model] = (predictor, {})
    graphs = cached[1]
    if key not in graphs:
        if len(graphs) >= MAX_GRAPHS_PER_MODEL:
            graphs.pop(next(iter(graphs)))
        inputs = {"obs": obs, "action_seqs": action_seqs, "goal": goal, **draws}
        graphs[key] = StaticGraph(rollout, inputs)
    return graphs[key](obs=obs, action_seqs=action_seqs, goal=goal, **draws).clone()


def _rollout(
    predictor, task, spec: PropagationSpec, obs, action_seqs, goal, draws, cand: slice, *,
    record: bool,
) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    """Candidates ``cand``: mean particle cost ``(Nc,)`` and, if ``record``, the states."""
    strategy, use_var = STRATEGIES[spec.mode], spec.uses_variance
    E, P, H = spec.ensemble_size, spec.num_particles, action_seqs.shape[1]
    Nc = cand.stop - cand.start
    if strategy.member_major:
        state = obs.expand(E, Nc, P // E, -1)  # (E, Nc, P/E, O): particle p = e * P/E + j
    else:
        state = obs.expand(Nc, P, -1)  # (Nc, P, O)
    states = [_canonical(state, Nc, P)] if record else []
    cost = torch.zeros(state.shape[:-1], device=obs.device)  # (E, Nc, P/E) or (Nc, P)
    for t in range(H):
        obs_in = task.obs_preproc(state)  # (.., F)
        pred = strategy.step(predictor, obs_in, t, use_var, cand, draws)
        state = task.obs_postproc(state, pred)
        cost += task.obs_cost(state, goal)
        if record:
            states.append(_canonical(state, Nc, P))
    cost = _canonical(cost[..., None], Nc, P)[..., 0]  # (Nc, P)
    cost = cost + task.ac_cost(action_seqs[cand]).sum(dim=1)[:, None]  # same a_t per particle
    cost = torch.where(torch.isnan(cost), torch.full_like(cost, NAN_COST), cost)
    return cost.mean(dim=1), states


def _canonical(x: Tensor, N: int, P: int) -> Tensor:
    """``(E, N, P/E, D)`` or ``(N, P, D)`` -> ``(N, P, D)`` in the original's particle order."""
    if x.ndim == 4:
        return rearrange(x, "e n r d -> n (e r) d")
    return x.expand(N, P, -1)
