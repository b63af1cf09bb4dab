"""`python -m pets_core.bench bf16-agreement` (issue 12) on a real tiny run of the runner.

Exact properties: fp32 against itself agrees exactly (every elite set, every action: the shared
noise and the instrumented CEM are MPC.act's); a perturbed copy of the model does not; the first
CEM iteration's elite overlap equals an independent recomputation from the public planner API.
"""

import copy
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pets_core import config as config_mod
from pets_core.bench import agreement
from pets_core.bench.__main__ import main as bench_main
from pets_core.cli import mbexp
from pets_core.models import load_model

REPO = Path(__file__).resolve().parents[2]
ITERS, STATES = 2, 5


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real 1-iteration cartpole PE-TSinf-CEM run at toy sizes (model.pt, config.yaml, logs)."""
    out = tmp_path_factory.mktemp("agreement") / "run"
    o = {
        "exp_cfg.sim_cfg.task_hor": 10,
        "exp_cfg.exp_cfg.ntrain_iters": 1,
        "ctrl_cfg.opt_cfg.plan_hor": 3,
        "ctrl_cfg.opt_cfg.cfg.popsize": 8,
        "ctrl_cfg.opt_cfg.cfg.num_elites": 2,
        "ctrl_cfg.opt_cfg.cfg.max_iters": ITERS,
        "ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims": "8,8,8",
        "ctrl_cfg.prop_cfg.model_init_cfg.num_nets": 2,
        "ctrl_cfg.prop_cfg.npart": 4,
    }
    argv = ["-env", "cartpole", "-ca", "model-type", "PE", "-ca", "prop-type", "TSinf"]
    argv += [x for path, value in o.items() for x in ("-o", path, str(value))]
    argv += ["--seed", "1", "--run-dir", str(out), "--mlflow-uri", "none", "--no-progress"]
    assert mbexp.main(argv) == 0
    return out


def _result(capsys, argv) -> dict:
    assert bench_main(["bf16-agreement", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_fp32_against_itself_agrees_exactly(run_dir, capsys):
    result = _result(
        capsys, ["--env", "cartpole", "--model", str(run_dir), "--states", str(STATES),
                 "--precision", "fp32", "--threads", "1"],
    )  # fmt: skip
    assert result["states"] == STATES
    assert result["cem_iterations"] == STATES * ITERS  # eps never stops a 2-iteration CEM here
    assert result["elites_identical"] == 1.0
    assert result["elites_all_but_one"] == 1.0
    assert result["elite_overlap_mean"] == 1.0
    assert result["elite_overlap_per_iteration"] == [2] * (STATES * ITERS)
    # the instrumented fp32 CEM's action is bit-equal to MPC.act's from the same planner state
    assert result["action_gap_max"] == 0.0 and result["action_gaps"] == [0.0] * STATES
    assert (result["popsize"], result["elites"], result["horizon"]) == (8, 2, 3)


def test_bf16_reports_fractions_of_its_iterations(run_dir, capsys):
    result = _result(capsys, ["--env", "cartpole", "--model", str(run_dir), "--states", "3"])
    assert result["precision"] == "bf16" and result["vs"] == "fp32"
    shared = np.asarray(result["elite_overlap_per_iteration"])
    assert len(shared) == result["cem_iterations"] == 3 * ITERS
    assert result["elites_identical"] == np.mean(shared == 2)
    assert result["elites_all_but_one"] == np.mean(shared >= 1)
    assert result["action_gap_max"] == max(result["action_gaps"])
    assert 0.0 <= result["action_gap_max"] <= 1.0


@pytest.mark.parametrize(("precision", "backend"), [("bf16-hidden", "bmm"), ("fp32", "onednn")])
def test_the_compared_planner_runs_the_precision_and_backend_asked_for(run_dir, precision, backend):
    from pets_core.planning.forward import layer_dtypes, make_predictor

    cfg, model, _ = agreement._load_run(run_dir, "cartpole")
    mpc = agreement.make_planner(cfg, model, precision, backend)
    predictor = make_predictor(model, 1, mpc.fast, mpc.precision)
    assert predictor.backend == backend
    assert predictor.dtypes == layer_dtypes(precision, 4)  # hidden_dims 8,8,8: four layers


def _perturbed(model, scale: float):
    other = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for w in other.weights:
            w.add_(scale * torch.randn(w.shape, generator=gen))
    return other


def _costs(model, obs, samples, generator):
    """The cartpole run's planner costs of ``samples`` under ``model`` (public planner API)."""
    from pets_core.envs import get_task
    from pets_core.planning import PropagationSpec, predicted_costs

    return predicted_costs(
        model, get_task("cartpole"), torch.as_tensor(obs, dtype=torch.float32), samples,
        spec=PropagationSpec.for_model(model, "TSinf", 4), goal=None, generator=generator,
    )  # fmt: skip


def _first_iteration_overlap(seed: int, cost_pair) -> int:
    """Oracle for state 0's first CEM iteration: the population CEM draws from the mid-point with
    the generator seeded ``seed``, costed twice by ``cost_pair(samples, generator) -> (a, b)``;
    how many of the K = 2 elites the two costings share."""
    from pets_core.envs import make_env
    from pets_core.planning import CEMOptimizer, tile_bounds

    env = make_env("cartpole")
    lower, upper = tile_bounds(env.action_space.low, env.action_space.high, 3, "cpu")
    gen = torch.Generator().manual_seed(seed)
    seen = []

    def cost(samples):
        costs = cost_pair(samples, gen)
        seen.append([set(c.argsort()[:2].tolist()) for c in costs])
        return costs[0]

    cem = CEMOptimizer(popsize=8, num_elites=2, max_iters=1, epsilon=1e-3, alpha=0.1,
                       lower=lower, upper=upper)  # fmt: skip
    cem.optimize(cost, (lower + upper) / 2, (upper - lower).square() / 16, gen)
    return len(seen[0][0] & seen[0][1])


def test_a_perturbed_model_disagrees_and_the_overlap_is_recomputed_independently(run_dir):
    cfg = config_mod.from_yaml(run_dir / "config.yaml")
    model = load_model(run_dir / "model.pt")
    other = _perturbed(model, 1.0)
    obs_log = agreement._load_run(run_dir, "cartpole")[2]
    states = agreement.start_states(cfg, obs_log, STATES)
    result = agreement.agreement(cfg, model, states, precision="fp32", seed=3, other_model=other)
    assert result["elites_identical"] < 1.0
    assert result["action_gap_max"] > 0.0

    def same_noise(samples, gen):  # each model on a copy of the generator's state
        noise = gen.get_state()
        return [_costs(m, states[0][0], samples, torch.Generator().set_state(noise))
                for m in (model, other)]  # fmt: skip

    assert result["elite_overlap_per_iteration"][0] == _first_iteration_overlap(3, same_noise)


def test_resample_costs_the_same_population_with_the_planners_own_noise(run_dir):
    """--resample: fp32 against fp32 on other propagation noise (the Monte Carlo scale); the
    first CEM iteration's overlap recomputed from the population and the two noise streams."""
    cfg = config_mod.from_yaml(run_dir / "config.yaml")
    model = load_model(run_dir / "model.pt")
    obs_log = agreement._load_run(run_dir, "cartpole")[2]
    states = agreement.start_states(cfg, obs_log, STATES)
    result = agreement.agreement(cfg, model, states, precision="fp32", seed=5, resample=True)
    same = agreement.agreement(cfg, model, states, precision="fp32", seed=5)
    assert same["elites_identical"] == 1.0 and same["action_gap_max"] == 0.0
    assert result["action_gap_max"] > 0.0  # its own CEM samples: another plan
    own = torch.Generator().manual_seed(agreement.RESAMPLED + 5)

    def own_noise(samples, gen):  # the reference on CEM's stream, the other on its own
        return [_costs(model, states[0][0], samples, g) for g in (gen, own)]

    assert result["elite_overlap_per_iteration"][0] == _first_iteration_overlap(5, own_noise)


def test_states_are_spread_over_the_logged_episodes(run_dir):
    cfg = config_mod.from_yaml(run_dir / "config.yaml")
    obs_log = agreement._load_run(run_dir, "cartpole")[2]  # (2 episodes, 11, 4)
    states = agreement.start_states(cfg, obs_log, 4)
    picks = [0, 6, 13, 19]  # linspace(0, 2 * 10 - 1, 4) rounded: flat (episode, step) indices
    for (obs, goal), flat in zip(states, picks, strict=True):
        assert np.array_equal(obs, obs_log[flat // 10, flat % 10]) and goal is None
    assert len(agreement.start_states(cfg, obs_log, 1000)) == 20  # at most every logged step


def _copy_with_config(run_dir: Path, tmp_path: Path, **changes) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    cfg = config_mod.from_yaml(run_dir / "config.yaml")
    (out / "config.yaml").write_text(config_mod.to_yaml(dataclasses.replace(cfg, **changes)))
    return out


@pytest.mark.parametrize(
    ("make", "argv", "says"),
    [
        (lambda run, tmp: tmp / "absent", ["--env", "cartpole"], "lacks model.pt"),
        (lambda run, tmp: run, ["--env", "reacher"], "valid: --env cartpole"),
        (lambda run, tmp: run, ["--env", "cartpole", "--states", "0"], "--states"),
        (lambda run, tmp: run, ["--env", "cartpole", "--precision", "fp16"],
         "'fp32', 'bf16', 'bf16-hidden', 'bf16-trunk'"),
        (lambda run, tmp: run, ["--env", "cartpole", "--backend", "mkl"],
         "'auto', 'onednn', 'bmm'"),
        (lambda run, tmp: _copy_with_config(run, tmp, seed=2), ["--env", "cartpole"],
         "does not start where the env's reset"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2(run_dir, tmp_path, capsys, make, argv, says):
    model_dir = make(run_dir, tmp_path)
    assert bench_main(["bf16-agreement", "--model", str(model_dir), *argv]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith("python -m pets_core.bench bf16-agreement: error: ")
    assert says in lines[0]


def test_command_line_end_to_end(run_dir):
    cmd = [sys.executable, "-m", "pets_core.bench", "bf16-agreement", "--env", "cartpole",
           "--model", str(run_dir), "--states", "2", "--precision", "fp32"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["elites_identical"] == 1.0
    progress = [line for line in proc.stderr.splitlines() if line.startswith("state ")]
    assert progress == [
        f"state {i}/2: elites shared per CEM iteration [2, 2] of 2, first-action gap 0.00e+00 "
        "of the action range"
        for i in (1, 2)
    ]
