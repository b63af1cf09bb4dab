"""Run directories -> one tidy table: env, variant, seed, iteration, env_steps, return, best_so_far.

A run directory is ``<root>/runs/{env}/{variant}/seed{seed}/`` and holds the original's ``logs.mat``
(spec sec. 6.2): ``observations [n, T+1, O]``, ``actions [n, T, A]``, ``rewards [n, T]`` and
``returns [1, iters * neval]`` (iteration-major, the initial random episodes not included).
``logs.mat`` is the source of truth for returns; the runner's ``metrics.csv`` (when present) only
supplies ``env_steps``. Best-so-far is the running maximum over iterations, as in the original's
plotter notebook (spec sec. 6.5) and the paper's figures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import yaml

COLUMNS = ["env", "variant", "seed", "iteration", "env_steps", "return", "best_so_far"]
RUN_DIR_PATTERN = re.compile(r"(?P<env>[^/]+)/(?P<variant>[^/]+)/seed(?P<seed>\d+)/?$")


class RunDataError(ValueError):
    """One or more run directories are missing or unreadable; the message names every path."""


def find_run_dirs(runs_root: Path | str) -> list[Path]:
    """Every ``{env}/{variant}/seed{seed}`` directory under ``runs_root`` that holds a logs.mat."""
    return sorted(path.parent for path in Path(runs_root).glob("*/*/seed*/logs.mat"))


def parse_run_dir(run_dir: Path | str) -> tuple[str, str, int]:
    """``.../runs/cartpole/PE-TSinf-CEM/seed3`` -> ("cartpole", "PE-TSinf-CEM", 3)."""
    match = RUN_DIR_PATTERN.search(Path(run_dir).as_posix())
    if match is None:
        raise RunDataError(
            f"{run_dir}: not a run directory of the form {{env}}/{{variant}}/seed{{N}}"
        )
    return match["env"], match["variant"], int(match["seed"])


def load_run(run_dir: Path | str) -> pd.DataFrame:
    """One run directory -> its rows of the tidy table (one row per iteration)."""
    run_dir = Path(run_dir)
    env, variant, seed = parse_run_dir(run_dir)
    logs_path = run_dir / "logs.mat"
    if not logs_path.is_file():
        raise RunDataError(f"{logs_path}: missing (the run has no logs.mat)")
    try:
        logs = scipy.io.loadmat(logs_path)
    except Exception as err:  # scipy raises several types for damaged files
        raise RunDataError(f"{logs_path}: unreadable .mat file ({err})") from err
    for key in ("returns", "rewards"):
        if key not in logs:
            raise RunDataError(f"{logs_path}: no {key!r} array (keys: {sorted(_mat_keys(logs))})")
    neval = _resolved(run_dir, ("exp_cfg", "log_cfg", "neval"), default=1)
    returns = np.asarray(logs["returns"], dtype=float).reshape(-1)  # [iters * neval]
    if returns.size == 0 or returns.size % neval or not np.isfinite(returns).all():
        raise RunDataError(
            f"{logs_path}: 'returns' has {returns.size} entries, expected a non-empty, finite "
            f"multiple of neval={neval}"
        )
    per_iteration = returns.reshape(-1, neval).mean(axis=1)  # [iters]
    iterations = np.arange(1, per_iteration.size + 1)
    env_steps = _env_steps(run_dir, logs, iterations)
    return pd.DataFrame(
        {
            "env": env,
            "variant": variant,
            "seed": seed,
            "iteration": iterations,
            "env_steps": env_steps,
            "return": per_iteration,
            "best_so_far": np.maximum.accumulate(per_iteration),
        },
        columns=COLUMNS,
    )


def collect_runs(run_dirs: Iterable[Path | str]) -> pd.DataFrame:
    """Concatenate every run; all bad runs are reported together in one RunDataError."""
    frames, problems = [], []
    for run_dir in run_dirs:
        try:
            frames.append(load_run(run_dir))
        except RunDataError as err:
            problems.append(str(err))
    if problems:
        raise RunDataError(
            f"{len(problems)} run(s) missing or corrupt:\n  " + "\n  ".join(problems)
        )
    if not frames:
        raise RunDataError("no run directories given (nothing to aggregate)")
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["env", "variant", "seed", "iteration"], ignore_index=True)


def final_best_so_far(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per run, the best-so-far return at its last iteration (one row per env, variant, seed)."""
    last = tidy.sort_values("iteration").groupby(["env", "variant", "seed"], as_index=False).last()
    return last.rename(columns={"best_so_far": "final_best_so_far", "iteration": "iterations"})[
        ["env", "variant", "seed", "iterations", "env_steps", "final_best_so_far"]
    ]


def _env_steps(run_dir: Path, logs: dict, iterations: np.ndarray) -> np.ndarray:
    """Env steps collected up to and including each iteration (initial random episodes included)."""
    metrics_path = run_dir / "metrics.csv"
    if metrics_path.is_file():
        try:
            metrics = pd.read_csv(metrics_path)
        except Exception as err:
            raise RunDataError(f"{metrics_path}: unreadable CSV ({err})") from err
        if {"iteration", "env_steps"} <= set(metrics.columns):
            steps = metrics.set_index("iteration")["env_steps"]
            if set(iterations) <= set(steps.index):
                return steps.loc[iterations].to_numpy(dtype=np.int64)
    rewards = np.asarray(logs["rewards"])  # [n, T]
    n_episodes, task_hor = rewards.shape[0], rewards.shape[-1]
    per_iter = _resolved(run_dir, ("exp_cfg", "exp_cfg", "nrollouts_per_iter"), default=1)
    n_init = n_episodes - per_iter * iterations.size
    if n_init < 0:
        raise RunDataError(
            f"{run_dir / 'logs.mat'}: {n_episodes} logged episodes < {iterations.size} iterations"
        )
    return (n_init + per_iter * iterations) * task_hor


def _resolved(run_dir: Path, keys: tuple[str, ...], default: int) -> int:
    """A leaf of the run's resolved config.yaml, or ``default`` when the file or leaf is absent."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return default
    node = yaml.safe_load(path.read_text()) or {}
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return int(node) if node is not None else default


def _mat_keys(logs: dict) -> list[str]:
    return [key for key in logs if not key.startswith("__")]
