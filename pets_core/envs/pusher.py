"""Pusher (§pusher): a 7-DoF arm pushes a cylinder to a fixed goal.

obs (20) = [arm angles (7), arm velocities (7), tips_arm COM (3), object COM (3)], where COM is the
subtree centre of mass (`data.subtree_com`, what gym 0.9.4's `get_body_com` returned), not the body
frame origin; action (7) in [-2, 2]. The reward scores the PRE-step state.
"""

import re
from pathlib import Path
from typing import Any, ClassVar

import mujoco
import numpy as np

from pets_core.envs.base import RENDER_MODES, PetsMujocoEnv

ORIGINAL_OBJECT_DENSITY = 1e-5
"""The original XML's object cylinder density (kg/m^3): 1.3e-8 kg, not pushed under mujoco >= 3."""

OBJECT_DENSITY = 1.0
"""Our object cylinder density (kg/m^3), the one physical deviation from the original XML.

Under mujoco >= 3 the gripper passes through a near-massless object (§pusher-object, Gymnasium
issue #950, MuJoCo issue #1495). Measured with mujoco 4.0.0: object travel (m) when the scripted
push of tests/envs/test_envs.py (seed 0) sweeps the wrist 0.4 m through it at a commanded speed:

    density (kg/m^3)  1e-5    1e-3    0.01    0.03    0.1     0.3     1       10      100
    0.17 m/s          0.0000  0.0005  0.0086  0.2185  0.2404  0.2431  0.2428  0.2438  0.2570
    1 m/s             0.0000  0.0004  0.0046  0.0129  0.0663  0.2921  0.2911  0.2927  0.3237
    2 m/s             0.0000  0.0005  0.0052  0.0159  0.0599  0.2848  0.2860  0.2869  0.2995

Density 1 (0.785 g) is on the plateau at every speed (same travel as 10), a factor 10 above where
fast pushes fail (0.1), and only 2 % of the slide joints' armature 0.04 kg, which dominates the
object's inertia as in the original. Gymnasium Pusher-v5's 0.01 barely moves it.
"""


def _with_object_density(xml_path: str, density: float) -> str:
    """The pusher XML's text with the object cylinder's density replaced."""
    xml = Path(xml_path).read_text()
    xml, count = re.subn(r'(<geom name="object"[^>]*?density=")[^"]*"', rf'\g<1>{density!r}"', xml)
    if count != 1:
        raise ValueError(f"{xml_path}: expected one object geom with a density, found {count}")
    return xml


class PusherEnv(PetsMujocoEnv):
    """Reward -1.25 |obj - goal|_1 - 0.5 |obj - tip|_1 - 0.1 |a|^2 on the pre-step state."""

    # render_fps = 1 / dt, dt = 4 x 0.01 s
    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 25}
    task_name = "pusher"
    xml_file = "pusher.xml"
    frame_skip_default = 4
    default_camera_config: ClassVar[dict[str, Any]] = {
        "distance": 2.2,
        "elevation": -45.0,
        "azimuth": 150.0,
        "lookat": [0.4, -0.3, -0.3],
    }

    def __init__(self, object_density: float = OBJECT_DENSITY, **kwargs) -> None:
        """object_density: of the object cylinder; ORIGINAL_OBJECT_DENSITY rebuilds the original."""
        self.object_density = float(object_density)
        super().__init__(**kwargs)
        self._body_ids = {
            name: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
            for name in ("tips_arm", "object", "goal")
        }
        # the goal is known before the first reset, as the original's ac_goal_pos was
        mujoco.mj_forward(self.model, self.data)
        self.goal = self.subtree_com("goal")

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        if hasattr(mujoco, "MjSpec"):
            spec = mujoco.MjSpec.from_file(self.fullpath)
            spec.geom("object").density = self.object_density
            model = spec.compile()
        else:  # mujoco < 3.2: only to compare physics across versions (bench replay)
            model = mujoco.MjModel.from_xml_string(
                _with_object_density(self.fullpath, self.object_density)
            )
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def subtree_com(self, body: str) -> np.ndarray:
        """Subtree centre of mass of a body (3,): gym 0.9.4's `get_body_com` (§env-base)."""
        return self.data.subtree_com[self._body_ids[body]].copy()

    def _get_obs(self) -> np.ndarray:
        return np.concatenate(
            [
                self.data.qpos[:7],
                self.data.qvel[:7],
                self.subtree_com("tips_arm"),
                self.subtree_com("object"),
            ]
        )

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        # the original scores the state in which the action is applied (§quirk-1)
        pre_obs = self._get_obs()
        goal_now = self.subtree_com("goal")  # == self.goal: the goal body never moves
        reward = self._reward(pre_obs, action, goal_now)
        self.do_simulation(action, self.frame_skip)
        obs = self._get_obs()
        if self.render_mode == "human":
            self.render()
        return obs, reward, False, False, {}

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos.copy()
        # object slide offsets (slidey, slidex): object world position ~ (0.60, -0.30, -0.275)
        qpos[7:9] = np.array([-0.25, 0.15]) + self.np_random.normal(0.0, 0.025, size=2)
        qpos[9:11] = 0.0
        qvel = self.init_qvel + self.np_random.uniform(-0.005, 0.005, size=self.model.nv)
        qvel[7:] = 0.0
        self.set_state(qpos, qvel)
        self.goal = self.subtree_com("goal")
        return self._get_obs()
