"""Cartpole swing-up (§cartpole): obs [x, theta, x_dot, theta_dot], action (1,) in [-3, 3]."""

from typing import Any, ClassVar

import numpy as np

from pets_core.envs.base import RENDER_MODES, PetsMujocoEnv


class CartpoleEnv(PetsMujocoEnv):
    """Swing the pole up from hanging down; reward exp(-|tip - (0, 0.6)|^2 / 0.36) - 0.01 a^2."""

    # render_fps = 1 / dt, dt = 2 x 0.02 s
    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 25}
    task_name = "cartpole"
    xml_file = "cartpole.xml"
    frame_skip_default = 2
    default_camera_config: ClassVar[dict[str, Any]] = {
        "distance": 4.0,
        "elevation": 0.0,
        "azimuth": 90.0,
        "lookat": [0, 0, 0],
    }

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).copy()

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos + self.np_random.normal(0.0, 0.1, size=self.model.nq)
        qvel = self.init_qvel + self.np_random.normal(0.0, 0.1, size=self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()
