"""Training objectives (§loss), written with autograd-friendly ops.

The fast trainer (``backprop.py``) differentiates these formulas by hand; these functions are the
definition it is tested against and what the diagnostics report.
"""

from __future__ import annotations

from torch import Tensor

from pets_core.models.ensemble import EnsembleModel

LOGVAR_BOUND_PENALTY = 0.01  # on sum(max_logvar) - sum(min_logvar)


def gaussian_nll(mean: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """Per-member NLL ``(E,)``: mean over rows and dims of ``(mu - y)^2 exp(-logvar) + logvar``.

    No 1/2 factor and no log(2 pi) constant, as the original.
    """
    inv_var = (-logvar).exp()
    return ((mean - target).square() * inv_var + logvar).mean(dim=(1, 2))


def half_mse(mean: Tensor, target: Tensor) -> Tensor:
    """Per-member deterministic loss ``(E,)``: mean over rows and dims of ``(mu - y)^2 / 2``."""
    return (mean - target).square().mean(dim=(1, 2)) / 2


def member_mse(mean: Tensor, target: Tensor) -> Tensor:
    """Per-member ``(E,)`` mean squared error (logging only)."""
    return (mean - target).square().mean(dim=(1, 2))


def regularizer(model: EnsembleModel) -> Tensor:
    """sum_l lambda_l/2 ||W_l||^2 (weights only, all members) + 0.01 (sum max_lv - sum min_lv)."""
    total = sum(
        decay * weight.square().sum() / 2
        for decay, weight in zip(model.weight_decays, model.weights, strict=True)
    )
    if model.is_probabilistic:
        total = total + LOGVAR_BOUND_PENALTY * (model.max_logvar.sum() - model.min_logvar.sum())
    return total


def training_loss(model: EnsembleModel, x: Tensor, target: Tensor) -> Tensor:
    """The scalar the original's Adam minimises for one minibatch.

    ``x (E, B, I)`` raw inputs, ``target (E, B, T)``: member losses summed over E + regulariser.
    """
    mean, logvar = model(x)
    member = half_mse(mean, target) if logvar is None else gaussian_nll(mean, logvar, target)
    return member.sum() + regularizer(model)
