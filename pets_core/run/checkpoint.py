"""What checkpoint.pt holds: the loop's :class:`RunState`, the trainer, the MPC and every RNG.

Saved after the initial rollouts and after every iteration; a resumed run restores all of it and
continues after the last complete iteration, so its logs.mat equals an uninterrupted run's (on
CPU). The file format (tagged numpy arrays, ``weights_only`` loading) is
:mod:`pets_core.results.checkpoint`.

Compatibility: every checkpoint.pt written since 452d06f restores. Keys that older code wrote and
this code no longer keeps (:data:`DROPPED_KEYS`) are ignored on restore.

A *slim* checkpoint (:func:`slim`) leaves out the trainer (model weights and Adam moments, almost
all of the file) and keeps a digest of it. Restoring one replays the run's model training on its
logged episodes, which the checkpoint holds: the same initial weights, the same data prefixes and
the same training RNG, so on the machine that made it the replayed trainer is the saved one, bit
for bit (the digest says whether it is). That lets a run that spans sessions travel as a few
hundred kB instead of the weights (``python -m pets_core.snapshot``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
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
    replays: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """One entry per resume from a slim checkpoint: the iteration it resumed after and whether
    the replayed trainer equals the one that ran (``exact``); done.json reports them."""

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


class ReplayError(Exception):
    """A slim checkpoint whose training cannot be replayed (one line: what differs)."""


def restore_run_state(
    ckpt: dict[str, Any],
    trainer,
    mpc,
    env,
    train_rng,
    noise_rng,
    data: TrainingSet,
    retrain: Callable[[TrainingSet, Any], None] | None = None,
    schedule: Callable[[RunState], list[int]] | None = None,
) -> RunState:
    """Put a loaded checkpoint back: returns the RunState; refills ``data``, trainer, MPC, RNGs.

    A slim checkpoint (no ``trainer``) replays the training instead: ``schedule(state)`` gives
    the number of episodes of every training call so far, ``retrain(data, rng)`` trains once.
    ``train_rng`` must still be in its initial state then (it is, right after the loop made it).
    """
    run = {k: v for k, v in ckpt["run"].items() if k not in DROPPED_KEYS}
    episodes = [Episode(*fields) for fields in run.pop("episodes")]
    state = RunState(**run, episodes=episodes)
    if "trainer" in ckpt:
        for episode in episodes:
            data.append(episode)
        trainer.load_state_dict(ckpt["trainer"])
    else:
        if retrain is None or schedule is None:
            raise ReplayError("a slim checkpoint needs its training replayed; no trainer given")
        _replay_training(ckpt, state, trainer, train_rng, data, retrain, schedule)
    mpc.load_state_dict(ckpt["mpc"])
    mpc.model_trained = state.model_trained
    set_global_rng_state(ckpt["rng"]["global"])
    train_rng.bit_generator.state = ckpt["rng"]["train"]
    noise_rng.bit_generator.state = ckpt["rng"]["noise"]
    env_rng = np.random.Generator(np.random.PCG64())
    env_rng.bit_generator.state = ckpt["rng"]["env"]
    env.unwrapped.np_random = env_rng
    return state


def slim(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint without its trainer state, with that state's digest instead."""
    if "trainer" not in ckpt:
        return dict(ckpt)
    rest = {k: v for k, v in ckpt.items() if k != "trainer"}
    return {**rest, "trainer_digest": trainer_digest(ckpt["trainer"])}


def trainer_digest(state: Any) -> str:
    """sha256 over every array and value of a trainer state dict, in key order."""
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, dict):
            for key in sorted(obj, key=str):
                h.update(repr(key).encode())
                feed(obj[key])
        elif isinstance(obj, list | tuple):
            for item in obj:
                feed(item)
        elif hasattr(obj, "detach"):  # a tensor
            feed(obj.detach().cpu().numpy())
        elif isinstance(obj, np.ndarray):
            h.update(f"{obj.dtype}{obj.shape}".encode())
            h.update(np.ascontiguousarray(obj).tobytes())
        else:
            h.update(repr(obj).encode())

    feed(state)
    return h.hexdigest()


def _replay_training(ckpt, state, trainer, train_rng, data, retrain, schedule) -> None:
    """Train again as the run did, on the same episodes in the same order; check the RNG."""
    sizes = schedule(state)
    if sizes and sizes[-1] > len(state.episodes):
        raise ReplayError(
            f"checkpoint holds {len(state.episodes)} episodes, its training used {sizes[-1]}"
        )
    added = 0
    for size in sizes:
        for episode in state.episodes[added:size]:
            data.append(episode)
        added = size
        retrain(data, train_rng)
    for episode in state.episodes[added:]:
        data.append(episode)
    if train_rng.bit_generator.state != ckpt["rng"]["train"]:
        raise ReplayError(
            f"replaying {len(sizes)} trainings left the training RNG elsewhere than the run's: "
            "the checkpoint's settings or episodes do not match its training"
        )
    state.replays.append(
        {
            "after_iteration": state.iteration,
            "exact": trainer_digest(trainer.state_dict()) == ckpt["trainer_digest"],
        }
    )
