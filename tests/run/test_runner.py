"""The experiment runner end to end: every variant, every env, logs.mat shapes, the CLI's errors,
determinism, stochastic actions, logging options and MLflow, with tiny overrides (§experiment)."""

import json
import os
import time

import numpy as np
import pytest
import scipy.io
import torch
from support.runs import TASK_HOR, logs, run, tiny_args

from pets_core.cli import mbexp
from pets_core.config import fingerprint, from_yaml
from pets_core.config.variants import MODEL_TYPES, OPT_TYPES, PROP_TYPES, Variant, VariantError
from pets_core.envs import get_task, make_env
from pets_core.seeding import RunSeeds

VALID_VARIANTS = []
for _m in MODEL_TYPES:
    for _p in PROP_TYPES:
        for _o in OPT_TYPES:
            try:
                VALID_VARIANTS.append(Variant(_m, _p, _o).name)
            except VariantError:
                pass


def assert_original_shapes(run_dir, env: str, n: int, n_returns: int) -> None:
    task = get_task(env)
    data = logs(run_dir)
    assert sorted(k for k in scipy.io.loadmat(run_dir / "logs.mat") if not k.startswith("__")) == [
        "actions",
        "observations",
        "returns",
        "rewards",
    ]
    assert data["observations"].shape == (n, TASK_HOR + 1, task.obs_dim)
    assert data["actions"].shape == (n, TASK_HOR, task.act_dim)
    assert data["rewards"].shape == (n, TASK_HOR)
    assert data["returns"].shape == (1, n_returns)
    assert np.isfinite(data["returns"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("env", ["cartpole", "reacher", "pusher", "halfcheetah"])
@pytest.mark.parametrize("variant", VALID_VARIANTS)
def test_every_variant_runs_one_iteration_on_every_env(tmp_path, env, variant):
    assert run(tmp_path / "run", tiny_args(env, variant)) == 0
    assert_original_shapes(tmp_path / "run", env, n=2, n_returns=1)
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert (done["variant"], done["iterations"]) == (variant, 1)
    assert {"model.pt", "model.mat", "model.nns", "config.txt", "config.yaml", "metrics.csv"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }


@pytest.mark.slow
@pytest.mark.parametrize("env", ["reacher", "pusher", "halfcheetah"])
def test_pe_tsinf_cem_runs_on_each_env(tmp_path, env):
    assert run(tmp_path / "run", tiny_args(env, iters=2)) == 0
    assert_original_shapes(tmp_path / "run", env, n=3, n_returns=2)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == list(mbexp_columns())
    assert len(rows) == 3


def mbexp_columns():
    from pets_core.results.metrics import COLUMNS

    return COLUMNS


def test_same_seed_same_logs_other_seed_differs(tmp_path):
    argv = tiny_args("cartpole", iters=2)
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert run(tmp_path / name, argv, "--seed", seed) == 0
    a, b, c = (logs(tmp_path / n) for n in "abc")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    # the run seed reaches the env reset and the random episode's actions through its streams
    for data, seed in ((a, 3), (c, 4)):
        seeds = RunSeeds.from_seed(seed)
        first_obs, _ = make_env("cartpole").reset(seed=seeds.env)
        np.testing.assert_array_equal(data["observations"][0, 0], first_obs)
        random_actions = np.random.default_rng(seeds.actions).uniform(-3.0, 3.0, (TASK_HOR, 1))
        np.testing.assert_array_equal(data["actions"][0], random_actions)


def test_neval_nrollouts_and_logging_options(tmp_path):
    argv = [
        *tiny_args("cartpole", iters=2),
        "-o", "exp_cfg.log_cfg.neval", "3",
        "-o", "exp_cfg.exp_cfg.nrollouts_per_iter", "2",
        "-o", "exp_cfg.exp_cfg.ninit_rollouts", "2",
        "-o", "ctrl_cfg.log_cfg.save_all_models", "True",
        "-o", "ctrl_cfg.log_cfg.log_traj_preds", "True",
    ]  # fmt: skip
    assert run(tmp_path / "run", argv) == 0
    # logged: 2 initial + 2 per iteration; returns: 3 per iteration
    assert_original_shapes(tmp_path / "run", "cartpole", n=2 + 2 * 2, n_returns=2 * 3)
    for i in (1, 2):
        it = tmp_path / "run" / f"train_iter{i}"
        assert (it / "model.pt").exists() and (it / "model.mat").exists()
        pred = scipy.io.loadmat(it / "predictions.mat")
        # one planning call per step of the 3 episodes; H + 1 predicted observations each
        assert pred["means"].shape == pred["vars"].shape == (3 * TASK_HOR, 3 + 1, 4)
    steps = [line.split(",")[1] for line in (tmp_path / "run" / "metrics.csv").read_text().split()]
    assert steps[1:] == [str(TASK_HOR * (2 + 3)), str(TASK_HOR * (2 + 6))]


def test_stochastic_actions_are_executed_noisy_but_stored_noise_free(tmp_path):
    def replay_matches(run_dir) -> bool:
        data = logs(run_dir)
        env = make_env("cartpole")
        obs, _ = env.reset(seed=RunSeeds.from_seed(0).env)  # the run's env stream
        np.testing.assert_array_equal(obs, data["observations"][0, 0])
        for action in data["actions"][0]:
            obs, *_ = env.step(action)
        return np.allclose(obs, data["observations"][0, -1])

    assert run(tmp_path / "plain", tiny_args("cartpole")) == 0
    noisy = [*tiny_args("cartpole"), "-o", "exp_cfg.sim_cfg.stochastic", "True"]
    noisy += ["-o", "exp_cfg.sim_cfg.noise_std", "1.0"]
    assert run(tmp_path / "noisy", noisy) == 0
    assert replay_matches(tmp_path / "plain")
    assert not replay_matches(tmp_path / "noisy")
    assert np.abs(logs(tmp_path / "noisy")["actions"]).max() <= 3.0


def test_completed_run_is_not_rerun(tmp_path, capsys):
    argv = tiny_args("cartpole")
    assert run(tmp_path / "run", argv) == 0
    before = (tmp_path / "run" / "logs.mat").stat().st_mtime_ns
    capsys.readouterr()
    assert run(tmp_path / "run", argv) == 0
    assert "already complete" in capsys.readouterr().out
    assert (tmp_path / "run" / "logs.mat").stat().st_mtime_ns == before


def test_resume_refuses_a_different_config(tmp_path, capsys):
    argv = tiny_args("cartpole", iters=2)
    assert run(tmp_path / "run", argv) == 0
    (tmp_path / "run" / "done.json").unlink()  # pretend it was killed
    capsys.readouterr()
    assert run(tmp_path / "run", argv, "--seed", "9") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mbexp: error:") and "different config (seed: 0 != 9); " in err
    assert err.endswith("use another --run-dir or the same arguments to resume it")


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["-env", "hopper"], "unknown env 'hopper'; valid: cartpole"),
        (["-env", "cartpole", "-ca", "model", "PE"], "unknown -ca key 'model'; valid: model-type"),
        (["-env", "cartpole", "-ca", "model-type", "XL"], "valid: D, P, DE, PE"),
        (["-env", "cartpole", "-ca", "model-type", "D"], "model-type D needs prop-type E"),
        (["-env", "cartpole", "-o", "exp_cfg.foo", "1"], "'foo' is not in exp_cfg; valid:"),
        (["-env", "cartpole", "-o", "exp_cfg.sim_cfg.task_hor", "ten"], "expects int, got 'ten'"),
        (["-env", "cartpole", "-o", "ctrl_cfg.prop_cfg.mode", "E"], "is read-only"),
        (["-env", "cartpole", "-o", "exp_cfg.sim_cfg.task_hor"], "expected 2 arguments"),
        (["-ca", "model-type", "PE"], "required: -env"),
        (["-env", "cartpole", "--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda"),
        (["-env", "cartpole", "--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_bad_input_one_line_no_traceback_no_run_dir(tmp_path, capsys, argv, culprit):
    logdir = tmp_path / "log"
    assert mbexp.main([*argv, "-logdir", str(logdir), "--mlflow-uri", "none"]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.err.startswith("mbexp: error:"), out.err
    assert culprit in out.err and "Traceback" not in out.err
    assert not logdir.exists()


def test_unwritable_logdir_and_missing_cuda(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    bad = tmp_path / "a_file" / "log"
    assert mbexp.main(["-env", "cartpole", "-logdir", str(bad), "--mlflow-uri", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot create a run directory in {bad}" in err
    import torch

    if not torch.cuda.is_available():
        assert mbexp.main(["-env", "cartpole", "--device", "cuda", "-logdir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "no GPU is visible" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_timestamped_run_dirs_never_collide(tmp_path):
    made = {mbexp.new_run_dir(tmp_path) for _ in range(3)}  # same second
    assert len(made) == 3
    stamp = time.strftime("%Y-%m-%d--")
    assert all(p.name.startswith(stamp) for p in made)


def test_default_run_dir_under_logdir(tmp_path):
    assert mbexp.main([*tiny_args("cartpole"), "-logdir", str(tmp_path / "log")]) == 0
    (run_dir,) = (tmp_path / "log").iterdir()
    assert (run_dir / "done.json").exists() and (run_dir / "config.txt").exists()


@pytest.mark.slow
def test_mlflow_run_in_sqlite_store(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [a for a in tiny_args("cartpole", iters=2) if a not in ("--mlflow-uri", "none")]
    assert run(tmp_path / "run", argv, "--mlflow-uri", uri, "--seed", "2") == 0
    client = mlflow.MlflowClient(tracking_uri=uri)
    (r,) = client.search_runs([client.get_experiment_by_name("pets-cartpole").experiment_id])
    settings = fingerprint(from_yaml(tmp_path / "run" / "config.yaml"))
    assert r.info.status == "FINISHED" and r.info.run_name == f"PE-TSinf-CEM seed2 {settings}"
    assert r.data.tags["run_dir"] == str((tmp_path / "run").resolve())
    assert (r.data.tags["env"], r.data.tags["variant"], r.data.tags["seed"]) == (
        "cartpole",
        "PE-TSinf-CEM",
        "2",
    )
    assert r.data.params["exp_cfg.sim_cfg.task_hor"] == str(TASK_HOR)
    assert r.data.params["ctrl_cfg.opt_cfg.cfg.popsize"] == "8"
    for key in ("return", "best_so_far", "train/nll", "plan/s_per_action", "env_steps"):
        assert [m.step for m in client.get_metric_history(r.info.run_id, key)] == [1, 2], key
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"logs.mat", "config.yaml", "config.txt", "model.pt", "metrics.csv"} <= artifacts
    assert str(tmp_path) in r.info.artifact_uri  # beside the db, not in the CWD's ./mlruns


def test_unreachable_store_does_not_fail_the_run(tmp_path, capsys):
    argv = [a for a in tiny_args("cartpole") if a not in ("--mlflow-uri", "none")]
    assert run(tmp_path / "run", argv, "--mlflow-uri", "http://127.0.0.1:9") == 0
    err = capsys.readouterr().err  # a notice: stderr, through logging (pets_core.notices)
    assert "MLflow tracking skipped: http://127.0.0.1:9 unreachable" in err
    assert (tmp_path / "run" / "done.json").exists()
    assert_original_shapes(tmp_path / "run", "cartpole", n=2, n_returns=1)


def test_mlflow_env_var_is_the_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    argv = [a for a in tiny_args("cartpole") if a not in ("--mlflow-uri", "none")]
    assert run(tmp_path / "run", argv) == 0
    assert "tracking skipped: http://127.0.0.1:9" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "results")


def test_captured_steps_are_a_speed_switch_not_a_different_run(tmp_path):
    """ctrl_cfg.graph: auto is eager on CPU; always runs the planner's rollout and the trainer's
    step through pets_core.graphs (uncaptured static buffers here, CUDA graphs on a GPU), and the
    run is the same run: identical returns, losses and actions-derived metrics."""
    from pets_core.config import from_yaml, load_config
    from pets_core.envs import get_task as task_of
    from pets_core.run.builders import make_model, make_mpc

    cfg = load_config("cartpole")
    model, trainer = make_model(cfg, task_of("cartpole"), torch.device("cpu"))
    mpc = make_mpc(cfg, make_env("cartpole"), task_of("cartpole"), model, torch.device("cpu"))
    assert (trainer.graph, mpc.graph) == (False, False)  # auto on CPU
    argv = tiny_args("cartpole", iters=2)
    assert run(tmp_path / "eager", argv, "-o", "ctrl_cfg.graph", "never") == 0
    assert run(tmp_path / "graphed", argv, "-o", "ctrl_cfg.graph", "always") == 0
    eager = (tmp_path / "eager/metrics.csv").read_text().splitlines()
    graphed = (tmp_path / "graphed/metrics.csv").read_text().splitlines()
    columns = eager[0].split(",")
    keep = [i for i, c in enumerate(columns) if c not in ("plan_s_per_action", "wall_s")]
    assert len(eager) == 3 and {"return", "train_loss"} <= {columns[i] for i in keep}
    for a, b in zip(eager, graphed, strict=True):
        assert [a.split(",")[i] for i in keep] == [b.split(",")[i] for i in keep]
    assert from_yaml(tmp_path / "graphed/config.yaml").ctrl_cfg.graph == "always"


def test_planner_precision_comes_from_the_config(tmp_path, monkeypatch):
    """-o ctrl_cfg.precision reaches every plan of the run (and its config.yaml); fp32 default."""
    import pets_core.planning.rollout as rollout
    from pets_core.config import from_yaml

    asked = []
    real = rollout.make_predictor

    def spy(model, act_dim, fast="auto", precision="fp32"):
        asked.append(precision)
        return real(model, act_dim, fast, precision)

    monkeypatch.setattr(rollout, "make_predictor", spy)
    argv = tiny_args("cartpole", iters=1)
    assert run(tmp_path / "default", argv) == 0
    assert asked and set(asked) == {"fp32"}
    asked.clear()
    assert run(tmp_path / "mixed", argv, "-o", "ctrl_cfg.precision", "bf16-hidden") == 0
    assert len(asked) == TASK_HOR * 2  # one planned episode: every step, both CEM iterations
    assert set(asked) == {"bf16-hidden"}
    assert from_yaml(tmp_path / "mixed/config.yaml").ctrl_cfg.precision == "bf16-hidden"
    assert from_yaml(tmp_path / "default/config.yaml").ctrl_cfg.precision == "fp32"
