"""Hand-written forward + backward of the training loss for the whole ensemble (spec sec. 3.2).

Autograd, per-parameter optimiser loops and allocator traffic cost more than the maths at batch
32, so one training step here is: L batched matmuls forward, 2L - 1 batched matmuls backward (the
weight decay ``lambda W`` is folded into the weight-gradient matmul as ``baddbmm(W, h^T, dz,
beta=lambda)``), a few elementwise kernels for swish and the bounded log-variance, all writing into
preallocated buffers; every gradient lands in one flat vector so Adam is one fused kernel. The
formulas are those of ``loss.training_loss``; ``tests/test_models_backprop.py`` checks the result
against autograd in float64.

Shapes: E members, B rows per member, I input, T target, D_l layer widths.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pets_core.models.ensemble import EnsembleModel
from pets_core.models.loss import LOGVAR_BOUND_PENALTY

_aten = torch.ops.aten
_SOFTPLUS_THRESHOLD = 20.0  # torch's F.softplus default; its backward uses the same switch


def flat_views(flat: Tensor, shapes: list[torch.Size]) -> list[Tensor]:
    """Contiguous views of ``flat`` with the given shapes, back to back."""
    views, offset = [], 0
    for shape in shapes:
        n = shape.numel()
        views.append(flat[offset : offset + n].view(shape))
        offset += n
    return views


class EnsembleGradient:
    """Writes d(training loss)/d(params) into ``grads`` for params stored in the flat ``params``.

    ``params`` / ``grads`` hold the model's ``trainable_parameters()`` back to back
    (W0, b0, ..., WL, bL[, max_logvar, min_logvar]).
    """

    def __init__(self, model: EnsembleModel, params: Tensor, grads: Tensor) -> None:
        shapes = [p.shape for p in model.trainable_parameters()]
        p_views, g_views = flat_views(params, shapes), flat_views(grads, shapes)
        L = model.num_layers
        self.weights, self.biases = p_views[0 : 2 * L : 2], p_views[1 : 2 * L : 2]
        self.weight_grads, self.bias_grads = g_views[0 : 2 * L : 2], g_views[1 : 2 * L : 2]
        self.is_probabilistic = model.is_probabilistic
        if self.is_probabilistic:
            self.max_logvar, self.min_logvar = p_views[2 * L], p_views[2 * L + 1]  # (1, T)
            self.max_logvar_grad, self.min_logvar_grad = g_views[2 * L], g_views[2 * L + 1]
        self.weight_decays = model.weight_decays
        self.out_dim = model.out_dim
        self.ensemble_size = model.ensemble_size
        self._widths = [w.shape[2] for w in self.weights]  # D_l, the last is T or 2T
        self._buffers: dict[int, dict[str, list[Tensor]]] = {}
        self._device, self._dtype = params.device, params.dtype

    def _buffers_for(self, B: int) -> dict[str, list[Tensor]]:
        """Activations and their gradients for a batch of B rows (two sizes per call at most)."""
        if B not in self._buffers:
            E, kw = self.ensemble_size, {"device": self._device, "dtype": self._dtype}
            hidden = self._widths[:-1]
            self._buffers[B] = {
                "z": [torch.empty(E, B, d, **kw) for d in hidden],  # pre-activations
                "h": [torch.empty(E, B, d, **kw) for d in hidden],  # swish(z)
                "dh": [torch.empty(E, B, d, **kw) for d in hidden],
                "dz": [torch.empty(E, B, d, **kw) for d in self._widths],
                "out": [torch.empty(E, B, self._widths[-1], **kw)],
            }
        return self._buffers[B]

    def __call__(self, x: Tensor, target: Tensor) -> None:
        """Gradient for normalised inputs ``x (E, B, I)`` and targets ``(E, B, T)``."""
        B = x.shape[1]
        buf = self._buffers_for(B)
        z, h, dh, dz, out = buf["z"], buf["h"], buf["dh"], buf["dz"], buf["out"][0]
        L = len(self.weights)

        # Forward: z_l = h_{l-1} W_l + b_l, h_l = swish(z_l); the head is linear.
        layer_in = x
        for i in range(L - 1):
            torch.baddbmm(self.biases[i], layer_in, self.weights[i], out=z[i])  # (E, B, D_i)
            _aten.silu.out(z[i], out=h[i])
            layer_in = h[i]
        torch.baddbmm(self.biases[-1], layer_in, self.weights[-1], out=out)  # (E, B, D_L)

        # d loss / d head output, written into dz[-1].
        if self.is_probabilistic:
            self._gaussian_head_grad(out, target, dz[-1])
        else:
            # d/d mu of mean((mu - y)^2 / 2) over B*T entries, summed over members.
            torch.sub(out, target, out=dz[-1]).mul_(1.0 / (B * self.out_dim))

        # Backward through the layers.
        for i in range(L - 1, -1, -1):
            layer_in = x if i == 0 else h[i - 1]
            # dW = h^T dz + lambda W   (weight decay lambda/2 ||W||^2 folded into the matmul)
            torch.baddbmm(
                self.weights[i],
                layer_in.transpose(1, 2),
                dz[i],
                beta=self.weight_decays[i],
                out=self.weight_grads[i],
            )
            torch.sum(dz[i], dim=1, keepdim=True, out=self.bias_grads[i])  # (E, 1, D_i)
            if i > 0:
                torch.bmm(dz[i], self.weights[i].transpose(1, 2), out=dh[i - 1])
                _aten.silu_backward.grad_input(dh[i - 1], z[i - 1], grad_input=dz[i - 1])

    def _gaussian_head_grad(self, out: Tensor, target: Tensor, d_out: Tensor) -> None:
        """Gradient of sum_e mean_{b,j}[(mu - y)^2 exp(-lv) + lv] + 0.01 (sum max - sum min).

        lv1 = max - softplus(max - v); lv = min + softplus(lv1 - min).
        """
        T = self.out_dim
        B = out.shape[1]
        scale = 1.0 / (B * T)
        mean, raw = out[..., :T], out[..., T:]  # (E, B, T) each
        max_lv, min_lv = self.max_logvar, self.min_logvar  # (1, T)

        a = max_lv - raw
        lv1 = max_lv - torch.nn.functional.softplus(a)
        c = lv1 - min_lv
        lv = torch.nn.functional.softplus(c).add_(min_lv)
        inv_var = lv.neg_().exp_()  # exp(-lv); lv is not needed any more
        diff = mean - target
        weighted = diff * inv_var  # (mu - y) exp(-lv)
        # d/d mu = 2 scale (mu - y) exp(-lv)
        torch.mul(weighted, 2.0 * scale, out=d_out[..., :T])
        # d/d lv = scale (1 - (mu - y)^2 exp(-lv))
        g_lv = weighted.mul_(diff).neg_().add_(1.0).mul_(scale)
        g_lv1 = _aten.softplus_backward(g_lv, c, 1.0, _SOFTPLUS_THRESHOLD)  # through min + sp(.)
        # d/d min = sum (g_lv - g_lv1) - 0.01
        torch.sum(g_lv.sub_(g_lv1), dim=(0, 1), out=self.min_logvar_grad[0])
        self.min_logvar_grad.sub_(LOGVAR_BOUND_PENALTY)
        d_raw = d_out[..., T:]
        _aten.softplus_backward.grad_input(
            g_lv1, a, 1.0, _SOFTPLUS_THRESHOLD, grad_input=d_raw
        )  # d/d v = g_lv1 sigmoid(max - v)
        # d/d max = sum (g_lv1 - d/d v) + 0.01
        torch.sum(g_lv1.sub_(d_raw), dim=(0, 1), out=self.max_logvar_grad[0])
        self.max_logvar_grad.add_(LOGVAR_BOUND_PENALTY)
