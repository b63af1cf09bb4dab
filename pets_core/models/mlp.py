"""The ensemble MLP, once: layers, swish, soft log-variance bounds, moment matching (spec 3.1-3.4).

Every caller runs these functions on its own layout of the same weights: ``EnsembleModel`` (the
autograd forward and ``predict``), the trainer's hand-written step (``models.backprop``: bias
folded into the matmul, activations kept for its backward), the planner's fast layout
(``planning.forward``: one oneDNN matmul per member with the swish fused in, or ``baddbmm``) and
``bench train``. What a layer does with its weights is the caller's ``layer`` function; which
layers are activated, by what, and what the head means is defined here only.

Shapes: E members, M rows, T target dim; a probabilistic head has ``2T`` columns (means, then raw
log-variances).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_aten = torch.ops.aten

ONEDNN_ACTIVATION = "swish"
"""The hidden layers' activation as oneDNN's fused post-op names it (x * sigmoid(x))."""


def swish(h: Tensor, *, inplace: bool = False, out: Tensor | None = None) -> Tensor:
    """The hidden activation ``h * sigmoid(h)``: a new tensor, ``h`` overwritten, or ``out``."""
    if out is not None:
        return _aten.silu.out(h, out=out)
    return F.silu(h, inplace=inplace)


def swish_backward(grad: Tensor, h: Tensor, *, out: Tensor) -> Tensor:
    """d swish(h) / dh times ``grad``, into ``out`` (the trainer's backward)."""
    return _aten.silu_backward.grad_input(grad, h, grad_input=out)


Layer = Callable[[int, Tensor, bool], Tensor]
"""``layer(i, h, activate)``: layer ``i``'s affine map of ``h``, then (``activate``) swish."""


def mlp(h: Tensor, num_layers: int, layer: Layer) -> Tensor:
    """The MLP's raw head output: every layer but the last is activated, the head is linear."""
    last = num_layers - 1
    for i in range(num_layers):
        h = layer(i, h, i < last)
    return h


def baddbmm_layer(layers: list[tuple[Tensor, Tensor]], *, inplace: bool) -> Layer:
    """Layer ``i`` of ``layers`` ``[(W (E, in, out), b (E, 1, out))]`` as ``b + h @ W`` batched
    over members, swish in place on the fresh output when ``inplace``."""

    def layer(i: int, h: Tensor, activate: bool) -> Tensor:
        weight, bias = layers[i]
        h = torch.baddbmm(bias, h, weight)  # (E, M, out)
        return swish(h, inplace=inplace) if activate else h

    return layer


def bounded_logvar(raw: Tensor, max_logvar: Tensor, min_logvar: Tensor) -> tuple[Tensor, ...]:
    """The soft bounds: ``lv = min + softplus(max - softplus(max - raw) - min)``.

    Returns ``(lv, a, c)`` with ``a = max - raw`` and ``c = (max - softplus(a)) - min``, the two
    softplus arguments, which the trainer's backward needs; other callers use ``lv``.
    """
    a = max_logvar - raw
    c = (max_logvar - F.softplus(a)) - min_logvar
    return min_logvar + F.softplus(c), a, c


def gaussian_head(
    out: Tensor, out_dim: int, max_logvar: Tensor | None, min_logvar: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Raw head ``(.., T or 2T)`` -> ``mean (.., T)``, bounded ``logvar (.., T)`` (None for D)."""
    if max_logvar is None:
        return out, None
    logvar, _, _ = bounded_logvar(out[..., out_dim:], max_logvar, min_logvar)
    return out[..., :out_dim], logvar


def moment_match(
    member_mean: Tensor, member_var: Tensor | None, *, need_var: bool = True
) -> tuple[Tensor, Tensor | None]:
    """§predict over the leading member axis: the mean of the member means; the mean of the
    member variances (None: deterministic members) plus the population variance of the means."""
    mean = member_mean.mean(0)
    if not need_var:
        return mean, None
    var = (member_mean - mean).square_().mean(0)
    if member_var is not None:
        var += member_var.mean(0)
    return mean, var


@dataclass(frozen=True)
class MLPWeights:
    """A detached snapshot of an ensemble's maths, for callers with their own layout (the planner).

    ``layers``: ``[(W (E, in, out), b (E, 1, out))]``; the input normaliser ``in_mean``,
    ``in_std (I,)``; the bounds ``max_logvar``, ``min_logvar (T,)`` or None (D / DE).
    """

    layers: list[tuple[Tensor, Tensor]]
    in_mean: Tensor
    in_std: Tensor
    max_logvar: Tensor | None
    min_logvar: Tensor | None
    out_dim: int

    @property
    def is_probabilistic(self) -> bool:
        return self.max_logvar is not None

    @property
    def ensemble_size(self) -> int:
        return int(self.layers[0][0].shape[0])

    @property
    def in_dim(self) -> int:
        return int(self.layers[0][0].shape[1])
