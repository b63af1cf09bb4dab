"""The planner's torch task functions (spec sec. 2.2-2.3) against the gymnasium envs."""

import math

import mujoco
import numpy as np
import pytest
import torch

from pets_core.envs import ENV_IDS, ENV_NAMES, get_task, make_env
from pets_core.envs.tasks import PUSHER_GOAL

# name: (model input dim I, target dim T), spec sec. 2.1
MODEL_DIMS = {"cartpole": (6, 4), "reacher": (24, 17), "pusher": (27, 20), "halfcheetah": (24, 18)}


def _random_transitions(name: str, seed: int, num_steps: int = 100):
    """float64 tensors obs (S+1, O), action (S, A), reward (S,) and the env's goal from one
    random-action episode."""
    env = make_env(name).unwrapped
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, actions, rewards = [obs], [], []
    for _ in range(num_steps):
        action = env.action_space.sample()
        obs, reward, *_ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    goal = None if env.goal is None else torch.from_numpy(env.goal)
    as_tensor = lambda x: torch.from_numpy(np.array(x, dtype=np.float64))  # noqa: E731
    return as_tensor(observations), as_tensor(actions), as_tensor(rewards), goal


@pytest.mark.parametrize("name", ENV_NAMES)
def test_task_dims_match_spec(name):
    task = get_task(name)
    env = make_env(name)
    assert task.name == name
    assert task.obs_dim == env.observation_space.shape[0]
    assert task.act_dim == env.action_space.shape[0]
    assert (task.in_dim, task.out_dim) == MODEL_DIMS[name]
    obs = torch.zeros(task.obs_dim)
    assert task.obs_preproc(obs).shape == (task.in_dim - task.act_dim,)
    assert task.targ_proc(obs, obs).shape == (task.out_dim,)


def test_get_task_accepts_ids_and_rejects_unknown_names():
    assert get_task(ENV_IDS["pusher"]).name == "pusher"
    with pytest.raises(ValueError, match="valid: cartpole"):
        get_task("walker")


@pytest.mark.parametrize("name", ["cartpole", "reacher", "halfcheetah"])
@pytest.mark.parametrize("seed", [0, 1])
def test_planner_cost_is_exactly_minus_env_reward(name, seed):
    task = get_task(name)
    obs, action, reward, goal = _random_transitions(name, seed)
    cost = task.obs_cost(obs[1:], goal) + task.ac_cost(action)  # cost of s_{t+1}, a_t
    torch.testing.assert_close(cost, -reward, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_pusher_cost_of_pre_step_obs_is_exactly_minus_env_reward(seed):
    # the env scores the state the action is applied in (spec sec. 7.1.1)
    task = get_task("pusher")
    obs, action, reward, goal = _random_transitions("pusher", seed)
    torch.testing.assert_close(goal, torch.tensor(PUSHER_GOAL, dtype=torch.float64))
    cost = task.obs_cost(obs[:-1], goal) + task.ac_cost(action)
    torch.testing.assert_close(cost, -reward, rtol=0, atol=0)


def test_pusher_post_step_cost_is_not_the_env_reward():
    # documents why the pre-step convention shows in the cost: obs_cost(s_{t+1}) != -r_t
    task = get_task("pusher")
    obs, action, reward, goal = _random_transitions("pusher", 0, num_steps=20)
    post = task.obs_cost(obs[1:], goal) + task.ac_cost(action)
    assert not torch.equal(post, -reward)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_obs_postproc_inverts_targ_proc_on_real_transitions(name):
    task = get_task(name)
    obs, *_ = _random_transitions(name, seed=0, num_steps=50)
    target = task.targ_proc(obs[:-1], obs[1:])
    # (s' - s) + s rounds once per element in float64
    torch.testing.assert_close(task.obs_postproc(obs[:-1], target), obs[1:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_functions_accept_any_leading_dims(name):
    task = get_task(name)
    generator = torch.Generator().manual_seed(0)
    obs = torch.randn(2, 3, 5, task.obs_dim, generator=generator)  # (E, N, P/E, O)
    next_obs = torch.randn(2, 3, 5, task.obs_dim, generator=generator)
    action = torch.randn(2, 3, 5, task.act_dim, generator=generator)
    goal = torch.randn(3, generator=generator)
    features = task.obs_preproc(obs)
    assert features.shape == (2, 3, 5, task.in_dim - task.act_dim)
    target = task.targ_proc(obs, next_obs)
    assert target.shape == (2, 3, 5, task.out_dim)
    assert task.obs_postproc(obs, target).shape == obs.shape
    cost = task.obs_cost(next_obs, goal) + task.ac_cost(action)
    assert cost.shape == (2, 3, 5) and cost.dtype == torch.float32
    flat = task.obs_cost(next_obs.reshape(-1, task.obs_dim), goal)
    torch.testing.assert_close(flat.reshape(2, 3, 5), task.obs_cost(next_obs, goal))
    torch.testing.assert_close(features[1, 2, 4], task.obs_preproc(obs[1, 2, 4]))


def test_cartpole_preproc_order_is_sin_cos_x_xdot_thetadot():
    obs = torch.tensor([0.5, 1.0, -2.0, 3.0], dtype=torch.float64)
    expected = torch.tensor([math.sin(1.0), math.cos(1.0), 0.5, -2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(get_task("cartpole").obs_preproc(obs), expected)


def test_cartpole_cost_is_minus_one_when_upright_over_origin():
    task = get_task("cartpole")
    upright = torch.tensor([[0.0, math.pi, 0.0, 0.0], [0.0, -math.pi, 0.0, 0.0]])
    torch.testing.assert_close(task.obs_cost(upright, None), torch.full((2,), -1.0))
    rest = torch.zeros(4, dtype=torch.float64)
    assert task.obs_cost(rest, None).item() == pytest.approx(-math.exp(-4), rel=1e-12)


def test_halfcheetah_preproc_drops_velocity_and_encodes_pitch():
    obs = torch.arange(18, dtype=torch.float64)
    features = get_task("halfcheetah").obs_preproc(obs)
    expected = torch.cat(
        [torch.tensor([1.0, math.sin(2.0), math.cos(2.0)], dtype=torch.float64), obs[3:]]
    )
    torch.testing.assert_close(features, expected)


def test_halfcheetah_velocity_target_is_absolute_the_rest_deltas():
    task = get_task("halfcheetah")
    obs, next_obs = torch.zeros(18) + 1.0, torch.arange(18.0)
    target = task.targ_proc(obs, next_obs)
    assert target[0] == next_obs[0]
    torch.testing.assert_close(target[1:], next_obs[1:] - 1.0)
    assert task.obs_cost(next_obs, None) == -next_obs[0]


def test_reacher_cost_uses_the_goal_argument_not_the_obs_goal_dims():
    task = get_task("reacher")
    obs = torch.zeros(17, dtype=torch.float64)
    obs[7:10] = torch.tensor([5.0, 5.0, 5.0])  # ignored
    goal = torch.tensor([0.98928, -0.188, 0.0], dtype=torch.float64)  # the EE at zero angles
    assert task.obs_cost(obs, goal).item() == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize("name", ["reacher", "pusher"])
def test_goal_tasks_reject_a_missing_goal(name):
    task = get_task(name)
    with pytest.raises(ValueError, match="goal"):
        task.obs_cost(torch.zeros(task.obs_dim), None)


def test_pusher_cost_weights():
    task = get_task("pusher")
    obs = torch.zeros(20, dtype=torch.float64)
    obs[14:17] = torch.tensor([1.0, 0.0, 0.0])  # tip
    goal = torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64)  # object at the origin
    assert task.obs_cost(obs, goal).item() == pytest.approx(0.5 * 1.0 + 1.25 * 2.0)
    assert task.ac_cost(torch.ones(7)).item() == pytest.approx(0.7)


def _spec_reward(name: str, obs: np.ndarray, action: np.ndarray, goal) -> float:
    """The env rewards of spec sec. 1, written independently in numpy (reacher: elbow < 0 only,
    where the analytic end effector is the palm point (0.16828, 0, 0))."""
    if name == "cartpole":
        tip = np.array([obs[0] - 0.6 * np.sin(obs[1]), -0.6 * np.cos(obs[1])])
        return np.exp(-np.sum((tip - [0.0, 0.6]) ** 2) / 0.6**2) - 0.01 * np.sum(action**2)
    if name == "halfcheetah":
        return obs[0] - 0.1 * np.sum(action**2)
    raise ValueError(name)


@pytest.mark.parametrize("name", ["cartpole", "halfcheetah"])
def test_env_reward_follows_the_spec_formula(name):
    obs, action, reward, goal = _random_transitions(name, seed=3, num_steps=50)
    pairs = zip(obs[1:].numpy(), action.numpy(), strict=True)
    expected = [_spec_reward(name, o, a, goal) for o, a in pairs]
    np.testing.assert_allclose(reward.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_reacher_env_reward_follows_the_spec_formula_with_the_palm_point():
    env = make_env("reacher").unwrapped
    data = mujoco.MjData(env.model)
    obs, action, reward, goal = _random_transitions("reacher", seed=3, num_steps=50)
    checked = 0
    for o, a, r in zip(obs[1:].numpy(), action.numpy(), reward.numpy(), strict=True):
        if o[3] >= -1e-6:  # the analytic formula's quirk region (test_envs covers it)
            continue
        data.qpos[:7] = o[:7]
        mujoco.mj_kinematics(env.model, data)
        palm = data.body("r_gripper_palm_link")
        end = palm.xpos + palm.xmat.reshape(3, 3) @ [0.16828, 0.0, 0.0]
        expected = -np.sum((end - goal.numpy()) ** 2) - 0.01 * np.sum(a**2)
        assert r == pytest.approx(expected, rel=1e-10)
        checked += 1
    assert checked > 10
