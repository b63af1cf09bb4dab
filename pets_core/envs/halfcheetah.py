"""HalfCheetah (§halfcheetah): obs (18) = [forward velocity, qpos[1:9], qvel[0:9]], action (6)."""

from typing import Any, ClassVar

import numpy as np

from pets_core.envs.base import RENDER_MODES, PetsMujocoEnv


class HalfCheetahEnv(PetsMujocoEnv):
    """Run forward; reward obs[0] - 0.1 |a|^2.

    obs[0] is the finite-difference velocity of rootx over the whole env step,
    (x_{t+1} - x_t) / dt, not qvel[0]; it is 0 right after reset.
    """

    # render_fps = 1 / dt, dt = 5 x 0.01 s
    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 20}
    task_name = "halfcheetah"
    xml_file = "half_cheetah.xml"
    frame_skip_default = 5
    default_camera_config: ClassVar[dict[str, Any]] = {
        "trackbodyid": 1,
        "distance": 4.0,
        "elevation": -20.0,
        "lookat": [0.0, 0.0, 0.4],
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.prev_qpos = self.data.qpos.copy()

    def _get_obs(self) -> np.ndarray:
        velocity = (self.data.qpos[:1] - self.prev_qpos[:1]) / self.dt
        return np.concatenate([velocity, self.data.qpos[1:], self.data.qvel])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.prev_qpos = self.data.qpos.copy()
        return super().step(action)

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos + self.np_random.normal(0.0, 0.001, size=self.model.nq)
        qvel = self.init_qvel + self.np_random.normal(0.0, 0.001, size=self.model.nv)
        self.set_state(qpos, qvel)
        self.prev_qpos = self.data.qpos.copy()
        return self._get_obs()
