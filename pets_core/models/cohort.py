"""One ``train()`` call of the original (§training) for S seeds in lockstep: a cohort.

The procedure, per seed (``ModelTrainer.train`` is the case S = 1):

1. holdout: a permutation of the rows, the first ``min(N * holdout_ratio, max_logging)`` held
   out for reporting (the original permutes even when it holds none out);
2. normaliser re-fit on the training rows; the data normalised once;
3. bootstrap index matrix ``(E, N)`` drawn with replacement (also for E = 1);
4. ``epochs`` passes of consecutive column slices of ``batch_size`` (last one short), one Adam step
   each for all members at once, each member on its own rows; after each epoch every member's
   index row is shuffled on its own;
5. diagnostics on the first ``max_logging`` shuffled rows of each member (and the holdout).

A cohort is S seeds of one run configuration at the same iteration (issue 30): same model shape,
learning rate and dataset size, each with its own data, normaliser, weights, Adam moments and
random stream. Steps 1-3 and 5 run seed by seed, each on its own generator in the order of a
single call. Step 4 runs the seeds in lockstep: their normalised rows are stacked (seed s's rows
are ``s * N .. s * N + N - 1``, each normalised with its own mean and std before stacking) and
their index matrices too (seed s's members are rows ``s * E .. s * E + E - 1``), so each minibatch
is one gather for all seeds, then one step:

* ``CohortStep`` (the default on the CPU): each seed's gradient from its own trainer, then one
  Adam step for all seeds (``adam.JointAdam``). Seed s's weights, normaliser, Adam state,
  statistics and generator state after the call are bit for bit those of
  ``trainers[s].train(...)`` on its own.
* ``BatchedCohortStep`` (``batched_matmuls=True``, the default on CUDA): S * E members as one
  ensemble (``backprop`` with ``seeds`` = S: seed s's members are rows ``s * E ..`` of every
  layer block, its log-variance bounds row s of ``(S, T)``, its bound gradient summed over its
  own members), so every matmul runs once for all seeds. Equal to the single runs to float32
  rounding: the BLAS may sum in another order for the cohort's leading dimensions (the class).

Either way the per-seed trainers stay the source of truth: what a step changes ends up in each
seed's trainer and model (weights, Adam moments and step count, ``total_steps``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pets_core.models.adam import FlatAdam, JointAdam
from pets_core.models.backprop import (
    EnsembleGradient,
    copy_views,
    flat_size,
    flat_views,
    with_ones_column,
)
from pets_core.models.ensemble import EnsembleModel
from pets_core.models.loss import gaussian_nll, half_mse, member_mse
from pets_core.models.training import ModelTrainer, TrainStats, _decay_groups, run_epoch


def train_cohort(
    trainers: Sequence[ModelTrainer],
    datasets: Sequence[tuple[np.ndarray, np.ndarray]],
    rngs: Sequence[np.random.Generator],
    *,
    epochs: int = 5,
    batch_size: int = 32,
    holdout_ratio: float = 0.0,
    max_logging: int = 5000,
    batched_matmuls: bool | None = None,
) -> list[TrainStats]:
    """Train seed s's model on ``datasets[s] = (inputs (N, I), targets (N, T))`` with
    ``rngs[s]``, all seeds in lockstep; returns each seed's diagnostics.

    ``batched_matmuls``: True runs every matmul once for all S * E members
    (``BatchedCohortStep``: fewer, larger kernels, what a GPU wants; equal to the single runs to
    float32 rounding); False runs each seed's matmuls on its own (``CohortStep``: bit for bit its
    single run; CUDA-graph trainers replay their own graphs); None (default) picks True on CUDA
    without CUDA-graph trainers, False otherwise. Every seed's
    ``TrainStats.seconds`` is the wall time of the whole call.
    """
    start = time.perf_counter()
    S = len(trainers)
    if S == 0 or len(datasets) != S or len(rngs) != S:
        raise ValueError(
            f"need one dataset and one generator per trainer, got {S} trainers, "
            f"{len(datasets)} datasets, {len(rngs)} generators"
        )
    data = []
    for s, (trainer, (inputs, targets)) in enumerate(zip(trainers, datasets, strict=True)):
        try:
            data.append(_check_data(inputs, targets, trainer.model.in_dim, trainer.model.out_dim))
        except ValueError as err:
            raise ValueError(f"seed {s}: {err}" if S > 1 else str(err)) from None
    if epochs < 0 or batch_size < 1 or not 0.0 <= holdout_ratio < 1.0:
        raise ValueError(
            f"need epochs >= 0, batch_size >= 1, 0 <= holdout_ratio < 1; got {epochs}, "
            f"{batch_size}, {holdout_ratio}"
        )
    _check_cohort(trainers, [inputs.shape[0] for inputs, _ in data], rngs, batched_matmuls)

    # 1-3, seed by seed, each on its own generator
    seeds = [
        _SeedRows.draw(trainer, inputs, targets, rng, holdout_ratio, max_logging)
        for trainer, (inputs, targets), rng in zip(trainers, data, rngs, strict=True)
    ]
    N = seeds[0].idxs.shape[1]
    if batched_matmuls is None:  # CUDA-graph trainers replay their own graphs instead
        cuda = trainers[0].flat_vectors()[0].device.type == "cuda"
        batched_matmuls = cuda and not any(t.graph for t in trainers)
    if S == 1:
        step = trainers[0]
    elif batched_matmuls:
        step = BatchedCohortStep(trainers)
    else:
        step = CohortStep(trainers)
    step.load_from_model()
    steps = 0
    with torch.no_grad():
        # 4. the S seeds' rows stacked: seed s's rows are s * N .. s * N + N - 1
        x_aug = torch.cat([with_ones_column(seed.x) for seed in seeds])  # (S N, I + 1)
        y_all = torch.cat([seed.y for seed in seeds])  # (S N, T)
        for _ in range(epochs):
            idxs = np.concatenate([seed.idxs + s * N for s, seed in enumerate(seeds)])  # (S E, N)
            steps += run_epoch(step.step, x_aug, y_all, torch.from_numpy(idxs), batch_size)
            for seed, rng in zip(seeds, rngs, strict=True):
                seed.idxs = rng.permuted(seed.idxs, axis=1)  # each member's row on its own
        step.store_to_model()
        # 5. diagnostics, seed by seed
        stats = [
            seed.diagnostics(t.model, steps, max_logging)
            for t, seed in zip(trainers, seeds, strict=True)
        ]
    seconds = time.perf_counter() - start
    for trainer, seed_stats in zip(trainers, stats, strict=True):
        trainer.total_steps += steps
        seed_stats.seconds = seconds
    return stats


class CohortStep:
    """One minibatch step for S seeds, exact: each seed's gradient from its own trainer (its own
    matmuls, so the BLAS sees the single run's operands), then one Adam step for all seeds
    (``JointAdam``: one fused call per weight decay). The trainers' own vectors are updated in
    place; CUDA-graph trainers replay their own graphs."""

    def __init__(self, trainers: Sequence[ModelTrainer]) -> None:
        self.trainers = list(trainers)
        self.adam = JointAdam([t.adam for t in trainers])
        E = trainers[0].model.ensemble_size
        self._members = [slice(s * E, (s + 1) * E) for s in range(len(trainers))]

    def load_from_model(self) -> None:
        for trainer in self.trainers:
            trainer.load_from_model()

    def step(self, x: Tensor, y: Tensor, full_batch: bool) -> None:
        """``x (S * E, B, I + 1)``, ``y (S * E, B, T)``: seed s's members are rows ``s * E ..``."""
        for trainer, members in zip(self.trainers, self._members, strict=True):
            trainer.write_gradient(x[members], y[members], full_batch)
        self.adam.step()

    def store_to_model(self) -> None:
        for trainer in self.trainers:
            trainer.store_to_model()


class BatchedCohortStep:
    """One minibatch step for S seeds as one ensemble of S * E members: every matmul once for all
    seeds (``backprop`` with ``seeds`` = S), one Adam step on the cohort's vectors.

    Not bit-identical to the seeds' single runs: the cohort's weight blocks have leading
    dimension S * E * out where a single run's have E * out, and MKL picks its kernel (and so the
    summation order of a matmul) by the leading dimension for some shapes (measured with MKL
    2024.2: output widths 5-11 other than 8, the last row block of contiguous E = 1 layers); and
    the fused Adam kernel rounds an element differently in its vector body and its scalar tail,
    whose positions move with the layout. One step agrees to float32 rounding
    (tests/models/test_models_cohort.py); Adam's normalised updates let such differences grow
    over many steps (bench train-cohort: ``batched_max_abs_diff``), like any change of summation
    order, so runs that must equal single runs use ``CohortStep``.
    ``load_from_model`` gathers each seed's weights and Adam moments into the cohort vectors,
    ``store_to_model`` writes them back into each seed's trainer and model.
    """

    def __init__(self, trainers: Sequence[ModelTrainer]) -> None:
        self.trainers = list(trainers)
        self.seeds = len(trainers)
        self._model = model = trainers[0].model
        ref = trainers[0].flat_vectors()[0]
        params = torch.zeros(flat_size(model, self.seeds), dtype=ref.dtype, device=ref.device)
        grads = torch.zeros_like(params)
        self.adam = FlatAdam(
            params, grads, trainers[0].learning_rate, _decay_groups(model, self.seeds)
        )
        self.gradient = EnsembleGradient(model, params, grads, self.seeds)
        self._vectors = [params, self.adam.exp_avg, self.adam.exp_avg_sq]  # as flat_vectors()

    def _seed_tensors(self, flat: Tensor, s: int) -> list[Tensor]:
        """Seed s's part of a cohort vector, tensor by tensor (``FlatViews.tensors`` order)."""
        views = flat_views(self._model, flat, self.seeds)
        return views.seed(s, self._model.ensemble_size).tensors()

    def load_from_model(self) -> None:
        for s, trainer in enumerate(self.trainers):
            trainer.load_from_model()
            for mine, theirs in zip(self._vectors, trainer.flat_vectors(), strict=True):
                copy_views(flat_views(trainer.model, theirs).tensors(), self._seed_tensors(mine, s))
        self.adam.step_count = self.trainers[0].adam.step_count  # equal (_check_cohort)

    def step(self, x: Tensor, y: Tensor, full_batch: bool) -> None:
        """``x (S * E, B, I + 1)``, ``y (S * E, B, T)``: seed s's members are rows ``s * E ..``."""
        self.gradient(x, y)
        self.adam.step()

    def store_to_model(self) -> None:
        for s, trainer in enumerate(self.trainers):
            for mine, theirs in zip(self._vectors, trainer.flat_vectors(), strict=True):
                copy_views(self._seed_tensors(mine, s), flat_views(trainer.model, theirs).tensors())
            trainer.adam.step_count = self.adam.step_count
            trainer.store_to_model()


@dataclass
class _SeedRows:
    """One seed's rows for a call: normalised training ``x (N, I)``, ``y (N, T)``, its bootstrap
    index matrix ``idxs (E, N)`` and the held-out rows (raw)."""

    x: Tensor
    y: Tensor
    idxs: np.ndarray
    hold_in: np.ndarray
    hold_targ: np.ndarray

    @classmethod
    def draw(
        cls,
        trainer: ModelTrainer,
        inputs: np.ndarray,
        targets: np.ndarray,
        rng: np.random.Generator,
        holdout_ratio: float,
        max_logging: int,
    ) -> _SeedRows:
        """Steps 1-3 of the module docstring (re-fits the trainer's model's normaliser)."""
        model = trainer.model
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
        like = trainer.flat_vectors()[0]  # the dtype and device the trainer computes in
        x = model.normalizer(torch.as_tensor(inputs, dtype=like.dtype, device=like.device))
        y = torch.as_tensor(targets, dtype=like.dtype, device=like.device)

        # 3. bootstrap: each member its own resample of size N, with replacement
        idxs = rng.integers(N, size=(model.ensemble_size, N))
        return cls(x, y, idxs, hold_in, hold_targ)

    def diagnostics(self, model: EnsembleModel, steps: int, max_logging: int) -> TrainStats:
        """Step 5: each member's losses on the first ``max_logging`` of its shuffled rows."""
        log_idx = torch.from_numpy(self.idxs[:, :max_logging]).to(self.x.device)  # (E, <= 5000)
        stats = TrainStats(steps=steps)
        nll, mse = _member_losses(model, self.x[log_idx], self.y[log_idx])
        stats.train_nll, stats.train_mse = nll.tolist(), mse.tolist()
        if self.hold_in.shape[0] > 0:
            like, E = self.x, model.ensemble_size
            x_hold = model.normalizer(
                torch.as_tensor(self.hold_in, dtype=like.dtype, device=like.device)
            )
            y_hold = torch.as_tensor(self.hold_targ, dtype=like.dtype, device=like.device)
            _, hold_mse = _member_losses(
                model, x_hold.expand(E, *x_hold.shape), y_hold.expand(E, *y_hold.shape)
            )
            stats.holdout_mse = float(hold_mse.mean())
        return stats


def _member_losses(model: EnsembleModel, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-member (objective without regularisers, MSE) on normalised ``x (E, M, I)``."""
    mean, logvar = model.forward_normalized(x)
    nll = half_mse(mean, y) if logvar is None else gaussian_nll(mean, logvar, y)
    return nll.cpu(), member_mse(mean, y).cpu()


def _check_cohort(
    trainers: Sequence[ModelTrainer],
    sizes: Sequence[int],
    rngs: Sequence[np.random.Generator],
    batched_matmuls: bool | None,
) -> None:
    """Refuse what cannot train in lockstep, naming the seeds (by position) that differ."""
    for what, objects in (
        ("trainers", trainers),
        ("models", [t.model for t in trainers]),
        ("generators", rngs),
    ):
        ids = [id(o) for o in objects]
        for s, i in enumerate(ids):
            if ids.index(i) != s:
                raise ValueError(
                    f"seeds {ids.index(i)} and {s} share one of the {what}; a cohort needs one "
                    f"per seed"
                )
    first = trainers[0]
    ref = {
        "dataset size": sizes[0],
        "model": first.model.config(),
        "learning rate": first.learning_rate,
        "Adam step count": first.adam.step_count,
        "dtype": first.flat_vectors()[0].dtype,
        "device": first.flat_vectors()[0].device,
    }
    for s, trainer in enumerate(trainers[1:], start=1):
        mine = {
            "dataset size": sizes[s],
            "model": trainer.model.config(),
            "learning rate": trainer.learning_rate,
            "Adam step count": trainer.adam.step_count,
            "dtype": trainer.flat_vectors()[0].dtype,
            "device": trainer.flat_vectors()[0].device,
        }
        for key, value in ref.items():
            if mine[key] != value:
                if key == "model":
                    diff = [k for k in value if mine[key][k] != value[k]]
                    detail = ", ".join(f"{k} {mine[key][k]} vs {value[k]}" for k in diff)
                else:
                    detail = f"{mine[key]} vs {value}"
                raise ValueError(
                    f"cohort seeds must share their {key}: seed {s} has {detail} (seed 0); "
                    f"a cohort trains one run configuration at one iteration"
                )
    if len(trainers) > 1 and batched_matmuls and any(t.graph for t in trainers):
        graphed = [s for s, t in enumerate(trainers) if t.graph]
        raise ValueError(
            f"seeds {graphed} have CUDA-graph trainers (graph=True); batched_matmuls=True trains "
            f"the cohort eagerly: pass batched_matmuls=False or build the trainers with graph=False"
        )


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
