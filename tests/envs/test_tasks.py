"""The planner's torch task functions (§processing, §costs) against the gymnasium envs."""

import math

import numpy as np
import pytest
import torch
from support import spec_rewards as spec

from pets_core.envs import ENV_IDS, ENV_NAMES, get_task, make_env

# name: (model input dim I, target dim T), §settings-table
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


ORACLE_TOL = {"rtol": 1e-13, "atol": 1e-13}
"""torch (pets_core) vs numpy (oracle) float64 may differ in the last bits (sin/cos/exp, summation
order): measured at most 3.6e-15 absolute, 5e-16 relative; a constant changed in its third digit
moves a reward by > 1e-4."""


def _random_state(name: str, env, rng: np.random.Generator, bend_back: bool):
    """qpos, qvel anywhere in the joint ranges, at speeds a random policy reaches; the env's own
    goal (reacher target, pusher goal slides) left where reset put it. bend_back: the elbow at its
    limit 0 moving past it (the reacher EE's mirrored region, §reacher)."""
    qpos, qvel = env.data.qpos.copy(), rng.normal(0.0, 1.0, env.model.nv)
    low, high = env.model.jnt_range[:, 0], env.model.jnt_range[:, 1]
    limited = env.model.jnt_limited.astype(bool)
    if name == "cartpole":
        qpos[:] = rng.uniform(-2.0, 2.0), rng.uniform(-2 * np.pi, 2 * np.pi)
    elif name in ("reacher", "pusher"):
        arm = rng.uniform(np.where(limited, low, -np.pi)[:7], np.where(limited, high, np.pi)[:7])
        arm[3] = rng.uniform(-2.3213, 0.03)  # the elbow, across the reacher EE's quirk at 0
        qpos[:7] = arm
        if bend_back:
            qpos[3], qvel[3] = 0.0, 5.0
        if name == "pusher":
            # the object's slides (y, x), around where reset puts it
            qpos[7:9] = np.array([-0.25, 0.15]) + rng.normal(0.0, 0.1, 2)
            qvel[7:] = 0.0
        else:
            qvel[7:] = 0.0  # the target never moves
    else:  # halfcheetah: root x, z, pitch, then six limited joints
        qpos[:3] = rng.uniform(-1.0, 1.0), rng.normal(0.0, 0.1), rng.uniform(-np.pi, np.pi)
        qpos[3:] = rng.uniform(low[3:], high[3:])
    return qpos, qvel


def _oracle_transitions(name: str, seed: int, starts: int = 4, steps: int = 5):
    """Real MuJoCo transitions from random states and actions, with what the oracle needs read
    from MuJoCo's data (not from the env's obs): (obs, action, next_obs, reward, oracle reward,
    goal) per step."""
    env = make_env(name).unwrapped
    rng = np.random.default_rng(seed)
    rows = []
    for start in range(starts):
        env.reset(seed=1000 * seed + start)
        bend_back = start == 0 and name == "reacher"
        env.set_state(*_random_state(name, env, rng, bend_back))
        obs = env._get_obs()
        for _ in range(steps):
            low, high = env.action_space.low, env.action_space.high
            action = rng.uniform(low, high).astype(np.float64)
            if bend_back:
                action[3] = high[3]  # keeps the elbow above 0 for all the steps
            data = env.data
            if name == "pusher":  # scored on the pre-step subtree COMs (§pusher)
                com = {b: data.subtree_com[data.body(b).id].copy() for b in ("tips_arm", "object")}
                goal = data.subtree_com[data.body("goal").id].copy()
                np.testing.assert_allclose(goal, spec.PUSHER_GOAL, rtol=0, atol=1e-12)
            x_before = data.qpos[0]
            next_obs, reward, *_ = env.step(action)
            if name == "cartpole":
                expected = spec.cartpole_reward(np.concatenate([data.qpos, data.qvel]), action)
                goal = None
            elif name == "reacher":
                goal = data.qpos[7:10].copy()  # the target's world position (§reacher)
                expected = spec.reacher_reward(data.qpos[:7], action, goal)
            elif name == "pusher":
                expected = spec.pusher_reward(com["tips_arm"], com["object"], goal, action)
            else:
                expected = spec.halfcheetah_reward(x_before, data.qpos[0], action)
                goal = None
            rows.append((obs, action, next_obs, reward, expected, goal))
            obs = next_obs
    return rows


@pytest.mark.parametrize("name", ENV_NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_env_reward_equals_the_spec_oracle_on_random_states(name, seed):
    rows = _oracle_transitions(name, seed)
    if name == "reacher":  # the EE formula's both sides of elbow 0 are covered
        elbows = np.array([r[2][3] for r in rows])
        assert (elbows > 0).sum() >= 5 and (elbows < 0).sum() >= 10
    rewards = np.array([r[3] for r in rows])
    expected = np.array([r[4] for r in rows])
    np.testing.assert_allclose(rewards, expected, **ORACLE_TOL)


@pytest.mark.parametrize("name", ENV_NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_task_costs_equal_the_spec_oracle_on_random_states(name, seed):
    # the planner scores next states (all four envs, §costs), batched as in the planner
    task = get_task(name)
    spec_obs_cost, spec_ac_cost = spec.SPEC_COSTS[name]
    rows = _oracle_transitions(name, seed)
    next_obs = torch.from_numpy(np.stack([r[2] for r in rows]))
    action = torch.from_numpy(np.stack([r[1] for r in rows]))
    if name == "reacher":  # one goal per episode: scored row by row
        got = torch.stack(
            [task.obs_cost(s, torch.from_numpy(r[5])) for s, r in zip(next_obs, rows, strict=True)]
        )
    else:  # one goal (pusher) or none: the whole batch at once
        goal = rows[0][5]
        if goal is not None:
            assert all(np.array_equal(r[5], goal) for r in rows)
            goal = torch.from_numpy(goal)
        got = task.obs_cost(next_obs, goal)
    expected = [spec_obs_cost(r[2], r[5]) for r in rows]
    np.testing.assert_allclose(got.numpy(), expected, **ORACLE_TOL)
    expected_ac = [spec_ac_cost(r[1]) for r in rows]
    np.testing.assert_allclose(task.ac_cost(action).numpy(), expected_ac, **ORACLE_TOL)


@pytest.mark.parametrize("name", ["cartpole", "reacher", "halfcheetah"])
def test_task_cost_of_the_next_state_is_minus_the_spec_reward(name):
    # §costs: "exactly the negative env reward" for these three, checked on the oracle's
    # reward (not on the env's, which pets_core computes with the same task functions)
    task = get_task(name)
    for _, action, next_obs, _, expected, goal in _oracle_transitions(name, seed=2):
        goal_t = None if goal is None else torch.from_numpy(goal)
        cost = task.obs_cost(torch.from_numpy(next_obs), goal_t) + task.ac_cost(
            torch.from_numpy(action)
        )
        assert cost.item() == pytest.approx(-expected, rel=1e-13, abs=1e-13)


def test_pusher_env_reward_scores_the_pre_step_state_and_the_planner_the_next():
    # §quirk-1: the env's reward of a step (the oracle on MuJoCo's pre-step COMs) is the
    # the original's cost of the obs the env returned BEFORE the step ...
    task = get_task("pusher")
    rows = _oracle_transitions("pusher", seed=3)
    goal = torch.tensor(spec.PUSHER_GOAL, dtype=torch.float64)
    spec_obs_cost, spec_ac_cost = spec.SPEC_COSTS["pusher"]
    for obs, action, next_obs, _, expected, _ in rows:
        assert spec_obs_cost(obs, goal.numpy()) + spec_ac_cost(action) == pytest.approx(
            -expected, rel=1e-13, abs=1e-13
        )
        # ... while the planner scores the step's next obs
        assert task.obs_cost(torch.from_numpy(next_obs), goal).item() == pytest.approx(
            spec_obs_cost(next_obs, goal.numpy()), rel=1e-13, abs=1e-13
        )
    moved = [
        np.abs(r[2][17:20] - r[0][17:20]).sum() + np.abs(r[2][14:17] - r[0][14:17]).sum()
        for r in rows
    ]
    assert min(moved) > 1e-4  # so the two conventions give different numbers on these steps


@pytest.mark.parametrize("elbow", [0.0, -1e-4, 1e-4, -1.0])
@pytest.mark.parametrize("wrist", [0.0, -0.7])
def test_reacher_cost_equals_the_spec_oracle_at_straight_joints(elbow, wrist):
    # the analytic EE's degenerate hinge (exactly 0) and its discontinuity (§reacher)
    task = get_task("reacher")
    rng = np.random.default_rng(11)
    goal = np.array([0.1, 0.2, -0.05])
    for q in [np.array([0.3, 0.4, 0.5, elbow, 0.2, wrist, 0.1]), *rng.uniform(-1, 1, (20, 7))]:
        q[3], q[5] = elbow, wrist
        obs = np.concatenate([q, goal, np.zeros(7)])
        got = task.obs_cost(torch.from_numpy(obs), torch.from_numpy(goal)).item()
        assert got == pytest.approx(spec.SPEC_COSTS["reacher"][0](obs, goal), rel=1e-13, abs=1e-13)


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
