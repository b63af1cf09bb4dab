"""How the planner calls the dynamics model: per-member or moment-matched Gaussians.

Shapes: E members, N candidates, R rows per candidate (P/E under TS*, P under DS/MM/E),
F preprocessed-obs dim (I - A), A action dim, T target dim, H horizon.

The model input is ``[obs_preproc(s), a]`` and every particle of a candidate gets the same action,
so both predictors take the obs features ``(.., N, R, F)`` and the step's actions ``(N, A)``
separately:

* ``ModelPredictor`` concatenates them and calls the contract's ``model.predict`` /
  ``model.predict_moments`` (any model, any device).
* ``FastPredictor`` runs the model's MLP (``model.mlp_weights()``, the maths of
  pets_core.models.mlp) in a planning layout: the actions are
  normalised once per batch of candidates, each step writes ``[normalised obs features, a_t]``
  into one input buffer, and on CPU every layer is one oneDNN matmul per member with the bias
  and the swish fused into it (on this AVX-512 machine oneDNN's fp32 matmul runs ~2x
  torch.bmm's MKL path on these shapes, see pets_core.bench.plan), the members' chains running
  on single-threaded CPU lanes (pets_core.planning.lanes); elsewhere one ``baddbmm`` over
  members with an in-place swish. (Splitting layer 0 into obs and action rows, with the
  action part precomputed per candidate, measured no faster: with the bias and swish fused into
  the matmul, the split costs two extra passes over the layer-0 output.)

Both return ``mean`` and ``std`` (``None`` when the variance is not needed), so propagation never
knows which one it has.
"""

from __future__ import annotations

import weakref
from itertools import pairwise
from typing import Protocol

import torch
from torch import Tensor

from pets_core.config import PRECISIONS
from pets_core.models.mlp import (
    ONEDNN_ACTIVATION,
    baddbmm_layer,
    gaussian_head,
    mlp,
    moment_match,
)
from pets_core.planning.lanes import num_lanes, run_chains

ALL = slice(None)


class Predictor(Protocol):
    ensemble_size: int
    supports_lanes: bool
    """True when ``members`` / ``moments`` may run concurrently on CPU lanes (planning.lanes)."""

    def prepare(self, action_seqs: Tensor) -> None:
        """Called once per batch of candidates ``(N, H, A)`` before stepping."""

    def members(
        self, obs_in: Tensor, t: int, need_std: bool, cand: slice = ALL
    ) -> tuple[Tensor, Tensor | None]:
        """Member e on its rows: ``obs_in (E, N, R, F)`` -> ``mean, std (E, N, R, T)``, for step
        ``t`` and the candidates ``cand`` of the prepared batch."""
        ...

    def moments(
        self, obs_in: Tensor, t: int, need_std: bool, cand: slice = ALL
    ) -> tuple[Tensor, Tensor | None]:
        """All members on the same rows, moment-matched: ``(N, R, F)`` -> ``(N, R, T)``."""
        ...


class ModelPredictor:
    """The contract's ``predict`` / ``predict_moments`` on ``[obs features, action]``."""

    def __init__(self, model) -> None:
        self.model = model
        self.ensemble_size = int(model.ensemble_size)
        self.supports_lanes = False
        self._action_seqs: Tensor | None = None

    def prepare(self, action_seqs: Tensor) -> None:
        self._action_seqs = action_seqs

    def _inputs(self, obs_in: Tensor, t: int, cand: slice) -> Tensor:
        action = self._action_seqs[cand, t]  # (N, A)
        action = action.view(action.shape[0], 1, -1).expand(*obs_in.shape[-3:-1], -1)
        if obs_in.ndim == 4:
            action = action.expand(obs_in.shape[0], *action.shape)
        return torch.cat([obs_in, action], dim=-1)  # (.., N, R, I)

    def members(
        self, obs_in: Tensor, t: int, need_std: bool, cand: slice = ALL
    ) -> tuple[Tensor, Tensor | None]:
        E, N, R, _ = obs_in.shape
        x = self._inputs(obs_in, t, cand).view(E, N * R, -1)  # (E, N R, I)
        mean, var = self.model.predict(x)
        std = var.sqrt().view(E, N, R, -1) if need_std else None
        return mean.view(E, N, R, -1), std

    def moments(
        self, obs_in: Tensor, t: int, need_std: bool, cand: slice = ALL
    ) -> tuple[Tensor, Tensor | None]:
        N, R, _ = obs_in.shape
        mean, var = self.model.predict_moments(self._inputs(obs_in, t, cand).view(N * R, -1))
        std = var.sqrt().view(N, R, -1) if need_std else None
        return mean.view(N, R, -1), std


def _onednn_available(device: torch.device) -> bool:
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class FastPredictor:
    """The model's MLP in a planning layout (see the module docstring). Same maths as predict.

    ``precision`` (one of ``PRECISIONS``) gives each layer's matmul dtype (weights, bias and the
    layer's input; :func:`layer_dtypes`). The head's mean / log-variance maths always runs in
    float32.
    """

    def __init__(self, model, act_dim: int, backend: str = "auto", precision: str = "fp32") -> None:
        net = model.mlp_weights()  # pets_core.models.mlp.MLPWeights, detached
        dtypes = layer_dtypes(precision, len(net.layers))
        device = net.in_mean.device
        if backend == "auto":
            backend = "onednn" if _onednn_available(device) else "bmm"
        if backend not in ("onednn", "bmm"):
            raise ValueError(f"unknown backend {backend!r}; valid: auto, onednn, bmm")
        self.backend, self.dtypes = backend, dtypes
        self.supports_lanes = backend == "onednn"
        self.ensemble_size = net.ensemble_size
        self.out_dim = net.out_dim
        self.is_probabilistic = net.is_probabilistic
        self.max_logvar, self.min_logvar = net.max_logvar, net.min_logvar  # (T,) or None
        self.in_dim = net.in_dim
        self.obs_in_dim = self.in_dim - int(act_dim)  # F
        F_ = self.obs_in_dim
        self.obs_mean, self.obs_std = net.in_mean[:F_], net.in_std[:F_]  # (F,)
        self.act_mean, self.act_std = net.in_mean[F_:], net.in_std[F_:]  # (A,)
        if backend == "onednn":  # per member (out, in) weights and (out,) biases
            self.layers = [
                ([w.T.contiguous().to(dt) for w in weight], [b[0].to(dt) for b in bias])
                for (weight, bias), dt in zip(net.layers, dtypes, strict=True)
            ]
        else:  # (E, in, out), (E, 1, out) as stored
            self.layers = [
                (w.to(dt), b.to(dt)) for (w, b), dt in zip(net.layers, dtypes, strict=True)
            ]
        self._actions: Tensor | None = None

    @classmethod
    def supports(cls, model) -> bool:
        """True when the model hands out its MLP (``mlp_weights``, pets_core.models)."""
        return callable(getattr(model, "mlp_weights", None))

    def prepare(self, action_seqs: Tensor) -> None:
        # normalised once per batch of candidates, not once per particle and step
        self._actions = ((action_seqs - self.act_mean) / self.act_std).to(self.dtypes[0])  # (N,H,A)

    def _inputs(self, obs_in: Tensor, t: int, cand: slice) -> Tensor:
        """Normalised ``[obs features, a_t]`` written into one buffer ``(.., N, R, I)``."""
        shape, dtype = (*obs_in.shape[:-1], self.in_dim), self.dtypes[0]
        x = torch.empty(shape, dtype=dtype, device=obs_in.device)
        x[..., : self.obs_in_dim] = (obs_in - self.obs_mean) / self.obs_std
        x[..., self.obs_in_dim :] = self._actions[cand, t, None]  # (N, 1, A) over the rows
        return x

    def _head(self, out: Tensor, need_std: bool) -> tuple[Tensor, Tensor | None]:
        out = out.float()
        if not need_std:
            return out[..., : self.out_dim], None
        mean, logvar = gaussian_head(out, self.out_dim, self.max_logvar, self.min_logvar)
        if logvar is None:
            return mean, torch.zeros_like(mean)
        return mean, logvar.mul_(0.5).exp_()

    def _member_mlp(self, x: Tensor, e: int) -> Tensor:
        """oneDNN path, member e on ``x (M, I)`` -> raw head output ``(M, out)``; every layer
        is one matmul with its bias and swish fused in."""

        def layer(i: int, h: Tensor, activate: bool) -> Tensor:
            weight, bias = self.layers[i]
            attr = ONEDNN_ACTIVATION if activate else "none"
            h = h.to(self.dtypes[i])  # no-op unless the previous layer ran in another dtype
            return torch.ops.mkldnn._linear_pointwise(h, weight[e], bias[e], attr, [], "")

        return mlp(x, len(self.layers), layer)

    def _onednn_members(self, xs: list[Tensor]) -> Tensor:
        """Member e on ``xs[e] (M, I)`` -> ``(E, M, out)``, run as E x lanes independent chains
        (a member's layers on a block of rows) on single-threaded CPU lanes (planning.lanes)."""
        E, M = len(xs), xs[0].shape[0]
        out_dim = self.layers[-1][0][0].shape[0]
        out = torch.empty(E, M, out_dim, dtype=self.dtypes[-1], device=xs[0].device)
        blocks = num_lanes() if M >= 64 else 1
        bounds = [M * i // blocks for i in range(blocks + 1)]

        def chain(e: int, lo: int, hi: int):
            return lambda: out[e, lo:hi].copy_(self._member_mlp(xs[e][lo:hi], e))

        run_chains([chain(e, lo, hi) for e in range(E) for lo, hi in pairwise(bounds) if hi > lo])
        return out

    def _batched_mlp(self, x: Tensor) -> Tensor:
        """bmm path, ``x (E, M, I)`` (may be expanded over E) -> raw ``(E, M, out)``."""
        layer = baddbmm_layer(self.layers, inplace=True)
        if len(set(self.dtypes)) == 1:
            return mlp(x, len(self.layers), layer)
        return mlp(x, len(self.layers), lambda i, h, act: layer(i, h.to(self.dtypes[i]), act))

    def members(
        self, obs_in: Tensor, t: int, need_std: bool, cand: slice = ALL
    ) -> tuple[Tensor, Tensor | None]:
        E, N, R, _ = obs_in.shape
        x = self._inputs(obs_in, t, cand).view(E, N * R, -1)  # (E, N R, I)
        if self.backend == "onednn":
            out = self._onednn_members([x[e] for e in range(E)])
        else:
            out = self._batched_mlp(x)
        return self._head(out.view(E, N, R, -1), need_std)

    def moments(
        self, obs_in: Tensor, t: int, need_std: bool, cand: slice = ALL
    ) -> tuple[Tensor, Tensor | None]:
        N, R, _ = obs_in.shape
        E = self.ensemble_size
        x = self._inputs(obs_in, t, cand).view(N * R, -1)  # (N R, I), the same rows for all members
        if self.backend == "onednn":
            out = self._onednn_members([x] * E)
        else:
            out = self._batched_mlp(x.expand(E, *x.shape))
        mean, std = self._head(out.view(E, N, R, -1), need_std)  # (E, N, R, T)
        member_var = std.square() if need_std and self.is_probabilistic else None
        mean, var = moment_match(mean, member_var, need_var=need_std)
        return mean, None if var is None else var.sqrt_()


def layer_dtypes(precision: str, num_layers: int) -> tuple[torch.dtype, ...]:
    """Each layer's matmul dtype under a planner precision (``PRECISIONS``, pets_core.config):
    ``fp32``; ``bf16`` every layer; ``bf16-hidden`` the hidden-to-hidden layers only (input
    layer and head in float32); ``bf16-trunk`` every layer but the head."""
    f32, b16 = torch.float32, torch.bfloat16
    last = num_layers - 1
    match precision:
        case "fp32":
            return (f32,) * num_layers
        case "bf16":
            return (b16,) * num_layers
        case "bf16-hidden":
            return tuple(f32 if i in (0, last) else b16 for i in range(num_layers))
        case "bf16-trunk":
            return tuple(f32 if i == last else b16 for i in range(num_layers))
    raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_predictor(
    model, act_dim: int, fast: bool | str = "auto", precision: str = "fp32"
) -> Predictor:
    """FastPredictor when the model exposes its weights (and ``fast`` allows), else the API.

    The fast layout is rebuilt only when a weight, bias or normaliser tensor has changed since
    the last call (tensor version counters), i.e. after training, not at every CEM iteration.
    """
    if fast not in (True, False, "auto", "onednn", "bmm"):
        raise ValueError(f"fast must be auto, True, False, onednn or bmm, got {fast!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if fast is False or (fast == "auto" and not FastPredictor.supports(model)):
        if precision != "fp32":
            raise ValueError(f"precision {precision} needs the fast planner forward")
        return ModelPredictor(model)
    backend = fast if fast in ("onednn", "bmm") else "auto"
    tensors = [*model.parameters(), *model.buffers()]
    key = (backend, precision, act_dim, tuple((id(x), x._version) for x in tensors))
    cached = _CACHE.get(model)
    if cached is None or cached[0] != key:
        predictor = FastPredictor(model, act_dim, backend=backend, precision=precision)
        cached = (key, predictor)
        _CACHE[model] = cached
    return cached[1]
