"""Uncertainty propagation (spec sec. 4): the predicted cost of candidate action sequences.

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

All steps are batched on the model's device with one ``torch.Generator``; the horizon loop has no
host synchronisation.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from pets_core.planning.forward import make_predictor
from pets_core.variants import PROP_TYPES, Variant, VariantError, check_particles

NAN_COST = 1e6
"""Cost of a particle whose accumulated cost is NaN (the original's ``tf.where(is_nan, 1e6)``)."""


def model_type_of(model) -> str:
    """D / P / DE / PE of a model with ``is_probabilistic`` and ``ensemble_size``."""
    return ("P" if model.is_probabilistic else "D") + ("E" if model.ensemble_size > 1 else "")


def check_propagation(model, prop: str, num_particles: int) -> Variant:
    """Raise VariantError for the combinations the original's config rejects (spec sec. 3.5, 4)."""
    if prop not in PROP_TYPES:
        raise VariantError(f"unknown prop-type {prop!r}; valid: {', '.join(PROP_TYPES)}")
    variant = Variant(model_type_of(model), prop, "CEM")  # type: ignore[arg-type]
    check_particles(variant, num_particles, int(model.ensemble_size))
    return variant


def _uses_variance(model, prop: str, ign_var: bool) -> bool:
    if ign_var or prop == "E":
        return False
    if prop in ("TS1", "TSinf"):  # per-member Gaussians: zero variance for D members
        return bool(model.is_probabilistic)
    return bool(model.is_probabilistic) or model.ensemble_size > 1  # moment-matched ensemble


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
    prop: str,
    num_particles: int,
    goal: Tensor | None,
    ign_var: bool,
    generator: torch.Generator,
    fast: bool | str = "auto",
    precision: str = "fp32",
) -> Tensor:  # (N,)
    """Mean over P particles of the undiscounted predicted cost of each candidate (spec sec. 4).

    ``fast`` picks how the model is called (pets_core.planning.forward): ``"auto"`` uses the
    planning layout of the model's weights when it exposes them, ``False`` the contract's
    ``predict`` / ``predict_moments``; both give the same numbers up to float rounding.
    ``precision="bf16"`` (opt-in, fast layout only) runs the model's matmuls in bfloat16.
    """
    costs, _ = _propagate(
        model, task, obs, action_seqs, prop, num_particles, goal, ign_var, generator,
        (fast, precision), False,
    )  # fmt: skip
    return costs


@torch.no_grad()
def predicted_particles(
    model,
    task,
    obs: Tensor,  # (O,)
    action_seqs: Tensor,  # (N, H, A)
    *,
    prop: str,
    num_particles: int,
    goal: Tensor | None,
    ign_var: bool,
    generator: torch.Generator,
    fast: bool | str = "auto",
    precision: str = "fp32",
) -> tuple[Tensor, Tensor]:
    """The particles' predicted observations ``(N, H+1, P, O)`` (index 0 = obs) and costs ``(N,)``.

    Particle ``p`` here is particle ``p`` of the original's candidate-major layout.
    """
    costs, states = _propagate(
        model, task, obs, action_seqs, prop, num_particles, goal, ign_var, generator,
        (fast, precision), True,
    )  # fmt: skip
    return torch.stack(states, dim=1), costs


def _propagate(
    model, task, obs, action_seqs, prop, P, goal, ign_var, generator, fast, record
) -> tuple[Tensor, list[Tensor]]:
    check_propagation(model, prop, P)
    _check_inputs(task, obs, action_seqs)
    obs = obs.to(dtype=torch.float32, device=action_seqs.device)
    N, H, A = action_seqs.shape
    E = int(model.ensemble_size)
    use_var = _uses_variance(model, prop, ign_var)
    predictor = make_predictor(model, A, *fast)
    predictor.prepare(action_seqs)
    if prop == "TSinf":
        state = obs.expand(E, N, P // E, -1)  # (E, N, P/E, O): particle p = e * P/E + j
    else:
        state = obs.expand(N, P, -1)  # (N, P, O)
    states = [_canonical(state, N, P)] if record else []
    cost = torch.zeros(state.shape[:-1], device=obs.device)  # (E, N, P/E) or (N, P)
    for t in range(H):
        obs_in = task.obs_preproc(state)  # (.., F)
        if prop == "TSinf":
            pred = _sample(*predictor.members(obs_in, t, use_var), generator)
        elif prop == "TS1":
            pred = _ts1_step(predictor, obs_in, t, use_var, generator)
        else:
            pred = _sample(*predictor.moments(obs_in, t, use_var), generator)  # (N, P, T)
            if prop == "MM":
                pred = _refit_particles(pred, generator)
        state = task.obs_postproc(state, pred)
        cost += task.obs_cost(state, goal)
        if record:
            states.append(_canonical(state, N, P))
    cost = _canonical(cost[..., None], N, P)[..., 0]  # (N, P)
    cost = cost + task.ac_cost(action_seqs).sum(dim=1)[:, None]  # same a_t for every particle
    cost = torch.where(torch.isnan(cost), torch.full_like(cost, NAN_COST), cost)
    return cost.mean(dim=1), states


def _canonical(x: Tensor, N: int, P: int) -> Tensor:
    """``(E, N, P/E, D)`` or ``(N, P, D)`` -> ``(N, P, D)`` in the original's particle order."""
    if x.ndim == 4:
        return rearrange(x, "e n r d -> n (e r) d")
    return x.expand(N, P, -1)


def _sample(mean: Tensor, std: Tensor | None, generator: torch.Generator) -> Tensor:
    if std is None:
        return mean
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return noise.mul_(std).add_(mean)


def _ts1_step(predictor, obs_in: Tensor, t: int, use_var: bool, generator) -> Tensor:
    """One TS1 step, ``obs_in (N, P, F)`` -> ``(N, P, T)``: balanced random member per particle."""
    N, P, _ = obs_in.shape
    E = predictor.ensemble_size
    # perm[n, i]: the particle at position i; position i uses member i // (P/E)
    perm = torch.rand(N, P, generator=generator, device=obs_in.device).argsort(dim=1)  # (N, P)
    x = obs_in.gather(1, perm[..., None].expand(-1, -1, obs_in.shape[-1]))
    x = rearrange(x, "n (e r) f -> e n r f", e=E).contiguous()  # (E, N, P/E, F)
    pred = _sample(*predictor.members(x, t, use_var), generator)
    pred = rearrange(pred, "e n r d -> n (e r) d")  # (N, P, T) by position
    return torch.empty_like(pred).scatter_(1, perm[..., None].expand_as(pred), pred)


def _refit_particles(pred: Tensor, generator: torch.Generator) -> Tensor:
    """MM: replace each candidate's P samples ``(N, P, T)`` by draws from their Gaussian."""
    mean = pred.mean(dim=1, keepdim=True)  # (N, 1, T)
    std = pred.var(dim=1, unbiased=False, keepdim=True).sqrt_()
    return _sample(mean.expand_as(pred), std.expand_as(pred), generator)
