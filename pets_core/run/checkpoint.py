"""What checkpoint.pt holds: the loop's :class:`RunState`, the trainer, the MPC and every RNG.

Saved after the initial rollouts and after every iteration; a resumed run restores all of it and
continues after the last complete iteration, so its logs.mat equals an uninterrupted run's (on
CPU). The file format (tagged numpy arrays, ``weights_only`` loading) is
:mod:`pets_core.results.checkpoint`.

Compatibility: every checkpoint.pt written since 452d06f restores. Keys that older code wrote and
this code no longer keeps (:data:`DROPPED_KEYS`) are ignored on restore.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from pets_core.results.checkpoint import save_checkpoint
from pets_core.results.metrics import best_so_far
from pets_core.run.data import Episode, TrainingSet
from pets_core.run.device import global_rng_state, set_global_rng_state

DROPPED_KEYS = ("env_steps",)
"""RunState fields of older checkpoints: ``env_steps`` (a counter nothing read; the one
definition of env steps is :func:`pets_core.results.metrics.env_steps`)."""


@dataclasses.dataclass
class RunState:
    """Everything a checkpoint holds besides model / RNG states."""

    iteration: int = 0
    """Last complete iteration (0: initial rollouts done)."""
    episodes: list[Episode] = dataclasses.field(default_factory=list)
    """Logged episodes (initial + nrollouts_per_iter per iteration)."""
    returns: list[float] = dataclasses.field(default_factory=list)
    rows: list[dict[str, float]] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0
    model_trained: bool = False
    last_train: dict[str, float] = dataclasses.field(default_factory=dict)
    last_train_s: float = 0.0
    env_seeded: bool = False

    @property
    def best_so_far(self) -> float:
        return float(best_so_far(self.returns)[-1]) if self.returns else float("nan")


def save_run_state(
    run_dir: Path, state: RunState, trainer, mpc, env, train_rng, noise_rng, mlflow_run_id
) -> None:
    """checkpoint.pt, atomically: state, trainer (model + Adam), MPC (warm start, RNG), RNGs."""
    save_checkpoint(
        run_dir,
        {
            "run": {
                **{k: v for k, v in dataclasses.asdict(state).items() if k != "episodes"},
                "episodes": [dataclasses.astuple(ep) for ep in state.episodes],
            },
            "trainer": trainer.state_dict(),
            "mpc": mpc.state_dict(),
            "rng": {
                "global": global_rng_state(),
                "train": train_rng.bit_generator.state,
                "noise": noise_rng.bit_generator.state,
                "env": env.unwrapped.np_random.bit_generator.state,
            },
            "mlflow_run_id": mlflow_run_id,
        },
    )


def restore_run_state(
    ckpt: dict[str, Any], trainer, mpc, env, train_rng, noise_rng, data: TrainingSet
) -> RunState:
    """Put a loaded checkpoint back: returns the RunState; refills ``data``, trainer, MPC, RNGs."""
    run = {k: v for k, v in ckpt["run"].items() if k not in DROPPED_KEYS}
    episodes = [Episode(*fields) for fields in run.pop("episodes")]
    state = RunState(**run, episodes=episodes)
    for episode in episodes:
        data.append(episode)
    trainer.load_state_dict(ckpt["trainer"])
    mpc.load_state_dict(ckpt["mpc"])
    mpc.model_trained = state.model_trained
    set_global_rng_state(ckpt["rng"]["global"])
    train_rng.bit_generator.state = ckpt["rng"]["train"]
    noise_rng.bit_generator.state = ckpt["rng"]["noise"]
    env_rng = np.random.Generator(np.random.PCG64())
    env_rng.bit_generator.state = ckpt["rng"]["env"]
    env.unwrapped.np_random = env_rng
    return state
