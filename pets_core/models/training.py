"""The model trainer (§training): an ``EnsembleModel`` with its TF-Adam state, trained in place.

One ``train()`` call of the original is written once, for S seeds in lockstep, in
``models.cohort``; ``ModelTrainer.train`` is its S = 1 case. What the trainer owns: the trainable
parameters as one flat vector (layout in ``backprop.py``, so Adam is a few fused kernels), its
gradient, Adam's moments and step count, and one minibatch step (gradient + Adam), optionally
replayed from a CUDA graph. ``run_epoch`` is one pass of such steps over a bootstrap index matrix.
"""

from __future__ import annotations

from collections.abc import Callable
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
)
from pets_core.models.ensemble import EnsembleModel

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
        self.load_from_model()
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
        """Train on ``inputs (N, I)`` -> ``targets (N, T)`` (§training); returns diagnostics.

        The one-seed case of ``models.cohort.train_cohort`` (the procedure is written there once).
        """
        from pets_core.models.cohort import train_cohort  # cohort.py builds on this module

        (stats,) = train_cohort(
            [self],
            [(inputs, targets)],
            [rng],
            epochs=epochs,
            batch_size=batch_size,
            holdout_ratio=holdout_ratio,
            max_logging=max_logging,
        )
        return stats

    def step(self, x: Tensor, y: Tensor, full_batch: bool) -> None:
        """One minibatch step, all members at once: ``x (E, B, I + 1)``, ``y (E, B, T)``."""
        self.write_gradient(x, y, full_batch)
        self.adam.step()

    def write_gradient(self, x: Tensor, y: Tensor, full_batch: bool) -> None:
        """The step's gradient into the flat gradient vector; with ``graph``, a full batch
        replays the captured gradient (the short last one runs eagerly)."""
        if self.graph and full_batch:
            self._graphed_gradient(x, y)
        else:
            self.gradient(x, y)

    def run_epoch(self, x_aug: Tensor, y_all: Tensor, idxs: Tensor, batch_size: int) -> int:
        """One pass over the index matrix ``(E, N)`` (``run_epoch`` below) with this trainer."""
        return run_epoch(self.step, x_aug, y_all, idxs, batch_size)

    def _graphed_gradient(self, x: Tensor, y: Tensor) -> None:
        """``self.gradient(x, y)`` replayed from a graph captured once per batch size: it reads
        the flat parameters in place (Adam's updates are seen) and writes the flat gradients."""
        B = x.shape[1]
        if B not in self._graphs:
            self._graphs[B] = StaticGraph(self.gradient, {"x": x, "target": y})
        self._graphs[B](x=x, target=y)

    # ------------------------------------------------------------------ state

    def flat_vectors(self) -> list[Tensor]:
        """The flat vectors a step updates: parameters, Adam's first and second moments."""
        return [self._params, self.adam.exp_avg, self.adam.exp_avg_sq]

    def load_from_model(self) -> None:
        """Model weights -> flat parameters (edits to the model between calls are honoured)."""
        copy_model_to_flat(self.model, self._params)

    def store_to_model(self) -> None:
        """Flat parameters -> model weights (what the planner, checkpoints and save_model read)."""
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
        self.load_from_model()


def run_epoch(
    step: Callable[[Tensor, Tensor, bool], None],
    x_aug: Tensor,
    y_all: Tensor,
    idxs: Tensor,
    batch_size: int,
) -> int:
    """One pass over the index matrix ``idxs (M, N)``: consecutive column slices of ``batch_size``
    (the last one short), one ``step(x (M, B, I + 1), y (M, B, T), B == batch_size)`` each;
    returns the number of steps.

    ``x_aug (R, I + 1)``: normalised inputs with a trailing column of ones (the bias input);
    ``y_all (R, T)``; row ``m`` of ``idxs`` lists member m's rows of ``x_aug`` / ``y_all``.
    """
    N = idxs.shape[1]
    chunk = max(batch_size, GATHER_COLUMNS // batch_size * batch_size)
    steps = 0
    for c0 in range(0, N, chunk):
        cols = idxs[:, c0 : c0 + chunk].to(x_aug.device, non_blocking=True)  # (M, C)
        x_chunk, y_chunk = x_aug[cols], y_all[cols]  # (M, C, I + 1), (M, C, T)
        for b0 in range(0, cols.shape[1], batch_size):
            x, y = x_chunk[:, b0 : b0 + batch_size], y_chunk[:, b0 : b0 + batch_size]
            step(x, y, x.shape[1] == batch_size)
            steps += 1
    return steps


def _decay_groups(
    model: EnsembleModel, seeds: int = 1
) -> list[tuple[float, list[tuple[int, int]]]]:
    """Flat-vector slices per weight decay: each layer's weights with its lambda, the rest 0
    (``seeds`` > 1: a cohort's vector, where each slice covers every seed)."""
    flat = torch.arange(flat_size(model, seeds))  # positions, to read slice bounds off the views
    views = flat_views(model, flat, seeds)
    groups: list[tuple[float, list[tuple[int, int]]]] = []
    undecayed = []
    for decay, w_block, b_block in zip(
        model.weight_decays, views.weight_blocks, views.bias_blocks, strict=True
    ):
        groups.append((decay, [(int(w_block[0]), int(w_block[-1]) + 1)]))
        undecayed.append((int(b_block[0]), int(b_block[-1]) + 1))
    if model.is_probabilistic:
        undecayed.append((int(views.max_logvar[0, 0]), int(views.min_logvar[-1, -1]) + 1))
    groups.append((0.0, undecayed))
    return groups
