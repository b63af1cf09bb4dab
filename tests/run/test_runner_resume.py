"""Kill a run with SIGKILL mid-iteration, re-run the same command: the final logs.mat equals an
uninterrupted run's, and no file is ever seen truncated (render: tests/cli/test_render.py)."""

import numpy as np
import pytest
import torch
from support.runs import logs, readable, run, sigkill_after_logs, tiny_args

from pets_core.results.checkpoint import load_checkpoint
from pets_core.results.metrics import read_metrics_csv


@pytest.mark.slow
def test_sigkill_mid_iteration_then_rerun_equals_uninterrupted(tmp_path):
    argv = tiny_args("cartpole", iters=4)
    assert run(tmp_path / "ref", argv) == 0

    killed = tmp_path / "killed"
    sigkill_after_logs(killed, argv, "--threads", str(torch.get_num_threads()), timeout_s=120)
    assert not (killed / "done.json").exists()
    readable(killed)
    assert load_checkpoint(killed)["run"]["iteration"] < 4

    assert run(killed, argv) == 0  # the same command resumes
    a, b = logs(tmp_path / "ref"), logs(killed)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not list(killed.glob(".*.tmp*"))
    assert len(read_metrics_csv(killed)) == 4
