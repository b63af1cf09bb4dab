"""One ``train()`` call of the original (§training), on the fast hand-written gradient path.

Per call: optional holdout (reporting only) -> normaliser re-fit -> bootstrap index matrix
``(E, N)`` drawn with replacement (also for E = 1) -> ``epochs`` passes of consecutive column
slices of ``batch_size`` (last one short), one Adam step each for all members at once, each member
on its own rows -> after each epoch every member's index row is shuffled independently.
Weights and Adam state persist across calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from pets_core.graphs import StaticGraph
from pets_core.models.adam import FlatAdam
from pets_core.models.backprop import (
    EnsembleGradient,
    copy_flat_to_model,
    copy_model_to_flat,
    flat_size,
    flat_views,
    with_ones_column,
)
from pets_core.models.ensemble import EnsembleModel
from pets_core.models.loss import gaussian_nll, half_mse, member_mse

GATHER_COLUMNS = 8192  # bootstrap columns gathered per chunk: bounds memory at N = 300k


@dataclass
class TrainStats:
    """Diagnostics of one ``train()`` call, as data (§training step 5).

    ``train_nll`` is each member's training objective without regularisers on the first
    ``max_logging`` of its shuffled bootstrap rows: the Gaussian NLL of §loss for P / PE, the
    deterministic loss mean((mu - y)^2) / 2 for D / DE. ``train_mse`` is mean((mu - y)^2) on the
    same rows, ``holdout_mse`` the members' average MSE on the holdout rows (None without holdout).
    """

    train_nll: list[float] = field(default_factory=list)
    train_mse: list[float] = field(default_factory=list)
    holdout_mse: float | None = None
    steps: int = 0
    seconds: float = 0.0

    def as_metrics(self) -> dict[str, float]:
        metrics = {
            "model/train_nll": float(np.mean(self.train_nll)) if self.train_nll else float("nan"),
            "model/train_mse": float(np.mean(self.train_mse)) if self.train_mse else float("nan"),
            "model/train_steps": float(self.steps),
            "model/train_s": float(self.seconds),
        }
        if self.holdout_mse is not None:
            metrics["model/holdout_mse"] = float(self.holdout_mse)
        return metrics


class ModelTrainer:
    """Trains an ``EnsembleModel`` in place with TF-Adam; keeps the optimiser state across calls.

    The trainer keeps the trainable parameters in one flat vector (layout in ``backprop.py``, so
    Adam is a few fused kernels) and copies them into the model at the end of each call (and from
    it at the start, so edits to the model between calls are honoured).
    """

    def __init__(self, model: EnsembleModel, learning_rate: float, graph: bool = False) -> None:
        self.model = model
        self.graph = graph
        """Full batches' forward + backward as one captured CUDA graph (pets_core.graphs); opt-in.
        Same kernels as the eager step; on CPU the same static-buffer code runs uncaptured."""
        self._graphs: dict[int, StaticGraph] = {}  # batch size -> the gradient's graph
        ref = model.weights[0]
        self._params = torch.zeros(flat_size(model), dtype=ref.dtype, device=ref.device)
        self._grads = torch.zeros_like(self._params)
        self.adam = FlatAdam(self._params, self._grads, learning_rate, _decay_groups(model))
        """Applies one step to the flat parameters (``adam.step()``)."""
        self.gradient = EnsembleGradient(model, self._params, self._grads)
        """Writes the flat gradient of a batch (``gradient(x, target)``, models.backprop)."""
        copy_model_to_flat(model, self._params)
        self.total_steps = 0

    @property
    def learning_rate(self) -> float:
        return self.adam.learning_rate

    # ------------------------------------------------------------------ train

    def train(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        *,
        epochs: int = 5,
        batch_size: int = 32,
        holdout_ratio: float = 0.0,
        max_logging: int = 5000,
        rng: np.random.Generator,
    ) -> TrainStats:
        """Train on ``inputs (N, I)`` -> ``targets (N, T)`` (§training); returns diagnostics."""
        start = time.perf_counter()
        model = self.model
        inputs, targets = _check_data(inputs, targets, model.in_dim, model.out_dim)
        if epochs < 0 or batch_size < 1 or not 0.0 <= holdout_ratio < 1.0:
            raise ValueError(
                f"need epochs >= 0, batch_size >= 1, 0 <= holdout_ratio < 1; got {epochs}, "
                f"{batch_size}, {holdout_ratio}"
            )
        E, device = model.ensemble_size, self._params.device

        # 1. holdout (the original permutes the rows even when it holds none out)
        num_holdout = min(int(inputs.shape[0] * holdout_ratio), max_logging)
        permutation = rng.permutation(inputs.shape[0])
        hold_in, hold_targ = inputs[permutation[:num_holdout]], targets[permutation[:num_holdout]]
        inputs, targets = inputs[permutation[num_holdout:]], targets[permutation[num_holdout:]]
        N = inputs.shape[0]
        if N == 0:
            raise ValueError("no training rows left after the holdout split")

        # 2. normaliser re-fit; normalise the data once (the same float32 ops the model applies)
        model.normalizer.fit(inputs)
        dtype = self._params.dtype
        x_all = model.normalizer(torch.as_tensor(inputs, dtype=dtype, device=device))
        y_all = torch.as_tensor(targets, dtype=dtype, device=device)

        # 3. bootstrap: each member its own resample of size N, with replacement
        idxs = rng.integers(N, size=(E, N))

        self._load_from_model()
        steps = 0
        with torch.no_grad():
            x_aug = with_ones_column(x_all)  # (N, I + 1)
            for _ in range(epochs):
                steps += self.run_epoch(x_aug, y_all, torch.from_numpy(idxs), batch_size)
                idxs = rng.permuted(idxs, axis=1)  # 4. shuffle each member's row on its own
            self._store_to_model()

            # 5. diagnostics on the first max_logging shuffled rows of each member
            log_idx = torch.from_numpy(idxs[:, :max_logging]).to(device)  # (E, min(N, 5000))
            stats = TrainStats(steps=steps)
            nll, mse = self._member_losses(x_all[log_idx], y_all[log_idx])
            stats.train_nll, stats.train_mse = nll.tolist(), mse.tolist()
            if num_holdout > 0:
                x_hold = model.normalizer(torch.as_tensor(hold_in, dtype=dtype, device=device))
                y_hold = torch.as_tensor(hold_targ, dtype=dtype, device=device)
                _, hold_mse = self._member_losses(
                    x_hold.expand(E, *x_hold.shape), y_hold.expand(E, *y_hold.shape)
                )
                stats.holdout_mse = float(hold_mse.mean())
        self.total_steps += steps
        stats.seconds = time.perf_counter() - start
        return stats

    def run_epoch(self, x_aug: Tensor, y_all: Tensor, idxs: Tensor, batch_size: int) -> int:
        """One pass over the index matrix ``(E, N)``: consecutive column slices, one step each.

        ``x_aug (N, I + 1)``: normalised inputs with a trailing column of ones (the bias input).
        """
        N = idxs.shape[1]
        chunk = max(batch_size, GATHER_COLUMNS // batch_size * batch_size)
        steps = 0
        for c0 in range(0, N, chunk):
            cols = idxs[:, c0 : c0 + chunk].to(x_aug.device, non_blocking=True)  # (E, C)
            x_chunk, y_chunk = x_aug[cols], y_all[cols]  # (E, C, I + 1), (E, C, T)
            for b0 in range(0, cols.shape[1], batch_size):
                x, y = x_chunk[:, b0 : b0 + batch_size], y_chunk[:, b0 : b0 + batch_size]
                if self.graph and x.shape[1] == batch_size:  # the short last batch runs eagerly
                    self._graphed_gradient(x, y)
                else:
                    self.gradient(x, y)
                self.adam.step()
                steps += 1
        return steps

    def _graphed_gradient(self, x: Tensor, y: Tensor) -> None:
        """``self.gradient(x, y)`` replayed from a graph captured once per batch size: it reads
        the flat parameters in place (Adam's updates are seen) and writes the flat gradients."""
        B = x.shape[1]
        if B not in self._graphs:
            self._graphs[B] = StaticGraph(self.gradient, {"x": x, "target": y})
        self._graphs[B](x=x, target=y)

    def _member_losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Per-member (objective without regularisers, MSE) on normalised ``x (E, M, I)``."""
        mean, logvar = self.model.forward_normalized(x)
        nll = half_mse(mean, y) if logvar is None else gaussian_nll(mean, logvar, y)
        return nll.cpu(), member_mse(mean, y).cpu()

    # ------------------------------------------------------------------ state

    def _load_from_model(self) -> None:
        copy_model_to_flat(self.model, self._params)

    def _store_to_model(self) -> None:
        copy_flat_to_model(self._params, self.model)

    def state_dict(self) -> dict:
        """Model weights + normaliser + Adam state (for resume)."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "adam": self.adam.state_dict(),
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.adam.load_state_dict(state["adam"])
        self.total_steps = int(state["total_steps"])
        self._load_from_model()


def _decay_groups(model: EnsembleModel) -> list[tuple[float, list[tuple[int, int]]]]:
    """Flat-vector slices per weight decay: each layer's weights with its lambda, the rest 0."""
    flat = torch.arange(flat_size(model))  # positions, to read slice bounds off the views
    views = flat_views(model, flat)
    groups: list[tuple[float, list[tuple[int, int]]]] = []
    undecayed = []
    for decay, w_block, b_block in zip(
        model.weight_decays, views.weight_blocks, views.bias_blocks, strict=True
    ):
        groups.append((decay, [(int(w_block[0]), int(w_block[-1]) + 1)]))
        undecayed.append((int(b_block[0]), int(b_block[-1]) + 1))
    if model.is_probabilistic:
        undecayed.append((int(views.max_logvar[0, 0]), int(views.min_logvar[0, -1]) + 1))
    groups.append((0.0, undecayed))
    return groups


def _check_data(
    inputs: np.ndarray, targets: np.ndarray, in_dim: int, out_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if inputs.ndim != 2 or inputs.shape[1] != in_dim:
        raise ValueError(f"inputs must have shape (N, {in_dim}), got {inputs.shape}")
    if targets.ndim != 2 or targets.shape[1] != out_dim:
        raise ValueError(f"targets must have shape (N, {out_dim}), got {targets.shape}")
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(f"inputs {inputs.shape} and targets {targets.shape} differ in rows")
    if inputs.shape[0] == 0:
        raise ValueError("no training data (N = 0)")
    for name, arr in (("inputs", inputs), ("targets", targets)):
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise ValueError(
                f"{name} contain {int(bad.sum())} NaN/inf entries (first rows "
                f"{rows[:5].tolist()}); refusing to train on them"
            )
    return inputs, targets
