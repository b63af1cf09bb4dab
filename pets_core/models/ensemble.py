"""The D / P / DE / PE dynamics network (§network, §predict, §variants).

Shapes: E members, M rows, I input dim, T target dim. Every layer holds weights ``(E, in, out)``
and biases ``(E, 1, out)``, so all members run in one batched matmul, and the weights are already
laid out ``in x out`` (no transpose on the hot path). Probabilistic heads output ``2T`` columns:
means, then raw log-variances, which are soft-bounded by ``max_logvar`` / ``min_logvar`` (shared by
all members, learned, initialised 0.5 / -10).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from pets_core.config.variants import MODEL_TYPES, ensemble_size, is_ensemble
from pets_core.models.mlp import MLPWeights, baddbmm_layer, gaussian_head, mlp, moment_match
from pets_core.models.normalizer import Normalizer
from pets_core.seeding import RunSeeds


class EnsembleModel(nn.Module):
    """E independent swish MLPs with optional Gaussian heads; input normalisation inside."""

    def __init__(
        self,
        *,
        in_dim: int,
        out_dim: int,
        hidden_dims: Sequence[int],
        weight_decays: Sequence[float],
        ensemble_size: int,
        is_probabilistic: bool,
        max_logvar_init: float = 0.5,
        min_logvar_init: float = -10.0,
    ) -> None:
        super().__init__()
        if len(weight_decays) != len(hidden_dims) + 1:
            raise ValueError(
                f"need one weight decay per layer: {len(hidden_dims)} hidden layers + output = "
                f"{len(hidden_dims) + 1}, got {len(weight_decays)} decays"
            )
        if ensemble_size < 1 or in_dim < 1 or out_dim < 1:
            raise ValueError(f"bad sizes: E={ensemble_size}, in_dim={in_dim}, out_dim={out_dim}")
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.weight_decays = tuple(float(w) for w in weight_decays)
        self.ensemble_size = int(ensemble_size)
        self.is_probabilistic = bool(is_probabilistic)
        self.max_logvar_init = float(max_logvar_init)
        self.min_logvar_init = float(min_logvar_init)

        E = self.ensemble_size
        head_dim = 2 * out_dim if is_probabilistic else out_dim
        dims = [in_dim, *self.hidden_dims, head_dim]
        self.normalizer = Normalizer(in_dim)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(E, d_in, d_out)) for d_in, d_out in pairwise(dims)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(E, 1, d_out)) for d_out in dims[1:])
        if is_probabilistic:
            self.max_logvar = nn.Parameter(torch.full((1, out_dim), self.max_logvar_init))
            self.min_logvar = nn.Parameter(torch.full((1, out_dim), self.min_logvar_init))

    # ------------------------------------------------------------------ structure

    @property
    def model_type(self) -> str:
        return ("P" if self.is_probabilistic else "D") + ("E" if self.ensemble_size > 1 else "")

    @property
    def num_layers(self) -> int:
        return len(self.weights)

    def config(self) -> dict[str, Any]:
        """Plain-Python constructor arguments (what ``save_model`` stores)."""
        return {
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "hidden_dims": list(self.hidden_dims),
            "weight_decays": list(self.weight_decays),
            "ensemble_size": self.ensemble_size,
            "is_probabilistic": self.is_probabilistic,
            "max_logvar_init": self.max_logvar_init,
            "min_logvar_init": self.min_logvar_init,
        }

    def trainable_parameters(self) -> list[nn.Parameter]:
        """In the original's order: W0, b0, W1, b1, ..., max_logvar, min_logvar (§model-files)."""
        params: list[nn.Parameter] = []
        for weight, bias in zip(self.weights, self.biases, strict=True):
            params += [weight, bias]
        if self.is_probabilistic:
            params += [self.max_logvar, self.min_logvar]
        return params

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Truncated normal at 2 std, std = 1 / (2 sqrt(fan_in)); zero biases; bounds 0.5 / -10.

        Drawn on the CPU generator and copied, so a seed gives the same weights on every device.
        """
        for weight, bias in zip(self.weights, self.biases, strict=True):
            std = 1.0 / (2.0 * math.sqrt(weight.shape[1]))
            w = torch.empty(weight.shape, dtype=torch.float32)
            nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=generator)
            weight.copy_(w)
            bias.zero_()
        if self.is_probabilistic:
            self.max_logvar.fill_(self.max_logvar_init)
            self.min_logvar.fill_(self.min_logvar_init)

    # ------------------------------------------------------------------ maths

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Autograd path: raw ``x (E, M, I)`` -> ``mean (E, M, T)``, ``logvar (E, M, T) | None``."""
        self._check_input(x)
        return self.forward_normalized(self.normalizer(x))

    def forward_normalized(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        """Same as ``forward`` on already-normalised inputs ``(E, M, I)``."""
        out = mlp(h, self.num_layers, baddbmm_layer(self._layers(), inplace=False))
        return self._head(out)

    def _layers(self) -> list[tuple[Tensor, Tensor]]:
        return list(zip(self.weights, self.biases, strict=True))

    def _head(self, out: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.is_probabilistic:
            return gaussian_head(out, self.out_dim, None, None)
        return gaussian_head(out, self.out_dim, self.max_logvar, self.min_logvar)

    @torch.no_grad()
    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Member e on rows ``x[e]``: ``x (E, M, I)`` -> ``mean, var (E, M, T)``; var 0 for D/DE."""
        self._check_input(x)
        h = (x - self.normalizer.mean).div_(self.normalizer.std)  # (E, M, I), a fresh buffer
        out = mlp(h, self.num_layers, baddbmm_layer(self._layers(), inplace=True))
        mean, logvar = self._head(out)
        if logvar is None:
            return mean, torch.zeros_like(mean)
        return mean, logvar.exp_()

    @torch.no_grad()
    def predict_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """All members on the same rows ``x (M, I)``, moment-matched to ``mean, var (M, T)``.

        mean = mean of member means; var = mean of member variances + population variance of the
        member means (D/DE: the variance of the means only; zero for a single network).
        """
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"predict_moments expects x of shape (M, {self.in_dim}), got {tuple(x.shape)}"
            )
        member_mean, member_var = self.predict(x.expand(self.ensemble_size, *x.shape))  # (E, M, T)
        return moment_match(member_mean, member_var if self.is_probabilistic else None)

    @torch.no_grad()
    def mlp_weights(self) -> MLPWeights:
        """The weights, normaliser and bounds as detached tensors (for the planner's layout)."""
        return MLPWeights(
            layers=[(w.detach(), b.detach()) for w, b in self._layers()],
            in_mean=self.normalizer.mean.detach(),
            in_std=self.normalizer.std.detach(),
            max_logvar=self.max_logvar.detach().view(-1) if self.is_probabilistic else None,
            min_logvar=self.min_logvar.detach().view(-1) if self.is_probabilistic else None,
            out_dim=self.out_dim,
        )

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[0] != self.ensemble_size or x.shape[2] != self.in_dim:
            raise ValueError(
                f"expected x of shape (E={self.ensemble_size}, M, I={self.in_dim}), "
                f"got {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        return (
            f"type={self.model_type}, E={self.ensemble_size}, I={self.in_dim}, T={self.out_dim}, "
            f"hidden={list(self.hidden_dims)}, decays={list(self.weight_decays)}"
        )


def make_model(
    model_type: str,
    *,
    in_dim: int,
    out_dim: int,
    hidden_dims: Sequence[int],
    weight_decays: Sequence[float],
    num_nets: int = 5,
    max_logvar_init: float = 0.5,
    min_logvar_init: float = -10.0,
    device: torch.device | str = "cpu",
    seed: int,
) -> EnsembleModel:
    """Build and initialise a D / P (one network) or DE / PE (``num_nets`` networks) model."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; valid: {', '.join(MODEL_TYPES)}")
    if is_ensemble(model_type) and num_nets < 2:
        raise ValueError(f"model type {model_type} needs num_nets > 1, got {num_nets}")
    model = EnsembleModel(
        in_dim=in_dim,
        out_dim=out_dim,
        hidden_dims=hidden_dims,
        weight_decays=weight_decays,
        ensemble_size=ensemble_size(model_type, num_nets),
        is_probabilistic=model_type.startswith("P"),
        max_logvar_init=max_logvar_init,
        min_logvar_init=min_logvar_init,
    )
    model.reset_parameters(torch.Generator().manual_seed(RunSeeds.from_seed(seed).model_init))
    return model.to(device)
