"""Hand-written forward + backward of the training loss for the whole ensemble (§loss).

At batch 32, autograd, per-parameter optimiser loops and allocator traffic cost more than the
maths, so the trainer keeps every trainable value in one flat vector and a training step is:

* forward: one ``bmm`` per layer. Each layer's block is stored ``(in + 1, E, out)`` with the bias
  as the last input row, and each layer input carries a column of ones, so the bias add is part
  of the matmul and its gradient falls out of the weight-gradient matmul;
* backward: ``bmm`` for the weight (+ bias) gradient and ``bmm`` for the input gradient per layer,
  swish and bounded-log-variance derivatives as a handful of elementwise kernels;
* all into preallocated buffers, no autograd, no host sync.

The weight decay ``lambda/2 ||W||^2`` is *not* added here: its gradient ``lambda W`` is applied
inside the fused Adam kernel (``FlatAdam`` groups, L2 form, identical maths), which saves one pass
over the weights per step. ``tests/models/test_models_backprop.py`` checks gradient + decay against
autograd on ``loss.training_loss`` in float64.

Shapes: E members, B rows per member, I input, T target, D_l layer widths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pets_core.models.ensemble import EnsembleModel
from pets_core.models.loss import LOGVAR_BOUND_PENALTY
from pets_core.models.mlp import bounded_logvar, mlp, swish, swish_backward

_aten = torch.ops.aten
_SOFTPLUS_THRESHOLD = 20.0  # torch's F.softplus default; softplus_backward uses the same switch


@dataclass(frozen=True)
class FlatViews:
    """Views of one flat vector in the trainer's layout (params, grads and Adam moments alike)."""

    layers: list[Tensor]  # (E, in + 1, out) per layer: weights, then the bias row
    weights: list[Tensor]  # (E, in, out) views of ``layers``
    biases: list[Tensor]  # (E, 1, out)
    weight_blocks: list[Tensor]  # contiguous 1-D slices holding each layer's weights
    bias_blocks: list[Tensor]  # contiguous 1-D slices holding each layer's bias row
    max_logvar: Tensor | None  # (1, T)
    min_logvar: Tensor | None  # (1, T)


def with_ones_column(x: Tensor) -> Tensor:
    """``(..., I)`` -> ``(..., I + 1)`` with a trailing 1 (the bias input of the first layer)."""
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


def flat_size(model: EnsembleModel) -> int:
    n = sum((w.shape[1] + 1) * w.shape[0] * w.shape[2] for w in model.weights)
    return n + (2 * model.out_dim if model.is_probabilistic else 0)


def flat_views(model: EnsembleModel, flat: Tensor) -> FlatViews:
    """Lay ``flat`` out as: per layer ``(in + 1, E, out)`` blocks, then max_logvar, min_logvar."""
    layers, weights, biases, weight_blocks, bias_blocks = [], [], [], [], []
    offset = 0
    for w in model.weights:
        E, d_in, d_out = w.shape
        n_w, n_b = d_in * E * d_out, E * d_out
        block = flat[offset : offset + n_w + n_b].view(d_in + 1, E, d_out).permute(1, 0, 2)
        layers.append(block)  # (E, in + 1, out), batch stride out, row stride E * out
        weights.append(block[:, :d_in])
        biases.append(block[:, d_in:])
        weight_blocks.append(flat[offset : offset + n_w])
        bias_blocks.append(flat[offset + n_w : offset + n_w + n_b])
        offset += n_w + n_b
    max_lv = min_lv = None
    if model.is_probabilistic:
        T = model.out_dim
        max_lv = flat[offset : offset + T].view(1, T)
        min_lv = flat[offset + T : offset + 2 * T].view(1, T)
    return FlatViews(layers, weights, biases, weight_blocks, bias_blocks, max_lv, min_lv)


@torch.no_grad()
def copy_model_to_flat(model: EnsembleModel, flat: Tensor) -> None:
    views = flat_views(model, flat)
    for dst_w, dst_b, w, b in zip(
        views.weights, views.biases, model.weights, model.biases, strict=True
    ):
        dst_w.copy_(w)
        dst_b.copy_(b)
    if model.is_probabilistic:
        views.max_logvar.copy_(model.max_logvar)
        views.min_logvar.copy_(model.min_logvar)


@torch.no_grad()
def copy_flat_to_model(flat: Tensor, model: EnsembleModel) -> None:
    views = flat_views(model, flat)
    for src_w, src_b, w, b in zip(
        views.weights, views.biases, model.weights, model.biases, strict=True
    ):
        w.copy_(src_w)
        b.copy_(src_b)
    if model.is_probabilistic:
        model.max_logvar.copy_(views.max_logvar)
        model.min_logvar.copy_(views.min_logvar)


class EnsembleGradient:
    """Writes d(member losses + log-variance bound penalty)/d(params) into ``grads``.

    Excludes the weight decay (applied by ``FlatAdam``). Inputs are normalised and carry a trailing
    column of ones: ``x (E, B, I + 1)``.
    """

    def __init__(self, model: EnsembleModel, params: Tensor, grads: Tensor) -> None:
        self.p = flat_views(model, params)
        self.g = flat_views(model, grads)
        self.is_probabilistic = model.is_probabilistic
        self.out_dim = model.out_dim
        self.ensemble_size = model.ensemble_size
        self._widths = [w.shape[2] for w in model.weights]  # D_l; the last is T or 2T
        self._buffers: dict[int, dict[str, list[Tensor]]] = {}
        self._device, self._dtype = params.device, params.dtype

    def _buffers_for(self, B: int) -> dict[str, list[Tensor]]:
        """Activations and their gradients for B rows (two sizes per train call at most)."""
        if B not in self._buffers:
            E, kw = self.ensemble_size, {"device": self._device, "dtype": self._dtype}
            hidden = self._widths[:-1]
            h_aug = [torch.ones(E, B, d + 1, **kw) for d in hidden]  # last column stays 1
            self._buffers[B] = {
                "z": [torch.empty(E, B, d, **kw) for d in hidden],  # pre-activations
                "h_aug": h_aug,
                "h": [h[..., :-1] for h in h_aug],  # swish(z), written in place
                "dh": [torch.empty(E, B, d, **kw) for d in hidden],
                "dz": [torch.empty(E, B, d, **kw) for d in self._widths],
                "out": [torch.empty(E, B, self._widths[-1], **kw)],
            }
        return self._buffers[B]

    def __call__(self, x: Tensor, target: Tensor) -> None:
        """Gradient for ``x (E, B, I + 1)`` (normalised, ones column) and ``target (E, B, T)``."""
        B = x.shape[1]
        out = self.forward(x)
        dz = self._buffers_for(B)["dz"]
        # d loss / d head output, into dz[-1].
        if self.is_probabilistic:
            self._gaussian_head_grad(out, target, dz[-1])
        else:
            # d/d mu of mean((mu - y)^2 / 2) over B*T entries (members are summed).
            torch.sub(out, target, out=dz[-1]).mul_(1.0 / (B * self.out_dim))
        self._backward(x)

    def matmuls(self, x: Tensor) -> None:
        """The step's matmuls alone, no activation or loss kernels (bench train's FLOP floor)."""
        self.forward(x, activations=False)
        self._backward(x, activations=False)

    def forward(self, x: Tensor, activations: bool = True) -> Tensor:
        """z_l = [h_{l-1}, 1] [W_l; b_l], h_l = swish(z_l) (models.mlp), into the buffers;
        returns the head output ``(E, B, D_L)``."""
        buf = self._buffers_for(x.shape[1])
        z, h_aug, h, out = buf["z"], buf["h_aug"], buf["h"], buf["out"][0]
        layers, last = self.p.layers, len(self.p.layers) - 1

        def layer(i: int, layer_in: Tensor, activate: bool) -> Tensor:
            if i == last:
                return torch.bmm(layer_in, layers[i], out=out)
            torch.bmm(layer_in, layers[i], out=z[i])  # (E, B, D_i)
            if activate and activations:
                swish(z[i], out=h[i])
            return h_aug[i]

        return mlp(x, len(layers), layer)

    def _backward(self, x: Tensor, activations: bool = True) -> None:
        """[dW; db] = [h, 1]^T dz; dh = dz W^T; dz_{l-1} = swish'(z_{l-1}) dh, from dz[-1]."""
        buf = self._buffers_for(x.shape[1])
        z, h_aug, dh, dz = buf["z"], buf["h_aug"], buf["dh"], buf["dz"]
        p, g = self.p, self.g
        for i in range(len(p.layers) - 1, -1, -1):
            layer_in = x if i == 0 else h_aug[i - 1]
            torch.bmm(layer_in.transpose(1, 2), dz[i], out=g.layers[i])
            if i > 0:
                torch.bmm(dz[i], p.weights[i].transpose(1, 2), out=dh[i - 1])
                if activations:
                    swish_backward(dh[i - 1], z[i - 1], out=dz[i - 1])

    def _gaussian_head_grad(self, out: Tensor, target: Tensor, d_out: Tensor) -> None:
        """Gradient of sum_e mean_{b,j}[(mu - y)^2 exp(-lv) + lv] + 0.01 (sum max - sum min).

        lv1 = max - softplus(max - v); lv = min + softplus(lv1 - min).
        """
        T, B = self.out_dim, out.shape[1]
        scale = 1.0 / (B * T)
        mean, raw = out[..., :T], out[..., T:]  # (E, B, T) each
        max_lv, min_lv = self.p.max_logvar, self.p.min_logvar  # (1, T)

        logvar, a, c = bounded_logvar(raw, max_lv, min_lv)  # c = lv1 - min
        inv_var = logvar.neg_().exp_()  # exp(-lv)
        diff = mean - target
        weighted = diff * inv_var  # (mu - y) exp(-lv)
        torch.mul(weighted, 2.0 * scale, out=d_out[..., :T])  # d/d mu
        g_lv = weighted.mul_(diff).sub_(1.0).mul_(-scale)  # d/d lv = scale (1 - (mu-y)^2 e^-lv)
        g_lv1 = _aten.softplus_backward(g_lv, c, 1.0, _SOFTPLUS_THRESHOLD)  # through min + sp(.)
        torch.sum(g_lv.sub_(g_lv1), dim=(0, 1), out=self.g.min_logvar[0])  # d/d min
        self.g.min_logvar.sub_(LOGVAR_BOUND_PENALTY)
        d_raw = d_out[..., T:]
        _aten.softplus_backward.grad_input(g_lv1, a, 1.0, _SOFTPLUS_THRESHOLD, grad_input=d_raw)
        torch.sum(g_lv1.sub_(d_raw), dim=(0, 1), out=self.g.max_logvar[0])  # d/d max
        self.g.max_logvar.add_(LOGVAR_BOUND_PENALTY)
