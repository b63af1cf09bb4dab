"""iCEM (opt-type iCEM): the improved cross-entropy method of Pinneri et al., CoRL 2020.

CEM over box-bounded action sequences with the paper's changes (Algorithm 1 there):
colored-noise samples (power spectrum ~ 1/f^beta along the horizon), a population that shrinks
by ``gamma`` per iteration, a fraction of the elites carried into the next iteration (and, shifted,
into the next plan), the mean added as a candidate in the last iteration, clipping to the box, and
the best sequence ever evaluated returned instead of the mean. The MPC already shift-initialises
the mean (``MPC.prev_sol``) and passes the initial variance ``(high - low)^2 / 16``.

Shapes: N population, K elites, H horizon, A action dim, F = H // 2 + 1 frequencies.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from pets_core.config.optimizers import ICEMCfg
from pets_core.planning.cem import check_bounds, check_init
from pets_core.planning.optimizer import Optimizer, Plan


def colored_noise(
    beta: float,
    num: int,
    horizon: int,
    act_dim: int,
    generator: torch.Generator,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:  # (num, horizon, act_dim)
    """Gaussian noise with power spectral density ~ ``1 / f^beta`` along the horizon axis.

    Each of the ``num * act_dim`` sequences is independent and stationary with unit variance per
    time step; ``beta = 0`` is white noise, ``beta = 2`` Brownian-like ("red") noise, the larger
    ``beta`` the smoother. Method of Timmer & Koenig (1995), as the iCEM paper: random complex
    Fourier coefficients with amplitude ``f^(-beta/2)`` at the frequencies ``f = k / H``, the
    zero frequency given the lowest non-zero frequency's amplitude, then an inverse real FFT and
    division by the exact standard deviation that results.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    freqs = torch.fft.rfftfreq(horizon, device=device, dtype=torch.float64)  # (F,) k / H
    freqs[0] = 1.0 / horizon  # the cut-off f_min = 1 / H
    amp = freqs.pow(-beta / 2.0)  # (F,)
    shape = (num, act_dim, amp.numel())
    real = torch.randn(shape, generator=generator, device=device, dtype=torch.float64)
    imag = torch.randn(shape, generator=generator, device=device, dtype=torch.float64)
    # the zero (and, for even H, the Nyquist) coefficient is real: give it the variance of the
    # other coefficients' real + imaginary parts
    imag[..., 0] = 0.0
    real[..., 0] *= math.sqrt(2.0)
    paired = torch.ones_like(amp)  # (F,) 2 where the coefficient has a conjugate partner
    paired[1:] = 2.0
    if horizon % 2 == 0 and amp.numel() > 1:
        imag[..., -1] = 0.0
        real[..., -1] *= math.sqrt(2.0)
        paired[-1] = 1.0
    spectrum = torch.complex(real * amp, imag * amp)
    x = torch.fft.irfft(spectrum, n=horizon)  # (num, A, H)
    # Var x_t = sum_k paired_k * 2 amp_k^2 / H^2 for every t (stationary)
    std = torch.sqrt((paired * 2.0 * amp.square()).sum()) / horizon
    return (x / std).transpose(1, 2).to(dtype)  # (num, H, A)


class ICEMOptimizer(Optimizer):
    """iCEM with the paper's parameters (Pinneri et al. 2020, their defaults in brackets).

    Per iteration ``i = 0 .. max_iters - 1``:
    ``N_i = max(ceil(popsize * pop_decay^-i), 2 K)`` samples ``clip(mean + std * C_beta)`` with
    colored noise ``C_beta`` (``noise_beta`` [2; 0-5 by task]); plus the best
    ``round(keep_elites_frac * K)`` [0.3] elites of the previous iteration (at ``i = 0``: of the
    previous plan's last iteration, shifted ``per`` steps left, the new tail actions drawn from the
    current distribution); plus, at the last iteration, the mean itself (the authors' code
    overwrites one sample with it; here it is one more candidate). The ``K = num_elites``
    [10] lowest costs refit ``mean <- alpha mean + (1 - alpha) elite_mean`` and
    ``std <- alpha std + (1 - alpha) elite_std`` (population std; ``alpha`` [0.1]).
    Returns the lowest-cost sequence evaluated in this call ("execute the best action").
    ``reset()`` forgets the previous plan's elites (the MPC calls it at every episode start).
    """

    def __init__(
        self,
        *,
        popsize: int,
        num_elites: int,
        max_iters: int,
        alpha: float,
        noise_beta: float,
        pop_decay: float,
        keep_elites_frac: float,
        lower: Tensor,  # (H, A)
        upper: Tensor,  # (H, A)
        per: int = 1,
    ) -> None:
        if num_elites < 1:
            raise ValueError(f"num_elites must be >= 1, got {num_elites}")
        if popsize < num_elites:
            raise ValueError(f"popsize ({popsize}) must be >= num_elites ({num_elites})")
        if max_iters < 1:
            raise ValueError(f"max_iters must be >= 1, got {max_iters}")
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        if not noise_beta >= 0.0:
            raise ValueError(f"noise_beta must be >= 0, got {noise_beta}")
        if not pop_decay >= 1.0:
            raise ValueError(f"pop_decay must be >= 1, got {pop_decay}")
        if not 0.0 <= keep_elites_frac <= 1.0:
            raise ValueError(f"keep_elites_frac must be in [0, 1], got {keep_elites_frac}")
        check_bounds(lower, upper)
        if not 1 <= per <= lower.shape[0]:
            raise ValueError(f"per must be in [1, H={lower.shape[0]}], got {per}")
        self.popsize, self.num_elites, self.max_iters = popsize, num_elites, max_iters
        self.alpha, self.noise_beta, self.pop_decay = alpha, noise_beta, pop_decay
        self.num_keep = round(keep_elites_frac * num_elites)
        """Elites carried into the next iteration / plan."""
        self.lower, self.upper, self.per = lower, upper, per
        self.config = ICEMCfg(
            popsize, num_elites, max_iters, alpha, noise_beta, pop_decay, keep_elites_frac
        )
        self._elites: Tensor | None = None  # (K, H, A) last plan's final elites, best first
        self.num_evaluated = 0

    @classmethod
    def from_config(cls, cfg: ICEMCfg, lower: Tensor, upper: Tensor, *, per: int = 1):
        return cls(**dataclasses.asdict(cfg), lower=lower, upper=upper, per=per)

    def population_sizes(self) -> list[int]:
        """Fresh samples per iteration: ``N_i = max(ceil(N gamma^-i), 2 K)``."""
        return [
            max(math.ceil(self.popsize * self.pop_decay**-i - 1e-9), 2 * self.num_elites)
            for i in range(self.max_iters)
        ]

    def reset(self) -> None:
        """A new episode: nothing of the last plan is reused."""
        self._elites = None

    @torch.no_grad()
    def plan(
        self,
        init_mean: Tensor,  # (H, A)
        init_var: Tensor,  # (H, A)
        generator: torch.Generator,
    ) -> Plan:  # returns (H, A)
        check_init(init_mean, init_var, self.lower)
        H, A = self.lower.shape
        mean, std = init_mean.clone(), init_var.sqrt()
        kept = self._shifted_elites(mean, std, generator)  # (k, H, A)
        best, best_cost = mean, math.inf
        self.num_evaluated = 0
        for i, n in enumerate(self.population_sizes()):
            noise = colored_noise(
                self.noise_beta, n, H, A, generator, device=mean.device, dtype=mean.dtype
            )  # (n, H, A)
            parts = [self._clip(mean + std * noise), kept]
            if i == self.max_iters - 1:
                parts.append(mean[None])
            samples = torch.cat(parts)  # (n + k [+ 1], H, A)
            costs = torch.nan_to_num((yield samples), nan=torch.inf)  # (N_i,)
            self.num_evaluated += samples.shape[0]
            order = torch.argsort(costs)[: self.num_elites]  # best first
            elites = samples[order]  # (K, H, A)
            if float(costs[order[0]]) < best_cost:  # the one host sync per iteration
                best, best_cost = elites[0], float(costs[order[0]])
            mean = self.alpha * mean + (1 - self.alpha) * elites.mean(dim=0)
            std = self.alpha * std + (1 - self.alpha) * elites.std(dim=0, unbiased=False)
            kept = elites[: self.num_keep]
        self._elites = elites
        return best.clone()

    def _shifted_elites(self, mean: Tensor, std: Tensor, generator: torch.Generator) -> Tensor:
        """The previous plan's best elites shifted ``per`` steps left, tails drawn anew."""
        if self._elites is None or self.num_keep == 0:
            return mean.new_zeros((0, *mean.shape))
        kept = self._elites[: self.num_keep, self.per :]  # (k, H - per, A)
        tail_shape = (kept.shape[0], self.per, mean.shape[1])
        noise = torch.randn(tail_shape, generator=generator, device=mean.device, dtype=mean.dtype)
        tail = self._clip(mean[-self.per :] + std[-self.per :] * noise, -self.per)
        return torch.cat([kept, tail], dim=1)  # (k, H, A)

    def _clip(self, x: Tensor, start: int = 0) -> Tensor:
        """Clip to the box; ``start`` < 0: ``x`` covers only the last ``-start`` steps."""
        return torch.clamp(x, self.lower[start:], self.upper[start:])
