"""Placeholder until the batched trainer lands: each seed's training, one after another."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def train_cohort(
    trainers: Sequence,
    datasets: Sequence[tuple[np.ndarray, np.ndarray]],
    rngs: Sequence[np.random.Generator],
    *,
    epochs: int,
    batch_size: int,
    holdout_ratio: float,
    max_logging: int,
) -> list:
    return [
        trainer.train(
            inputs,
            targets,
            epochs=epochs,
            batch_size=batch_size,
            holdout_ratio=holdout_ratio,
            max_logging=max_logging,
            rng=rng,
        )
        for trainer, (inputs, targets), rng in zip(trainers, datasets, rngs, strict=True)
    ]
