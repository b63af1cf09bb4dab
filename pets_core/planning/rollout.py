"""The rollout (spec sec. 4): predicted particles and costs of candidate action sequences.

How particles move is a ``PropagationSpec`` (planning.propagation); each mode is one strategy
in ``STRATEGIES``.

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
with DE sample from the variance of the member means (spec sec. 3.4). A particle whose accumulated
cost is NaN costs 1e6; a candidate's cost is the mean over its particles (undiscounted sum over H).

All steps are batched on the model's device; a call's randomness (sampling noise, TS1
permutations, MM re-draws) comes from one ``torch.Generator``, drawn up front in a fixed order, and
the horizon loop has no host synchronisation. Candidates never interact, so on CPU blocks of them
roll out concurrently on single-threaded lanes (pets_core.planning.lanes) with the same numbers.
"""

from __future__ import annotations

import weakref
from itertools import pairwise

import torch
from einops import rearrange
from torch import Tensor

from pets_core.planning.forward import make_predictor
from pets_core.planning.lanes import num_lanes, run_chains
from pets_core.planning.propagation import PropagationSpec, PropMode

_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model -> (key, StaticGraph of the rollout): one captured planning graph per model."""

NAN_COST = 1e6
"""Cost of a particle whose accumulated cost is NaN (the original's ``tf.where(is_nan, 1e6)``)."""


class _Strategy:
    """One propagation mode: its particle layout, its random draws and one horizon step."""

    member_major = False
    """True: particles are kept ``(E, N, P/E, O)``, else ``(N, P, O)``."""

    def draw(self, spec: PropagationSpec, H, N, T, generator, device) -> dict[str, Tensor]:
        """The noise ``eps`` of ``p = mean + std * eps`` when the variance is used, then the
        mode's own draws, in this order (the numbers must not depend on the lane split)."""
        if not spec.uses_variance:
            return {}
        P, E = spec.num_particles, spec.ensemble_size
        shape = (H, E, N, P // E, T) if spec.is_trajectory_sampling else (H, N, P, T)
        return {"eps": torch.randn(shape, generator=generator, device=device)}

    def step(self, predictor, obs_in: Tensor, t: int, use_var: bool, cand: slice, draws):
        """The model outputs of step ``t`` for the candidates ``cand``, in the state's layout."""
        raise NotImplementedError


def _step_eps(draws: dict, t: int, cand: slice, member_axis: bool) -> Tensor | None:
    eps = draws.get("eps")
    if eps is None:
        return None
    return eps[t, :, cand] if member_axis else eps[t, cand]


class _TSinf(_Strategy):
    """Particle ``p`` of every candidate pinned to member ``p // (P/E)``: one ``members`` call
    per step, no gather (the original's reshape to ``[B, K*P/B, d]``)."""

    member_major = True

    def step(self, predictor, obs_in, t, use_var, cand, draws):
        mean, std = predictor.members(obs_in, t, use_var, cand)
        return _sample(mean, std, _step_eps(draws, t, cand, member_axis=True))


class _TS1(_Strategy):
    """Per candidate and step a uniformly random permutation of the P particles; position i
    uses member ``i // (P/E)`` (balanced), then the permutation is undone."""

    def draw(self, spec, H, N, T, generator, device):
        draws = super().draw(spec, H, N, T, generator, device)
        P = spec.num_particles  # perm[t, n, i]: the particle at position i
        draws["perm"] = torch.rand(H, N, P, generator=generator, device=device).argsort(dim=-1)
        return draws

    def step(self, predictor, obs_in, t, use_var, cand, draws):
        """``obs_in (N, P, F)`` -> ``(N, P, T)``."""
        E, perm = predictor.ensemble_size, draws["perm"][t, cand]  # (N, P)
        x = obs_in.gather(1, perm[..., None].expand(-1, -1, obs_in.shape[-1]))
        x = rearrange(x, "n (e r) f -> e n r f", e=E).contiguous()  # (E, N, P/E, F)
        mean, std = predictor.members(x, t, use_var, cand)
        eps = _step_eps(draws, t, cand, member_axis=True)
        pred = rearrange(_sample(mean, std, eps), "e n r d -> n (e r) d")  # (N, P, T) by position
        return torch.empty_like(pred).scatter_(1, perm[..., None].expand_as(pred), pred)


class _Moments(_Strategy):
    """E / DS / MM: the ensemble's moment-matched Gaussian at each particle's own input; with
    ``refit`` (MM) each candidate's P samples are then replaced by fresh draws from their per-dim
    mean and population variance, on the model OUTPUT, before ``obs_postproc``."""

    def __init__(self, refit: bool) -> None:
        self.refit = refit

    def draw(self, spec, H, N, T, generator, device):
        draws = super().draw(spec, H, N, T, generator, device)
        if self.refit:
            P = spec.num_particles
            draws["refit_eps"] = torch.randn(H, N, P, T, generator=generator, device=device)
        return draws

    def step(self, predictor, obs_in, t, use_var, cand, draws):
        mean, std = predictor.moments(obs_in, t, use_var, cand)  # (Nc, P, T)
        pred = _sample(mean, std, _step_eps(draws, t, cand, member_axis=False))
        if self.refit:
            pred = _refit_particles(pred, draws["refit_eps"][t, cand])
        return pred


STRATEGIES: dict[PropMode, _Strategy] = {
    PropMode.E: _Moments(refit=False),
    PropMode.DS: _Moments(refit=False),
    PropMode.TS1: _TS1(),
    PropMode.TSinf: _TSinf(),
    PropMode.MM: _Moments(refit=True),
}


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
    """Mean over P particles of the undiscounted predicted cost of each candidate (spec sec. 4).

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


def _propagate(
    model, task, obs, action_seqs, spec: PropagationSpec, goal, generator, fast, precision, *,
    record: bool,
) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
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
                predictor, task, spec, obs, action_seqs, goal, draws, cand, record
            )

        return job

    run_chains([block(i, slice(lo, hi)) for i, (lo, hi) in enumerate(pairwise(bounds))])
    costs = torch.cat([cost for cost, _ in results])
    return costs, (results[0][1] if record else [])


def _graphed_costs(
    model, task, obs, action_seqs, spec: PropagationSpec, goal, generator, fast, precision
) -> Tensor:
    """``_propagate``'s costs through a StaticGraph (pets_core.graphs): the same draws (same
    order, same generator), the same rollout function over all N candidates in one block, on
    fixed buffers; one CUDA graph replay per call on CUDA. The graph is kept per model and
    captured again when the planning layout (the weights) or a shape changes."""
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

    key = (predictor, task.name, spec, goal is None, tuple(action_seqs.shape))
    cached = _GRAPHS.get(model)
    if cached is None or cached[0] != key:
        _GRAPHS.pop(model, None)  # free the old graph's memory before capturing anew
        inputs = {"obs": obs, "action_seqs": action_seqs, "goal": goal, **draws}
        cached = (key, StaticGraph(rollout, inputs))
        _GRAPHS[model] = cached
    return cached[1](obs=obs, action_seqs=action_seqs, goal=goal, **draws).clone()


def _rollout(
    predictor, task, spec: PropagationSpec, obs, action_seqs, goal, draws, cand: slice,
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


def _sample(mean: Tensor, std: Tensor | None, eps: Tensor | None) -> Tensor:
    """``mean + std * eps`` (the mean alone when the variance is not used)."""
    if std is None or eps is None:
        return mean
    return torch.addcmul(mean, std, eps)


def _refit_particles(pred: Tensor, eps: Tensor) -> Tensor:
    """MM: replace each candidate's P samples ``(N, P, T)`` by ``mean + std * eps`` of their
    per-dim mean and population std."""
    mean = pred.mean(dim=1, keepdim=True)  # (N, 1, T)
    std = pred.var(dim=1, unbiased=False, keepdim=True).sqrt_()
    return torch.addcmul(mean, std, eps)
