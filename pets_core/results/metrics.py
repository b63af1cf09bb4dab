"""metrics.csv, and the one definition of best-so-far return and env steps (runner and analysis).

metrics.csv: one row per MPC iteration, rewritten atomically.

Definitions (§experiment), used by the runner's metrics rows and by the analysis of logs.mat:

* **best-so-far** after iteration i: the maximum return of every evaluated episode (the first
  ``neval`` of each iteration) up to and including iteration i. With ``neval = 1`` this is the
  original plotter's ``np.maximum.accumulate(returns)``; with ``neval > 1`` it is the same running
  maximum over single episodes, read at the end of each iteration (not a maximum of means).
* **env steps** after iteration i: every env step taken so far, i.e. ``task_hor`` times the initial
  random episodes plus ``max(nrecord, neval, nrollouts_per_iter)`` episodes per iteration
  (evaluation-only episodes included: they are real interaction with the env).
* **MPC env steps** after iteration i: the same without the initial random episodes. This is the x
  of the original's published curves: their first point (trial 1) is at one task horizon (200
  steps on cartpole, 150 on reacher / pusher) and 100 trials end at 15,000 steps, not 15,150.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pets_core.results.files import write_text
from pets_core.results.rundir import METRICS_CSV

COLUMNS = (
    "iteration",
    "env_steps",
    "return",
    "best_so_far",
    "train_loss",
    "holdout_mse",
    "plan_s_per_action",
    "wall_s",
)
"""train_loss / holdout_mse: of the training that produced the model acting in this iteration."""


def episodes_per_iteration(*, nrecord: int, neval: int, nrollouts_per_iter: int) -> int:
    """MPC episodes the loop runs per iteration (§loop step 3b)."""
    return max(nrecord, neval, nrollouts_per_iter)


def env_steps(
    iteration: int | np.ndarray,
    *,
    task_hor: int,
    ninit_rollouts: int,
    episodes_per_iter: int,
) -> int | np.ndarray:
    """Env steps taken by the end of MPC iteration ``iteration`` (0: after the random episodes).

    ``ninit_rollouts=0`` gives the MPC env steps (the x of the original's curves).
    """
    steps = task_hor * (ninit_rollouts + episodes_per_iter * np.asarray(iteration, dtype=np.int64))
    return int(steps) if steps.ndim == 0 else steps


def best_so_far(returns: Sequence[float] | np.ndarray, neval: int = 1) -> np.ndarray:
    """Evaluated returns ``[iters * neval]`` (iteration-major) -> best-so-far ``[iters]``.

    The last entry (the run's final best-so-far) does not depend on ``neval``.
    """
    flat = np.asarray(returns, dtype=float).reshape(-1)  # [iters * neval]
    if flat.size == 0:
        return np.full(0, math.nan)
    return np.maximum.accumulate(flat.reshape(-1, neval).max(axis=1))  # [iters]


def write_metrics_csv(run_dir: Path, rows: Sequence[Mapping[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
    write_text(Path(run_dir) / METRICS_CSV, buf.getvalue())


def read_metrics_csv(run_dir: Path) -> list[dict[str, float]]:
    with open(Path(run_dir) / METRICS_CSV, newline="") as f:
        return [
            {k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
