"""PetsMujocoEnv: what the four PETS envs share on top of gymnasium's MujocoEnv (§env-base)."""

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from pets_core.envs import RENDER_MODES
from pets_core.envs.tasks import TaskSpec, get_task

ASSETS = Path(__file__).parent / "assets"


class PetsMujocoEnv(MujocoEnv):
    """A PETS env: no termination, no time limit, reward = minus the planner's step cost.

    All noise comes from the env's seeded `self.np_random`, so `reset(seed=...)` reproduces an
    episode (the original drew most noise from the global `np.random` and was never seeded).
    """

    task_name: ClassVar[str]
    xml_file: ClassVar[str]
    frame_skip_default: ClassVar[int]
    default_camera_config: ClassVar[dict[str, Any]] = {}
    goal: np.ndarray | None = None

    def __init__(
        self,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        **kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; valid: None, {', '.join(RENDER_MODES)}"
            )
        self.task: TaskSpec = get_task(self.task_name)
        obs_space = spaces.Box(-np.inf, np.inf, shape=(self.task.obs_dim,), dtype=np.float64)
        MujocoEnv.__init__(
            self,
            str(ASSETS / self.xml_file),
            self.frame_skip_default,
            observation_space=obs_space,
            render_mode=render_mode,
            width=width,
            height=height,
            default_camera_config=self.default_camera_config,
            **kwargs,
        )

    def _reward(self, obs: np.ndarray, action: np.ndarray, goal: np.ndarray | None = None) -> float:
        """Minus the task's step cost, computed by the planner's own torch functions in float64."""
        goal = self.goal if goal is None else goal
        goal = None if goal is None else torch.from_numpy(np.asarray(goal, dtype=np.float64))
        obs_t = torch.from_numpy(np.asarray(obs, dtype=np.float64))
        action_t = torch.from_numpy(np.asarray(action, dtype=np.float64))
        return -float(self.task.obs_cost(obs_t, goal) + self.task.ac_cost(action_t))

    def _get_obs(self) -> np.ndarray:
        raise NotImplementedError

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Post-step reward (cartpole, reacher, halfcheetah); the pusher overrides this."""
        self.do_simulation(action, self.frame_skip)
        obs = self._get_obs()
        reward = self._reward(obs, action)
        if self.render_mode == "human":
            self.render()
        return obs, reward, False, False, {}
