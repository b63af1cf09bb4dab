"""`python -m pets_core.bench true-dynamics` (issue 9's gap diagnosis) on a real tiny run.

Exact properties: the simulator model predicts exactly what one env step does (from any state, the
cart-pole angle beyond pi included); the reported return is the real env's return for the reported
actions (replayed independently in a fresh env); the run's own return is logs.mat's; seeded runs
of the command repeat exactly.
"""

import json

import numpy as np
import pytest
import torch
from support.runs import TASK_HOR, logs, run, tiny_args

from pets_core.bench.__main__ import main as bench_main
from pets_core.bench.true_dynamics import SimulatorModel
from pets_core.envs import get_task, make_env
from pets_core.seeding import RunSeeds


@pytest.mark.parametrize("env_name", ["cartpole", "reacher"])
def test_the_simulator_model_steps_exactly_like_the_env(env_name):
    env, task = make_env(env_name), get_task(env_name)
    env.reset(seed=0)
    u = env.unwrapped
    sim = SimulatorModel(env_name, env)
    rng = np.random.default_rng(0)
    rows, targets = [], []
    for i in range(6):
        qpos = u.init_qpos + rng.normal(0.0, 0.3, u.model.nq)
        qvel = rng.normal(0.0, 1.0, u.model.nv)
        if env_name == "reacher":
            qvel[7:] = 0.0  # the target never moves
        if env_name == "cartpole" and i == 0:
            qpos[1] = 4.0  # beyond pi: the features keep only sin and cos
        u.set_state(qpos, qvel)
        obs = u._get_obs()
        action = rng.uniform(env.action_space.low, env.action_space.high)
        next_obs, *_ = env.step(action)
        features = task.obs_preproc(torch.from_numpy(obs)).numpy()
        rows.append(np.concatenate([features, action]))
        targets.append(task.targ_proc(torch.from_numpy(obs), torch.from_numpy(next_obs)).numpy())
    np.testing.assert_allclose(sim.step(np.asarray(rows)), np.asarray(targets), rtol=0, atol=1e-12)
    mean, var = sim.predict(torch.as_tensor(np.asarray(rows))[None])
    assert mean.shape == (1, 6, task.out_dim) and not var.any()


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
        (["--env", "pusher"], "invalid choice: 'pusher' (choose from 'cartpole', 'reacher')"),
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
