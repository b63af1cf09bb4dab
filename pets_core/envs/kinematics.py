"""Analytic forward kinematics of the env rewards and the planner costs (§cartpole, §reacher).

Torch over any leading dims; the envs call these on float64 tensors so that the env reward and the
planner cost are the same maths, bit for bit.
"""

import torch
from torch import Tensor

POLE_LENGTH = 0.6
"""Cartpole pole length (m); also the cost length scale."""


def cartpole_pole_tip(obs: Tensor) -> tuple[Tensor, Tensor]:
    """obs (..., 4) = [x, theta, x_dot, theta_dot] -> pole tip (x, z), each (...).

    theta = 0 hangs straight down, so the tip is at (x, -0.6) at rest and (x, +0.6) upright.
    """
    x, theta = obs[..., 0], obs[..., 1]
    return x - POLE_LENGTH * torch.sin(theta), -POLE_LENGTH * torch.cos(theta)


def reacher3d_end_effector(obs: Tensor) -> Tensor:
    """obs (..., >= 6) arm joint angles first -> end effector (..., 3), the original's formula.

    Chains the upper-arm direction through (length, hinge, roll) = (0.321, q4, q3) and
    (0.16828, q6, q5); q7 (wrist roll) does not matter. Equals the palm-frame point (0.16828, 0, 0)
    whenever the elbow angle q4 < 0, and is discontinuous at q4 = 0 (the original's quirk, kept on
    purpose: the env reward is defined by this function; §reacher).
    """
    q1, q2, q3, q4, q5, q6 = (obs[..., i] for i in range(6))
    cos1, sin1, cos2, sin2 = torch.cos(q1), torch.sin(q1), torch.cos(q2), torch.sin(q2)
    axis = torch.stack([cos2 * cos1, cos2 * sin1, -sin2], dim=-1)  # (..., 3)
    perp = torch.stack([-sin1, cos1, torch.zeros_like(q1)], dim=-1)
    end = torch.stack(
        [
            0.1 * cos1 + 0.4 * cos1 * cos2,
            0.1 * sin1 + 0.4 * sin1 * cos2 - 0.188,
            -0.4 * sin2,
        ],
        dim=-1,
    )
    for length, hinge, roll in ((0.321, q4, q3), (0.16828, q6, q5)):
        hinge, roll = hinge[..., None], roll[..., None]
        normal = _cross(axis, perp)
        new_axis = (
            torch.cos(hinge) * axis
            + torch.sin(hinge) * torch.sin(roll) * perp
            - torch.sin(hinge) * torch.cos(roll) * normal
        )
        new_perp = _cross(new_axis, axis)
        # the original keeps the old perpendicular when the hinge is exactly straight: then
        # new_axis == axis bit for bit and the plain products below cancel to exactly 0
        is_degenerate = torch.linalg.vector_norm(new_perp, dim=-1, keepdim=True) < 1e-30
        new_perp = torch.where(is_degenerate, perp, new_perp)
        new_perp = new_perp / torch.linalg.vector_norm(new_perp, dim=-1, keepdim=True)
        axis, perp, end = new_axis, new_perp, end + length * new_axis
    return end


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """a x b over the last dim (3), as numpy computes it: products then differences, no FMA.

    ``torch.linalg.cross`` fuses multiply-add, so ``cross(a, a)`` is ~1e-17 instead of 0 and the
    original's degenerate-hinge fallback above (``norm < 1e-30``) would never fire.
    """
    a1, a2, a3 = a.unbind(-1)
    b1, b2, b3 = b.unbind(-1)
    return torch.stack([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1], dim=-1)
