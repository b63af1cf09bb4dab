"""Receding-horizon control (§action-selection): plan H steps, run ``per``, warm-start the mean.

Shapes: H horizon, A action dim, O obs dim, P particles. numpy at the env boundary only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from pets_core.config.propagation import PropagationSpec
from pets_core.planning.cohort import act_together
from pets_core.planning.optimizer import Optimizer, Plan
from pets_core.planning.rollout import CostQuery, predicted_costs, predicted_particles
from pets_core.seeding import RunSeeds


def tile_bounds(
    action_low: np.ndarray, action_high: np.ndarray, plan_hor: int, device: torch.device | str
) -> tuple[Tensor, Tensor]:
    """The optimiser's box: the env's action bounds tiled over the horizon, ``(H, A)`` each."""
    if plan_hor < 1:
        raise ValueError(f"plan_hor must be >= 1, got {plan_hor}")
    low = torch.as_tensor(np.asarray(action_low), dtype=torch.float32, device=device)
    high = torch.as_tensor(np.asarray(action_high), dtype=torch.float32, device=device)
    return low.expand(plan_hor, -1).clone(), high.expand(plan_hor, -1).clone()


class MPC:
    """The PETS controller: uniform random actions until ``model_trained``, then optimised ones.

    ``act`` re-plans every ``per`` steps from ``(prev_sol, init_var)``; ``prev_sol`` starts at the
    action-box mid-point and becomes the solution shifted left by ``per`` actions with ``per``
    rows of zeros appended; ``init_var = (high - low)^2 / 16`` is never carried over.
    ``reset(goal)`` starts an episode (mid-point warm start, empty action buffer, new goal).
    With ``log_traj_preds`` / ``log_particles`` every plan re-simulates the chosen sequence once
    more and stores the particles' mean/variance (or all particles) of the H+1 predicted obs
    (§ctrl-logs); ``pop_prediction_log`` hands them over.
    """

    def __init__(
        self,
        *,
        model,
        task,
        optimizer: Optimizer,
        plan_hor: int,
        per: int,
        propagation: PropagationSpec,
        action_low: np.ndarray,  # (A,)
        action_high: np.ndarray,  # (A,)
        device: torch.device | str,
        seed: int,
        log_traj_preds: bool = False,
        log_particles: bool = False,
        fast: bool | str = "auto",
        precision: str = "fp32",
        graph: bool = False,
    ) -> None:
        propagation.check_model(model)
        if plan_hor < 1:
            raise ValueError(f"plan_hor must be >= 1, got {plan_hor}")
        if not 1 <= per <= plan_hor:
            raise ValueError(f"per must be in [1, plan_hor={plan_hor}], got {per}")
        action_low, action_high = np.asarray(action_low), np.asarray(action_high)
        if action_low.shape != (task.act_dim,) or action_high.shape != (task.act_dim,):
            raise ValueError(
                f"action_low/high must have shape (A={task.act_dim},), got "
                f"{action_low.shape} and {action_high.shape}"
            )
        if tuple(optimizer.lower.shape) != (plan_hor, task.act_dim):
            raise ValueError(
                f"optimizer bounds are {tuple(optimizer.lower.shape)}, expected (plan_hor, A) = "
                f"{(plan_hor, task.act_dim)}"
            )
        self.model, self.task, self.optimizer = model, task, optimizer
        self.plan_hor, self.per = plan_hor, per
        self.propagation = propagation  # mode, particles, ign_var (planning.propagation)
        self.fast, self.precision = fast, precision  # how the model is called (planning.forward)
        self.graph = graph  # plan through a captured rollout (pets_core.graphs); off by default
        self.device = torch.device(device)
        self.action_low, self.action_high = action_low, action_high
        self.log_traj_preds, self.log_particles = log_traj_preds, log_particles
        self.model_trained = False
        """Set True by the runner after the first training; until then actions are random."""
        seeds = RunSeeds.from_seed(seed)  # the run's streams, not the raw seed (pets_core.seeding)
        self.rng = np.random.default_rng(seeds.actions)  # random actions before the first training
        self.generator = torch.Generator(device=self.device).manual_seed(seeds.planner)
        low, high = tile_bounds(action_low, action_high, plan_hor, self.device)  # (H, A)
        self.mid = (low + high) / 2
        self.init_var = (high - low).square() / 16
        self._predictions: list[np.ndarray] = []
        self._pred_means: list[np.ndarray] = []
        self._pred_vars: list[np.ndarray] = []
        self.reset(None)

    def reset(self, goal: np.ndarray | None = None) -> None:
        """Start an episode: mid-point warm start, no buffered actions, the env's current goal."""
        self.prev_sol = self.mid.clone()  # (H, A)
        self.optimizer.reset()  # iCEM: forget the last episode's elites
        self.action_buffer: list[np.ndarray] = []
        self.goal = (
            None
            if goal is None
            else torch.as_tensor(np.asarray(goal), dtype=torch.float32, device=self.device)
        )
        self.plan_seconds = 0.0
        self.num_planned_actions = 0

    @property
    def seconds_per_action(self) -> float:
        """Planning wall time per planned action since the last ``reset`` (nan before any)."""
        if self.num_planned_actions == 0:
            return float("nan")
        return self.plan_seconds / self.num_planned_actions

    def cost_fn(self, obs: Tensor):
        """The optimiser's objective at ``obs (O,)``: ``(N, H, A)`` -> costs ``(N,)``."""
        return lambda action_seqs: self.costs(obs, action_seqs)

    def costs(self, obs: Tensor, action_seqs: Tensor) -> Tensor:  # (O,), (N, H, A) -> (N,)
        """Predicted costs of candidates at ``obs``, drawing from this run's generator."""
        return predicted_costs(
            self.model, self.task, obs, action_seqs, **self._rollout_kwargs(), graph=self.graph
        )

    def cost_query(self, obs: Tensor, action_seqs: Tensor) -> CostQuery:
        """``costs``' rollout (graph off) as a query for ``predicted_costs_together``."""
        return CostQuery(self.model, self.task, obs, action_seqs, **self._rollout_kwargs())

    def _rollout_kwargs(self) -> dict:
        """How this controller propagates particles; shared by planning and prediction logging."""
        return dict(
            spec=self.propagation,
            goal=self.goal,
            generator=self.generator,
            fast=self.fast,
            precision=self.precision,
        )

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action to execute at ``obs (O,)``: the one-seed case of ``planning.cohort``."""
        return act_together([self], [obs])[0]

    # the steps of ``act``, in order; ``planning.cohort.act_together`` calls them for S seeds

    def ready_action(self) -> np.ndarray | None:
        """A random action before ``model_trained``, else the next buffered one; None: plan."""
        if not self.model_trained:
            return self.rng.uniform(self.action_low, self.action_high)
        if self.action_buffer:
            return self.action_buffer.pop(0)
        return None

    def start_plan(self, obs: np.ndarray) -> tuple[Tensor, Plan]:
        """``obs (O,)`` on the device and the optimiser's plan from ``(prev_sol, init_var)``."""
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)  # (O,)
        return obs_t, self.optimizer.plan(self.prev_sol, self.init_var, self.generator)

    def commit_plan(self, solution: Tensor) -> np.ndarray:  # (H, A) -> (per, A)
        """Shift the warm start past the ``per`` executed actions; those actions on the host."""
        zeros = torch.zeros_like(solution[: self.per])
        self.prev_sol = torch.cat([solution[self.per :], zeros])
        return solution[: self.per].cpu().numpy().astype(np.float64)  # the sync

    def finish_plan(
        self, obs: Tensor, solution: Tensor, actions: np.ndarray, seconds: float
    ) -> np.ndarray:
        """Count the plan's wall time, log its prediction, buffer all but the first action."""
        self.plan_seconds += seconds
        self.num_planned_actions += self.per
        if self.log_traj_preds or self.log_particles:
            self._log_prediction(obs, solution)
        self.action_buffer = list(actions[1:])
        return actions[0]

    def _log_prediction(self, obs: Tensor, solution: Tensor) -> None:
        """A second, independent rollout of the chosen sequence (§ctrl-logs, §quirk-11)."""
        particles, _ = predicted_particles(
            self.model, self.task, obs, solution[None], **self._rollout_kwargs()
        )
        particles = particles[0].cpu().numpy()  # (H+1, P, O)
        if self.log_particles:
            self._predictions.append(particles)
        else:
            self._pred_means.append(particles.mean(axis=1))
            self._pred_vars.append(particles.var(axis=1))  # population variance

    def pop_prediction_log(self) -> dict[str, np.ndarray]:
        """``{"predictions": (n, H+1, P, O)}`` or ``{"means", "vars": (n, H+1, O)}``; then clear."""
        H1, O, P = self.plan_hor + 1, self.task.obs_dim, self.propagation.num_particles
        if self.log_particles:
            log = {"predictions": _stack(self._predictions, (0, H1, P, O))}
        elif self.log_traj_preds:
            log = {
                "means": _stack(self._pred_means, (0, H1, O)),
                "vars": _stack(self._pred_vars, (0, H1, O)),
            }
        else:
            log = {}
        self._predictions, self._pred_means, self._pred_vars = [], [], []
        return log

    def state_dict(self) -> dict[str, Any]:
        """RNG states and the flag needed to resume between iterations."""
        return {
            "np_rng": self.rng.bit_generator.state,
            "torch_generator": self.generator.get_state(),
            "model_trained": self.model_trained,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["np_rng"]
        self.generator.set_state(state["torch_generator"])
        self.model_trained = bool(state["model_trained"])


def _stack(arrays: list[np.ndarray], empty_shape: tuple[int, ...]) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros(empty_shape)
