"""Episodes and the growing training set (§data).

Every logged episode (obs [T + 1, O], actions [T, A]) adds T rows:
inputs [obs_preproc(o_0..o_{T-1}), a_0..a_{T-1}] -> [T, I] and
targets targ_proc(o_t, o_{t+1}) -> [T, T_out].
Rows are appended, never discarded; the model trains on all of them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class Episode:
    observations: np.ndarray
    """[T + 1, O], starting with the reset observation."""
    actions: np.ndarray
    """[T, A], noise-free (what the controller chose)."""
    rewards: np.ndarray
    """[T] env rewards."""
    seconds_per_action: float = 0.0

    @property
    def ret(self) -> float:
        """Undiscounted return."""
        return float(np.sum(self.rewards))


class TrainingSet:
    """inputs [N, I] and targets [N, T_out] of all logged episodes (float64 as the original)."""

    def __init__(self, task) -> None:
        self.task = task
        self._inputs: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []

    def append(self, episode: Episode) -> None:
        obs = torch.as_tensor(episode.observations, dtype=torch.float64)  # [T + 1, O]
        with torch.no_grad():
            features = self.task.obs_preproc(obs[:-1])  # [T, I - A]
            targets = self.task.targ_proc(obs[:-1], obs[1:])  # [T, T_out]
        actions = np.asarray(episode.actions, dtype=np.float64)  # [T, A]
        self._inputs.append(np.concatenate([features.numpy(), actions], axis=-1))
        self._targets.append(targets.numpy())

    def __len__(self) -> int:
        return sum(len(x) for x in self._inputs)

    @property
    def inputs(self) -> np.ndarray:
        return np.concatenate(self._inputs)

    @property
    def targets(self) -> np.ndarray:
        return np.concatenate(self._targets)
