"""PETS learns: a small CPU cartpole setting reaches a best-so-far return >= 150 in 10 iterations.

Setting (PE-TSinf-CEM, seed 0): CEM popsize 50 / 5 elites / 5 iterations, 5 particles (one per
member), plan horizon 20, 3 x 128 hidden units; everything else is the paper's cartpole config
(task_hor 200, 5 epochs per training). Measured: best-so-far 152.9 at iteration 7, 174.7 at 9.
"""

import pytest
import torch

from pets_core.cli import mbexp
from pets_core.results.metrics import read_metrics_csv

SMALL_CARTPOLE = {
    "exp_cfg.exp_cfg.ntrain_iters": 10,
    "ctrl_cfg.opt_cfg.cfg.popsize": 50,
    "ctrl_cfg.opt_cfg.cfg.num_elites": 5,
    "ctrl_cfg.prop_cfg.npart": 5,
    "ctrl_cfg.opt_cfg.plan_hor": 20,
    "ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims": "128,128,128",
}


@pytest.mark.slow
def test_small_cartpole_reaches_150_within_10_iterations(tmp_path):
    argv = ["-env", "cartpole", "--seed", "0", "--device", "cpu", "--threads", "1"]
    for path, value in SMALL_CARTPOLE.items():
        argv += ["-o", path, str(value)]
    threads = torch.get_num_threads()
    try:
        rc = mbexp.main([*argv, "--run-dir", str(tmp_path), "--mlflow-uri", "none"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    best = [row["best_so_far"] for row in read_metrics_csv(tmp_path)]
    assert len(best) == 10
    assert max(best) >= 150, best
