"""An independent oracle: the original's env rewards and planner costs, in numpy.

Written from the original's rewards (§envs) and its config modules' obs_cost /
ac_cost (§costs), every number typed in here and nothing imported from pets_core, so
that a changed constant or formula in pets_core/envs shows as a mismatch. pets_core computes
its env reward with the task's own cost functions (pets_core/envs/base.py), so comparing the two
with each other would prove nothing.

One step, float64, no batching: obs (O,), action (A,), goal (3,) -> a Python float.
"""

import numpy as np

# §cartpole / §costs ------------------------------------------------------------------------
CARTPOLE_POLE = 0.6
"""ee(s) = (x - 0.6 sin theta, -0.6 cos theta); target (0, 0.6); length scale 0.6^2 = 0.36."""
CARTPOLE_TARGET = (0.0, 0.6)
CARTPOLE_WIDTH_SQ = 0.36
CARTPOLE_AC = 0.01

# §reacher / §costs ------------------------------------------------------------------------
REACHER_AC = 0.01
REACHER_SHOULDER = (0.1, 0.4, 0.188)
"""c = (0.1 cos t1 + 0.4 cos t1 cos t2, 0.1 sin t1 + 0.4 sin t1 cos t2 - 0.188, -0.4 sin t2)."""
REACHER_LINKS = (0.321, 0.16828)
"""(forearm, wrist-to-palm-point) lengths of the two chained hinges."""

# §pusher / §costs ------------------------------------------------------------------------
PUSHER_GOAL_W = 1.25
PUSHER_TIP_W = 0.5
PUSHER_AC = 0.1
PUSHER_GOAL = (0.45, -0.05, -0.323)
"""env.ac_goal_pos: the goal body's (subtree) COM, constant every episode."""
PUSHER_TIP, PUSHER_OBJ = slice(14, 17), slice(17, 20)
"""obs = [q_arm (7), qdot_arm (7), tips_arm COM (3), object COM (3)]."""

# §halfcheetah / §costs ------------------------------------------------------------------------
HALFCHEETAH_AC = 0.1
HALFCHEETAH_DT = 0.05
"""Env step: 5 frames x 0.01 s; obs[0] = (x_{t+1} - x_t) / dt."""


def cartpole_ee(obs: np.ndarray) -> np.ndarray:
    """Pole tip (x, z) of obs = [x, theta, x_dot, theta_dot]; theta = 0 hangs down."""
    x, theta = obs[0], obs[1]
    return np.array([x - CARTPOLE_POLE * np.sin(theta), -CARTPOLE_POLE * np.cos(theta)])


def reacher_ee(obs: np.ndarray) -> np.ndarray:
    """The original's analytic end effector (§reacher) from the first 6 joint angles."""
    t1, t2, t3, t4, t5, t6 = (float(v) for v in obs[:6])
    shoulder, upper, y_off = REACHER_SHOULDER
    axis = np.array([np.cos(t2) * np.cos(t1), np.cos(t2) * np.sin(t1), -np.sin(t2)])
    perp = np.array([-np.sin(t1), np.cos(t1), 0.0])
    end = np.array(
        [
            shoulder * np.cos(t1) + upper * np.cos(t1) * np.cos(t2),
            shoulder * np.sin(t1) + upper * np.sin(t1) * np.cos(t2) - y_off,
            -upper * np.sin(t2),
        ]
    )
    for length, hinge, roll in ((REACHER_LINKS[0], t4, t3), (REACHER_LINKS[1], t6, t5)):
        normal = np.cross(axis, perp)
        new_axis = (
            np.cos(hinge) * axis
            + np.sin(hinge) * np.sin(roll) * perp
            - np.sin(hinge) * np.cos(roll) * normal
        )
        new_perp = np.cross(new_axis, axis)
        norm = np.linalg.norm(new_perp)
        new_perp = perp if norm < 1e-30 else new_perp / norm  # straight hinge: keep the old one
        end = end + length * new_axis
        axis, perp = new_axis, new_perp
    return end


# env rewards (§envs) -------------------------------------------------------------------


def cartpole_reward(next_obs: np.ndarray, action: np.ndarray) -> float:
    """Post-step: exp(-|ee - (0, 0.6)|^2 / 0.6^2) - 0.01 |a|^2."""
    sq = np.sum((cartpole_ee(next_obs) - np.array(CARTPOLE_TARGET)) ** 2)
    return float(np.exp(-sq / CARTPOLE_POLE**2) - CARTPOLE_AC * np.sum(action**2))


def reacher_reward(next_obs: np.ndarray, action: np.ndarray, goal: np.ndarray) -> float:
    """Post-step: -|EE(obs) - goal|^2 - 0.01 |a|^2."""
    return float(-np.sum((reacher_ee(next_obs) - goal) ** 2) - REACHER_AC * np.sum(action**2))


def pusher_reward(tip: np.ndarray, obj: np.ndarray, goal: np.ndarray, action: np.ndarray) -> float:
    """PRE-step subtree COMs: -1.25 |obj - goal|_1 - 0.5 |obj - tip|_1 - 0.1 |a|^2."""
    return float(
        -PUSHER_GOAL_W * np.sum(np.abs(obj - goal))
        - PUSHER_TIP_W * np.sum(np.abs(obj - tip))
        - PUSHER_AC * np.sum(action**2)
    )


def halfcheetah_reward(x_before: float, x_after: float, action: np.ndarray) -> float:
    """(x_{t+1} - x_t) / 0.05 - 0.1 |a|^2, from the root's x before and after the env step."""
    return float((x_after - x_before) / HALFCHEETAH_DT - HALFCHEETAH_AC * np.sum(action**2))


# planner costs (§costs): name -> (obs_cost(next_obs, goal), ac_cost(action)) -----------


def _cartpole_obs_cost(s: np.ndarray, goal=None) -> float:
    sq = np.sum((cartpole_ee(s) - np.array(CARTPOLE_TARGET)) ** 2)
    return float(-np.exp(-sq / CARTPOLE_WIDTH_SQ))


def _reacher_obs_cost(s: np.ndarray, goal: np.ndarray) -> float:
    return float(np.sum((reacher_ee(s) - goal) ** 2))


def _pusher_obs_cost(s: np.ndarray, goal: np.ndarray) -> float:
    tip, obj = s[PUSHER_TIP], s[PUSHER_OBJ]
    return float(
        PUSHER_TIP_W * np.sum(np.abs(tip - obj)) + PUSHER_GOAL_W * np.sum(np.abs(goal - obj))
    )


def _halfcheetah_obs_cost(s: np.ndarray, goal=None) -> float:
    return float(-s[0])


def _ac_cost(weight: float):
    return lambda a: float(weight * np.sum(a**2))


SPEC_COSTS = {
    "cartpole": (_cartpole_obs_cost, _ac_cost(CARTPOLE_AC)),
    "reacher": (_reacher_obs_cost, _ac_cost(REACHER_AC)),
    "pusher": (_pusher_obs_cost, _ac_cost(PUSHER_AC)),
    "halfcheetah": (_halfcheetah_obs_cost, _ac_cost(HALFCHEETAH_AC)),
}
