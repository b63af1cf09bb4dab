"""One strategy per propagation mode (§propagation): particle layout, random draws, one step.

Shapes: N candidates, P particles per candidate, E members, H horizon, T target dim, F
preprocessed-obs dim. ``STRATEGIES[spec.mode]`` is all the rollout (planning.rollout) knows of a
mode; a new mode is a new ``Strategy`` here plus its name in ``variants.PropMode``.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from pets_core.config.propagation import PropagationSpec, PropMode


class Strategy:
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


class _TSinf(Strategy):
    """Particle ``p`` of every candidate pinned to member ``p // (P/E)``: one ``members`` call
    per step, no gather (the original's reshape to ``[B, K*P/B, d]``)."""

    member_major = True

    def step(self, predictor, obs_in, t, use_var, cand, draws):
        mean, std = predictor.members(obs_in, t, use_var, cand)
        return _sample(mean, std, _step_eps(draws, t, cand, member_axis=True))


class _TS1(Strategy):
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


class _Moments(Strategy):
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


STRATEGIES: dict[PropMode, Strategy] = {
    PropMode.E: _Moments(refit=False),
    PropMode.DS: _Moments(refit=False),
    PropMode.TS1: _TS1(),
    PropMode.TSinf: _TSinf(),
    PropMode.MM: _Moments(refit=True),
}


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
