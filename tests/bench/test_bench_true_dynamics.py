"""`python -m pets_core.bench true-dynamics` (issue 9's gap diagnosis) on a real tiny run.

Exact properties: the simulator model predicts exactly what env.step does, from any anchored state
and along a carried rollout (the cart-pole angle beyond pi, the pusher object's unobserved velocity
and the env's body positions from the forward pass before the last physics step included); rows
that continue no rollout are refused; the reported return is the real env's return for the reported
actions (replayed independently in a fresh env); the run's own return is logs.mat's; seeded runs
of the command repeat exactly.
"""

import json

import numpy as np
import pytest
import torch
from support.runs import TASK_HOR, logs, run, tiny_args

from pets_core.bench.__main__ import main as bench_main
from pets_core.bench.true_dynamics import SIMULATED_ENVS, SimulatorModel
from pets_core.envs import get_task, make_env
from pets_core.seeding import RunSeeds


def _random_state(env_name, u, rng, i):
    qpos = u.init_qpos + rng.normal(0.0, 0.3, u.model.nq)
    qvel = rng.normal(0.0, 1.0, u.model.nv)
    if env_name == "reacher":
        qvel[7:] = 0.0  # the target never moves
    if env_name == "pusher":
        qpos[7:9] = np.array([-0.25, 0.15]) + rng.normal(0.0, 0.05, 2)  # the object near the arm
        qpos[9:], qvel[9:] = 0.0, 0.0  # the goal never moves
    if env_name == "cartpole" and i == 0:
        qpos[1] = 4.0  # beyond pi: the features keep only sin and cos
    return qpos, qvel


@pytest.mark.parametrize("env_name", SIMULATED_ENVS)
def test_the_simulator_model_steps_exactly_like_the_env(env_name):
    """From any anchored state, and along a carried rollout of three steps (the pusher object's
    velocity, absent from the observation, included), the model predicts what env.step does."""
    env, task = make_env(env_name), get_task(env_name)
    env.reset(seed=0)
    u = env.unwrapped
    sim = SimulatorModel(env_name, env)
    rng = np.random.default_rng(0)
    for i in range(4):
        u.set_state(*_random_state(env_name, u, rng, i))
        obs = u._get_obs()
        sim.anchor(env)
        for _ in range(3):
            action = rng.uniform(env.action_space.low, env.action_space.high)
            features = task.obs_preproc(torch.from_numpy(obs)).numpy()
            row = np.concatenate([features, action])[None]
            predicted = sim.step(np.repeat(row, 2, axis=0))  # two identical candidates
            next_obs, *_ = env.step(action)
            target = task.targ_proc(torch.from_numpy(obs), torch.from_numpy(next_obs)).numpy()
            np.testing.assert_allclose(predicted, [target, target], rtol=0, atol=1e-12)
            obs = next_obs
    sim.anchor(env)  # the contract's predict: the same step
    row = np.concatenate([task.obs_preproc(torch.from_numpy(obs)).numpy(), action])[None]
    mean, var = sim.predict(torch.as_tensor(np.repeat(row, 2, axis=0))[None])
    assert mean.shape == (1, 2, task.out_dim) and not var.any()
    next_obs, *_ = env.step(action)
    target = task.targ_proc(torch.from_numpy(obs), torch.from_numpy(next_obs)).numpy()
    np.testing.assert_allclose(mean[0].numpy(), [target, target], rtol=0, atol=1e-12)


def test_rows_that_continue_no_rollout_are_refused():
    env = make_env("pusher")
    env.reset(seed=0)
    sim = SimulatorModel("pusher", env)
    sim.anchor(env)
    obs = env.unwrapped._get_obs()
    row = np.concatenate([obs, np.zeros(sim.act_dim)])[None]
    sim.step(row)
    stranger = row.copy()
    stranger[0, 10] += 0.5  # a velocity no carried state has
    with pytest.raises(RuntimeError, match="neither start at the anchored env state"):
        sim.step(stranger)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("true_dynamics") / "run"
    assert run(out, tiny_args("cartpole", iters=1), "--seed", "2") == 0
    return out


def _result(capsys, argv) -> dict:
    assert bench_main(["true-dynamics", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_returns_are_the_real_envs_and_the_runs(run_dir, capsys):
    argv = ["--env", "cartpole", "--run", str(run_dir), "--episodes", "0,1", "--threads", "1"]
    result = _result(capsys, argv)
    assert [e["episode"] for e in result["episodes"]] == [0, 1]
    assert (result["popsize"], result["elites"], result["horizon"]) == (8, 2, 3)
    rewards = logs(run_dir)["rewards"].reshape(2, TASK_HOR)
    env = make_env("cartpole")
    for k, episode in enumerate(result["episodes"]):
        assert episode["return_run"] == round(float(rewards[k].sum()), 4)
        # replayed independently: the reported actions in the env reset as the runner reset it
        env.reset(seed=RunSeeds.from_seed(2).env) if k == 0 else env.reset()
        actions = np.asarray(episode["actions"])
        assert actions.shape == (TASK_HOR, 1)
        assert (np.abs(actions) <= env.action_space.high).all()
        replayed = sum(float(env.step(a)[1]) for a in actions)
        assert episode["return_true_dynamics"] == round(replayed, 4)

    def plans(res):  # everything but the timing
        return [{k: v for k, v in e.items() if k != "wall_s"} for e in res["episodes"]]

    assert plans(_result(capsys, argv)) == plans(result)  # seeded: the same plans
    assert [e["episode"] for e in _result(capsys, argv[:4])["episodes"]] == [1]  # the last


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["--env", "halfcheetah"],
            "invalid choice: 'halfcheetah' (choose from 'cartpole', 'reacher', 'pusher')",
        ),
        (["--env", "reacher"], "valid: --env cartpole"),
        (["--env", "cartpole", "--episodes", "2"], "episode 2 is not in"),
        (["--env", "cartpole", "--episodes", "x"], "comma-separated integers"),
    ],
)
def test_bad_input_is_one_line_exit_2(run_dir, capsys, argv, says):
    assert bench_main(["true-dynamics", "--run", str(run_dir), *argv]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith("python -m pets_core.bench true-dynamics: error: ")
    assert says in lines[0], lines[0]
