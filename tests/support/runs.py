"""Run directories for tests: tiny real runs of the runner, and fake ones written without PETS.

tiny_args/run/logs/TASK_HOR drive `python -m pets_core.mbexp` in-process at a second or two per
run; make_run and fake_run_dir write what a run leaves behind (logs.mat in the original's keys and
shapes, §logs-mat; metrics.csv, config, done.json) with known numbers.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io

from pets_core import config as config_mod
from pets_core.cli import mbexp
from pets_core.config import load_config
from pets_core.results.files import write_json
from pets_core.results.identity import ensure_run_info
from pets_core.results.logs import write_logs_mat
from pets_core.results.metrics import read_metrics_csv, write_metrics_csv

TASK_HOR = 8
"""Steps per episode of a tiny run."""


def tiny_args(env: str, variant: str = "PE-TSinf-CEM", iters: int = 1) -> list[str]:
    """-ca / -o for a run of a second or two: small nets, 8 candidates, horizon 3."""
    model, prop, opt = variant.split("-")
    layers = len(load_config(env).ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims)
    argv = [
        "-env",
        env,
        "-ca",
        "model-type",
        model,
        "-ca",
        "prop-type",
        prop,
        "-ca",
        "opt-type",
        opt,
    ]
    o = {
        "exp_cfg.sim_cfg.task_hor": TASK_HOR,
        "exp_cfg.exp_cfg.ntrain_iters": iters,
        "ctrl_cfg.opt_cfg.plan_hor": 3,
        "ctrl_cfg.opt_cfg.cfg.popsize": 8,
        "ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims": ",".join(["8"] * layers),
    }
    if opt in ("CEM", "iCEM"):
        o["ctrl_cfg.opt_cfg.cfg.num_elites"] = 2
        o["ctrl_cfg.opt_cfg.cfg.max_iters"] = 2
    if opt == "MPPI":
        o["ctrl_cfg.opt_cfg.cfg.num_iters"] = 2
    if model in ("DE", "PE"):
        o["ctrl_cfg.prop_cfg.model_init_cfg.num_nets"] = 2
    if prop != "E":
        o["ctrl_cfg.prop_cfg.npart"] = 4
    for path, value in o.items():
        argv += ["-o", path, str(value)]
    return [*argv, "--mlflow-uri", "none", "--no-progress"]


def run(run_dir, argv, *extra) -> int:
    """mbexp's exit code for argv (+ extra) writing into run_dir."""
    return mbexp.main([*argv, "--run-dir", str(run_dir), *extra])


def logs(run_dir) -> dict[str, np.ndarray]:
    """The four arrays of a run's logs.mat."""
    data = scipy.io.loadmat(run_dir / "logs.mat")
    return {k: data[k] for k in ("observations", "actions", "rewards", "returns")}


def readable(run_dir) -> int:
    """Load every file a reader may open mid-run (a cartpole tiny run); returns the logged
    returns so far."""
    n = 0
    if (run_dir / "logs.mat").exists():
        data = scipy.io.loadmat(run_dir / "logs.mat")
        assert data["observations"].shape[1:] == (TASK_HOR + 1, 4)
        assert data["observations"].shape[0] == data["actions"].shape[0]
        n = data["returns"].shape[1]
    if (run_dir / "metrics.csv").exists():
        assert len(read_metrics_csv(run_dir)) in (n, n - 1, n + 1)
    return n


def sigkill_after_logs(
    run_dir: Path,
    argv: list[str],
    *extra: str,
    timeout_s: float = 300,
    watch: Path | None = None,
) -> None:
    """Start ``python -m pets_core.mbexp ARGV --run-dir RUN_DIR EXTRA`` and SIGKILL it as soon as
    iteration 2 has written logs.mat in ``watch`` (default RUN_DIR; a cohort's RUN_DIR is a
    template) before its checkpoint: a kill mid-iteration."""
    cmd = [sys.executable, "-m", "pets_core.mbexp", *argv, "--run-dir", str(run_dir), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while readable(watch or run_dir) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()


def _tiny_run(run_dir: Path, env: str = "cartpole", iters: int = 2, *extra: str) -> Path:
    """A real run of the runner (a second or two: tiny_args' settings)."""
    assert run(run_dir, tiny_args(env, iters=iters), *extra) == 0
    return run_dir


def make_run(
    root: Path,
    env: str,
    variant: str,
    seed: int,
    returns: list[float],
    *,
    task_hor: int = 4,
    n_init: int = 1,
    obs_dim: int = 3,
    act_dim: int = 2,
) -> Path:
    """A run dir with a logs.mat in the original's keys and shapes (§logs-mat)."""
    run_dir = root / "runs" / env / variant / f"seed{seed}"
    run_dir.mkdir(parents=True)
    n = n_init + len(returns)
    scipy.io.savemat(
        run_dir / "logs.mat",
        {
            "observations": np.zeros((n, task_hor + 1, obs_dim)),  # [n, T+1, O]
            "actions": np.zeros((n, task_hor, act_dim)),  # [n, T, A]
            "rewards": np.zeros((n, task_hor)),  # [n, T]
            "returns": np.asarray(returns, dtype=float)[None, :],  # [1, iters]
        },
    )
    return run_dir


ROWS = [
    {
        "iteration": i,
        "env_steps": 10 * (i + 1),
        "return": float(i),
        "best_so_far": float(i),
        "train_loss": 0.5 / i,
        "holdout_mse": float("nan"),
        "plan_s_per_action": 0.01,
        "wall_s": 1.5,
    }
    for i in (1, 2, 3)
]
"""metrics.csv rows of a three-iteration run (fake_run_dir writes them)."""


def fake_run_dir(path, seed=0, identity=False):
    """What mbexp leaves behind, without running PETS (today's format unless ``identity``)."""
    cfg = config_mod.load_config("cartpole", seed=seed)
    path.mkdir(parents=True)
    if identity:
        ensure_run_info(path, env="cartpole", variant=cfg.variant, seed=seed)
    (path / "config.yaml").write_text(config_mod.to_yaml(cfg))
    (path / "config.txt").write_text(config_mod.to_text(cfg))
    write_metrics_csv(path, ROWS)
    obs = [np.zeros((6, 4))] * 4
    returns = [row["return"] for row in ROWS]  # what metrics.csv says (ingest checks them)
    write_logs_mat(path, obs, [np.zeros((5, 1))] * 4, [np.zeros(5)] * 4, returns)
    write_json(path / "done.json", {"env": "cartpole", "iterations": 3})
    return cfg


def fake_fidelity_run(
    root: Path,
    settings: config_mod.PetsConfig,
    returns: list[float],
    *,
    done: bool = True,
    variant: str = "PE-TSinf-CEM",
    wall_s: float = 3600.0,
) -> Path:
    """A committed fidelity run (the four reference files) at ``settings`` with known returns:
    ``root/{env}/{variant}/seed{settings.seed}``; ``done=False``: a partial run (no done.json)."""
    run_dir = root / settings.env / variant / f"seed{settings.seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(config_mod.to_yaml(settings))
    n, task_hor = 1 + len(returns), 4  # one random episode, then one per trial
    scipy.io.savemat(
        run_dir / "logs.mat",
        {
            "observations": np.zeros((n, task_hor + 1, 2)),  # [n, T+1, O]
            "actions": np.zeros((n, task_hor, 1)),  # [n, T, A]
            "rewards": np.zeros((n, task_hor)),  # [n, T]
            "returns": np.asarray(returns, dtype=float)[None, :],  # [1, trials]
        },
    )
    if done:  # what run/loop.py writes
        info = {
            "env": settings.env,
            "variant": variant,
            "seed": settings.seed,
            "iterations": len(returns),
            "final_best_so_far": max(returns),
            "wall_s": wall_s,
            "device": "cpu",
        }
        write_json(run_dir / "done.json", info)
    return run_dir
