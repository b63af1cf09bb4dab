"""Reacher3D (§reacher): a 7-DoF arm reaches a random 3-D goal.

obs (17) = [arm angles (7), goal (3) = qpos[7:10], arm velocities (7)]; action (7) in [-20, 20].
"""

from typing import Any, ClassVar

import numpy as np

from pets_core.envs.base import RENDER_MODES, PetsMujocoEnv


class Reacher3DEnv(PetsMujocoEnv):
    """Reward -|EE(obs) - goal|^2 - 0.01 |a|^2 with the original's analytic end effector."""

    # render_fps = 1 / dt, dt = 2 x 0.01 s
    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 50}
    task_name = "reacher"
    xml_file = "reacher3d.xml"
    frame_skip_default = 2
    default_camera_config: ClassVar[dict[str, Any]] = {
        "distance": 2.5,
        "elevation": -30.0,
        "azimuth": 135.0,
        "lookat": [0.3, 0.0, 0.0],
    }

    def _get_obs(self) -> np.ndarray:
        # the target's velocities (qvel[7:10]) are dropped; they are always 0
        return np.concatenate([self.data.qpos, self.data.qvel[:7]]).copy()

    def reset_model(self) -> np.ndarray:
        # the arm starts at exactly zero angles; only the goal is random (§quirk-3)
        qpos = self.init_qpos.copy()
        qpos[7:10] += self.np_random.normal(0.0, 0.1, size=3)
        self.goal = qpos[7:10].copy()
        self.set_state(qpos, self.init_qvel.copy())
        return self._get_obs()
