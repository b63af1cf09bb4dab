"""Placeholder until the batched planner lands: each seed's plan, one after another."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class CohortMPC:
    def __init__(self, mpcs: Sequence) -> None:
        self.mpcs = list(mpcs)

    def act(self, observations: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [mpc.act(obs) for mpc, obs in zip(self.mpcs, observations, strict=True)]
