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

Seeds: the same layout holds a cohort (S seeds trained in lockstep, ``models.cohort``) as one
ensemble of S * E members, seed-major (members ``s * E .. s * E + E - 1`` are seed s's), with one
row of log-variance bounds per seed: ``(S, T)``. Every matmul runs over all S * E members at once;
the kernels whose result can depend on where an element sits in the tensor (transcendental ones,
whose vectorised and scalar-tail code paths round differently; reductions) run once per seed on
that seed's contiguous slice, as in its own run. The matmuls see other leading dimensions than a
single run's, which some BLAS kernels sum in another order (``models.cohort.BatchedCohortStep``).

Shapes: S seeds, E members each, B rows per member, I input, T target, D_l layer widths.
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
    """Views of one flat vector in the trainer's layout (params, grads and Adam moments alike).

    On a cohort's vector the member axis has S * E entries (seed-major) and the bounds S rows.
    """

    layers: list[Tensor]  # (S * E, in + 1, out) per layer: weights, then the bias row
    weights: list[Tensor]  # (S * E, in, out) views of ``layers``
    biases: list[Tensor]  # (S * E, 1, out)
    weight_blocks: list[Tensor]  # contiguous 1-D slices holding each layer's weights (all seeds)
    bias_blocks: list[Tensor]  # contiguous 1-D slices holding each layer's bias row (all seeds)
    max_logvar: Tensor | None  # (S, T)
    min_logvar: Tensor | None  # (S, T)

    def seed(self, s: int, ensemble_size: int) -> FlatViews:
        """Seed ``s``'s members and bound row: shaped as a single run's views (no blocks, which
        are not contiguous per seed)."""
        members = slice(s * ensemble_size, (s + 1) * ensemble_size)
        bound = slice(s, s + 1)
        return FlatViews(
            [t[members] for t in self.layers],
            [t[members] for t in self.weights],
            [t[members] for t in self.biases],
            [],
            [],
            None if self.max_logvar is None else self.max_logvar[bound],
            None if self.min_logvar is None else self.min_logvar[bound],
        )

    def tensors(self) -> list[Tensor]:
        """In ``EnsembleModel.trainable_parameters`` order: W0, b0, W1, b1, ..., max, min."""
        tensors = [t for pair in zip(self.weights, self.biases, strict=True) for t in pair]
        if self.max_logvar is not None:
            tensors += [self.max_logvar, self.min_logvar]
        return tensors


def with_ones_column(x: Tensor) -> Tensor:
    """``(..., I)`` -> ``(..., I + 1)`` with a trailing 1 (the bias input of the first layer)."""
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


def flat_size(model: EnsembleModel, seeds: int = 1) -> int:
    n = sum((w.shape[1] + 1) * w.shape[0] * w.shape[2] for w in model.weights)
    return seeds * (n + (2 * model.out_dim if model.is_probabilistic else 0))


def flat_views(model: EnsembleModel, flat: Tensor, seeds: int = 1) -> FlatViews:
    """Lay ``flat`` out as: per layer ``(in + 1, S * E, out)`` blocks, then max_logvar (S, T),
    min_logvar (S, T); ``seeds`` copies of ``model``'s shapes (S = 1: a single run)."""
    layers, weights, biases, weight_blocks, bias_blocks = [], [], [], [], []
    offset = 0
    for w in model.weights:
        E, d_in, d_out = w.shape
        E *= seeds
        n_w, n_b = d_in * E * d_out, E * d_out
        block = flat[offset : offset + n_w + n_b].view(d_in + 1, E, d_out).permute(1, 0, 2)
        layers.append(block)  # (S * E, in + 1, out), batch stride out, row stride S * E * out
        weights.append(block[:, :d_in])
        biases.append(block[:, d_in:])
        weight_blocks.append(flat[offset : offset + n_w])
        bias_blocks.append(flat[offset + n_w : offset + n_w + n_b])
        offset += n_w + n_b
    max_lv = min_lv = None
    if model.is_probabilistic:
        n = seeds * model.out_dim
        max_lv = flat[offset : offset + n].view(seeds, model.out_dim)
        min_lv = flat[offset + n : offset + 2 * n].view(seeds, model.out_dim)
    return FlatViews(layers, weights, biases, weight_blocks, bias_blocks, max_lv, min_lv)


@torch.no_grad()
def copy_views(src: list[Tensor], dst: list[Tensor]) -> None:
    """Copy tensor by tensor (``FlatViews.tensors()`` or a model's ``trainable_parameters()``)."""
    for d, s in zip(dst, src, strict=True):
        d.copy_(s)


def copy_model_to_flat(model: EnsembleModel, flat: Tensor) -> None:
    copy_views(model.trainable_parameters(), flat_views(model, flat).tensors())


def copy_flat_to_model(flat: Tensor, model: EnsembleModel) -> None:
    copy_views(flat_views(model, flat).tensors(), model.trainable_parameters())


class EnsembleGradient:
    """Writes d(member losses + log-variance bound penalty)/d(params) into ``grads``.

    Excludes the weight decay (applied by ``FlatAdam``). Inputs are normalised and carry a trailing
    column of ones: ``x (S * E, B, I + 1)``. With ``seeds`` S > 1, ``params``/``grads`` are a
    cohort's vectors (module docstring): each seed's bound penalty and bound gradient sum over its
    own E members only, as in its own run.
    """

    def __init__(self, model: EnsembleModel, params: Tensor, grads: Tensor, seeds: int = 1) -> None:
        self.p = flat_views(model, params, seeds)
        self.g = flat_views(model, grads, seeds)
        self.is_probabilistic = model.is_probabilistic
        self.out_dim = model.out_dim
        self.seeds = seeds
        self.ensemble_size = model.ensemble_size  # E, members per seed
        self._widths = [w.shape[2] for w in model.weights]  # D_l; the last is T or 2T
        self._buffers: dict[int, dict[str, list[Tensor]]] = {}
        self._device, self._dtype = params.device, params.dtype

    def _buffers_for(self, B: int) -> dict[str, list[Tensor]]:
        """Activations and their gradients for B rows (two sizes per train call at most)."""
        if B not in self._buffers:
            SE, kw = self.seeds * self.ensemble_size, {"device": self._device, "dtype": self._dtype}
            hidden = self._widths[:-1]
            h_aug = [torch.ones(SE, B, d + 1, **kw) for d in hidden]  # last column stays 1
            self._buffers[B] = {
                "z": [torch.empty(SE, B, d, **kw) for d in hidden],  # pre-activations
                "h_aug": h_aug,
                "h": [h[..., :-1] for h in h_aug],  # swish(z), written in place
                "dh": [torch.empty(SE, B, d, **kw) for d in hidden],
                "dz": [torch.empty(SE, B, d, **kw) for d in self._widths],
                "out": [torch.empty(SE, B, self._widths[-1], **kw)],
            }
        return self._buffers[B]

    def _seed_slices(self) -> list[slice]:
        """Each seed's members along the leading axis (one slice, all members, for S = 1)."""
        E = self.ensemble_size
        return [slice(s * E, (s + 1) * E) for s in range(self.seeds)]

    def __call__(self, x: Tensor, target: Tensor) -> None:
        """Gradient for ``x (S * E, B, I + 1)`` (normalised, ones column), ``target (S * E,
        B, T)``."""
        B = x.shape[1]
        out = self.forward(x)
        dz = self._buffers_for(B)["dz"]
        # d loss / d head output, into dz[-1].
        if self.is_probabilistic:
            for s, members in enumerate(self._seed_slices()):
                self._gaussian_head_grad(s, out[members], target[members], dz[-1][members])
        else:
            # d/d mu of mean((mu - y)^2 / 2) over B*T entries (members are summed); exact
            # elementwise arithmetic, so all seeds at once.
            torch.sub(out, target, out=dz[-1]).mul_(1.0 / (B * self.out_dim))
        self._backward(x)

    def matmuls(self, x: Tensor) -> None:
        """The step's matmuls alone, no activation or loss kernels (bench train's FLOP floor)."""
        self.forward(x, activations=False)
        self._backward(x, activations=False)

    def forward(self, x: Tensor, activations: bool = True) -> Tensor:
        """z_l = [h_{l-1}, 1] [W_l; b_l], h_l = swish(z_l) (models.mlp), into the buffers;
        returns the head output ``(S * E, B, D_L)``."""
        buf = self._buffers_for(x.shape[1])
        z, h, out = buf["z"], buf["h"], buf["out"][0]
        layers, last = self.p.layers, len(self.p.layers) - 1

        def layer(i: int, layer_in: Tensor, activate: bool) -> Tensor:
            if i == last:
                return torch.bmm(layer_in, layers[i], out=out)
            torch.bmm(layer_in, layers[i], out=z[i])  # (S * E, B, D_i), all seeds at once
            if activate and activations:
                for members in self._seed_slices():
                    swish(z[i][members], out=h[i][members])
            return buf["h_aug"][i]

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
                    for m in self._seed_slices():
                        swish_backward(dh[i - 1][m], z[i - 1][m], out=dz[i - 1][m])

    def _gaussian_head_grad(self, s: int, out: Tensor, target: Tensor, d_out: Tensor) -> None:
        """Seed s's gradient of sum_e mean_{b,j}[(mu - y)^2 exp(-lv) + lv]
        + 0.01 (sum max - sum min), on its members' ``out (E, B, 2T)``.

        lv1 = max - softplus(max - v); lv = min + softplus(lv1 - min).
        """
        T, B = self.out_dim, out.shape[1]
        scale = 1.0 / (B * T)
        mean, raw = out[..., :T], out[..., T:]  # (E, B, T) each
        max_lv, min_lv = self.p.max_logvar[s : s + 1], self.p.min_logvar[s : s + 1]  # (1, T)
        g_max, g_min = self.g.max_logvar[s], self.g.min_logvar[s]  # (T,)

        logvar, a, c = bounded_logvar(raw, max_lv, min_lv)  # c = lv1 - min
        inv_var = logvar.neg_().exp_()  # exp(-lv)
        diff = mean - target
        weighted = diff * inv_var  # (mu - y) exp(-lv)
        torch.mul(weighted, 2.0 * scale, out=d_out[..., :T])  # d/d mu
        g_lv = weighted.mul_(diff).sub_(1.0).mul_(-scale)  # d/d lv = scale (1 - (mu-y)^2 e^-lv)
        g_lv1 = _aten.softplus_backward(g_lv, c, 1.0, _SOFTPLUS_THRESHOLD)  # through min + sp(.)
        torch.sum(g_lv.sub_(g_lv1), dim=(0, 1), out=g_min)  # d/d min
        g_min.sub_(LOGVAR_BOUND_PENALTY)
        d_raw = d_out[..., T:]
        _aten.softplus_backward.grad_input(g_lv1, a, 1.0, _SOFTPLUS_THRESHOLD, grad_input=d_raw)
        torch.sum(g_lv1.sub_(d_raw), dim=(0, 1), out=g_max)  # d/d max
        g_max.add_(LOGVAR_BOUND_PENALTY)
