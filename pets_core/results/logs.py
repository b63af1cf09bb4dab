"""logs.mat and predictions.mat: the original's result files (§logs-mat, §ctrl-logs).

``logs.mat`` holds exactly the original's keys and shapes, with n = logged episodes (initial
random + nrollouts_per_iter per iteration), T = task_hor:

* observations [n, T + 1, O] (includes the reset observation)
* actions      [n, T, A]     (noise-free, as chosen by the controller)
* rewards      [n, T]
* returns      [1, iters * neval] (MPC episodes only, iteration-major)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pets_core.results.files import write_mat
from pets_core.results.rundir import LOGS_MAT, PREDICTIONS_MAT


def write_logs_mat(
    run_dir: Path,
    observations: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    rewards: Sequence[np.ndarray],
    returns: Sequence[float],
) -> None:
    """Overwrite logs.mat with every logged episode so far (original ``MBExperiment`` format)."""
    write_mat(
        Path(run_dir) / LOGS_MAT,
        {
            "observations": np.stack(observations),  # [n, T + 1, O]
            "actions": np.stack(actions),  # [n, T, A]
            "rewards": np.stack(rewards),  # [n, T]
            "returns": np.asarray(returns, dtype=np.float64).reshape(1, -1),  # [1, iters * neval]
        },
    )


def write_predictions_mat(iter_dir: Path, log: Mapping[str, np.ndarray]) -> None:
    """train_iter<i>/predictions.mat (§ctrl-logs).

    {means, vars} [calls, H + 1, O] (log_traj_preds) or {predictions} [calls, H + 1, P, O]
    (log_particles); nothing when neither is on.
    """
    if log:
        Path(iter_dir).mkdir(parents=True, exist_ok=True)
        write_mat(Path(iter_dir) / PREDICTIONS_MAT, log)
