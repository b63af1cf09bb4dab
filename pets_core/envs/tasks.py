"""Per-env functions the planner needs (§processing, §costs): obs pre/post-processing, training
targets and the per-step cost. Torch over any leading dims; O obs dim, A action dim, I model input
dim, T model target dim.

Step cost = obs_cost(s_{t+1}, goal) + ac_cost(a_t). For cartpole, reacher and halfcheetah it is
exactly minus the env reward; the pusher's env reward scores the pre-step state (§quirk-1).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from pets_core.envs.kinematics import POLE_LENGTH, cartpole_pole_tip, reacher3d_end_effector

PUSHER_GOAL = (0.45, -0.05, -0.323)
"""The pusher goal body's centre of mass (world frame), constant every episode."""


@dataclass(frozen=True)
class TaskSpec:
    """What the model and planner know about one env (names from handful-of-trials' configs)."""

    name: str
    obs_dim: int
    """O: observation size."""
    act_dim: int
    """A: action size."""
    in_dim: int
    """I: model input size = preprocessed-obs size + A."""
    out_dim: int
    """T: model target size."""
    obs_preproc: Callable[[Tensor], Tensor]
    """obs (..., O) -> model obs features (..., I - A)."""
    obs_postproc: Callable[[Tensor, Tensor], Tensor]
    """obs (..., O), model prediction (..., T) -> next obs (..., O)."""
    targ_proc: Callable[[Tensor, Tensor], Tensor]
    """obs (..., O), next obs (..., O) -> training target (..., T)."""
    obs_cost: Callable[[Tensor, Tensor | None], Tensor]
    """next obs (..., O), goal (3,) or None -> cost (...)."""
    ac_cost: Callable[[Tensor], Tensor]
    """action (..., A) -> cost (...)."""


def _identity(obs: Tensor) -> Tensor:
    return obs


def _delta(obs: Tensor, next_obs: Tensor) -> Tensor:
    return next_obs - obs


def _add_delta(obs: Tensor, pred: Tensor) -> Tensor:
    return obs + pred


def _require_goal(goal: Tensor | None, like: Tensor) -> Tensor:
    if goal is None:
        raise ValueError("this task's cost needs the env's goal (env.unwrapped.goal), got None")
    return goal.to(dtype=like.dtype, device=like.device)


# cartpole -----------------------------------------------------------------------------------


def _cartpole_preproc(obs: Tensor) -> Tensor:
    theta = obs[..., 1:2]
    return torch.cat([torch.sin(theta), torch.cos(theta), obs[..., :1], obs[..., 2:]], dim=-1)


def _cartpole_obs_cost(next_obs: Tensor, goal: Tensor | None = None) -> Tensor:
    tip_x, tip_z = cartpole_pole_tip(next_obs)
    sq_dist = tip_x.square() + (tip_z - POLE_LENGTH).square()  # to the upright tip (0, 0.6)
    return -torch.exp(-sq_dist / POLE_LENGTH**2)


def _cartpole_ac_cost(action: Tensor) -> Tensor:
    return 0.01 * action.square().sum(-1)


# reacher ------------------------------------------------------------------------------------


def _reacher_obs_cost(next_obs: Tensor, goal: Tensor | None) -> Tensor:
    # the env's goal, not the goal dims of the (predicted) obs (§quirk-14)
    goal = _require_goal(goal, next_obs)
    return (reacher3d_end_effector(next_obs) - goal).square().sum(-1)


def _reacher_ac_cost(action: Tensor) -> Tensor:
    return 0.01 * action.square().sum(-1)


# pusher -------------------------------------------------------------------------------------


def _pusher_obs_cost(next_obs: Tensor, goal: Tensor | None) -> Tensor:
    goal = _require_goal(goal, next_obs)
    tip, obj = next_obs[..., 14:17], next_obs[..., 17:20]
    return 0.5 * (tip - obj).abs().sum(-1) + 1.25 * (goal - obj).abs().sum(-1)


def _pusher_ac_cost(action: Tensor) -> Tensor:
    return 0.1 * action.square().sum(-1)


# halfcheetah --------------------------------------------------------------------------------


def _halfcheetah_preproc(obs: Tensor) -> Tensor:
    # drops obs[0] (the forward velocity): the model never sees the current velocity
    pitch = obs[..., 2:3]
    return torch.cat([obs[..., 1:2], torch.sin(pitch), torch.cos(pitch), obs[..., 3:]], dim=-1)


def _halfcheetah_targ(obs: Tensor, next_obs: Tensor) -> Tensor:
    # velocity predicted absolutely, everything else as a delta
    return torch.cat([next_obs[..., :1], next_obs[..., 1:] - obs[..., 1:]], dim=-1)


def _halfcheetah_postproc(obs: Tensor, pred: Tensor) -> Tensor:
    return torch.cat([pred[..., :1], obs[..., 1:] + pred[..., 1:]], dim=-1)


def _halfcheetah_obs_cost(next_obs: Tensor, goal: Tensor | None = None) -> Tensor:
    return -next_obs[..., 0]


def _halfcheetah_ac_cost(action: Tensor) -> Tensor:
    return 0.1 * action.square().sum(-1)


_TASKS = {
    "cartpole": TaskSpec(
        name="cartpole",
        obs_dim=4,
        act_dim=1,
        in_dim=6,
        out_dim=4,
        obs_preproc=_cartpole_preproc,
        obs_postproc=_add_delta,
        targ_proc=_delta,
        obs_cost=_cartpole_obs_cost,
        ac_cost=_cartpole_ac_cost,
    ),
    "reacher": TaskSpec(
        name="reacher",
        obs_dim=17,
        act_dim=7,
        in_dim=24,
        out_dim=17,
        obs_preproc=_identity,
        obs_postproc=_add_delta,
        targ_proc=_delta,
        obs_cost=_reacher_obs_cost,
        ac_cost=_reacher_ac_cost,
    ),
    "pusher": TaskSpec(
        name="pusher",
        obs_dim=20,
        act_dim=7,
        in_dim=27,
        out_dim=20,
        obs_preproc=_identity,
        obs_postproc=_add_delta,
        targ_proc=_delta,
        obs_cost=_pusher_obs_cost,
        ac_cost=_pusher_ac_cost,
    ),
    "halfcheetah": TaskSpec(
        name="halfcheetah",
        obs_dim=18,
        act_dim=6,
        in_dim=24,
        out_dim=18,
        obs_preproc=_halfcheetah_preproc,
        obs_postproc=_halfcheetah_postproc,
        targ_proc=_halfcheetah_targ,
        obs_cost=_halfcheetah_obs_cost,
        ac_cost=_halfcheetah_ac_cost,
    ),
}


def get_task(name: str) -> TaskSpec:
    """The TaskSpec of an env, by short name (cartpole, reacher, pusher, halfcheetah) or gym id."""
    from pets_core.envs import canonical_name  # the registry owns the name table

    return _TASKS[canonical_name(name)]
