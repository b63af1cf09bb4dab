"""One run seed, independent random streams (numpy ``SeedSequence.spawn``).

Every consumer of randomness in a run gets its own child of ``SeedSequence(seed)``, so no two
streams coincide. (Before: the MPC's ``default_rng(seed)`` drew the very PCG64 stream of
gymnasium's ``reset(seed=seed)``, and the planner's and the model-init's torch generators both
started from ``manual_seed(seed)``.) A child is fixed by (seed, its index), so adding a stream at
the end never changes the others; resume restores each stream's state from the checkpoint.

| index | stream        | consumer                                                         |
|-------|---------------|------------------------------------------------------------------|
| 0     | ``train``     | numpy: bootstrap rows, holdout split, per-epoch shuffles          |
| 1     | ``noise``     | numpy: ``sim_cfg.stochastic`` action noise                        |
| 2     | ``env``       | gymnasium ``reset(seed=...)`` (an int drawn from the child)       |
| 3     | ``actions``   | numpy: the MPC's uniform random actions before the first training |
| 4     | ``planner``   | torch generator of the planner (CEM noise, TS permutations, draws)|
| 5     | ``model_init``| torch generator of the network initialisation                     |
| 6     | ``fallback``  | the global python / numpy / torch seeds, for third-party code     |
"""

from __future__ import annotations

import dataclasses

import numpy as np

MAX_SEED = 2**32 - 1
"""Run seeds are 0..2**32-1 (what every consumer accepts; the workflow schema says the same)."""


def _as_int(seq: np.random.SeedSequence) -> int:
    """A 63-bit int from a child, for APIs that take an int (torch, gymnasium, ``random``)."""
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@dataclasses.dataclass(frozen=True)
class RunSeeds:
    """The run's independent streams: numpy ``SeedSequence`` children or ints derived from them."""

    seed: int
    train: np.random.SeedSequence
    noise: np.random.SeedSequence
    env: int
    actions: np.random.SeedSequence
    planner: int
    model_init: int
    fallback: int

    @classmethod
    def from_seed(cls, seed: int) -> RunSeeds:
        if not 0 <= int(seed) <= MAX_SEED:
            raise ValueError(f"seed must be in [0, {MAX_SEED}], got {seed}")
        train, noise, env, actions, planner, model_init, fallback = np.random.SeedSequence(
            int(seed)
        ).spawn(7)
        return cls(
            seed=int(seed),
            train=train,
            noise=noise,
            env=_as_int(env),
            actions=actions,
            planner=_as_int(planner),
            model_init=_as_int(model_init),
            fallback=int(fallback.generate_state(1, dtype=np.uint32)[0]),  # numpy's global: 32 bit
        )
