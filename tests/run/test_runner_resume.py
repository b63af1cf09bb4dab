"""Kill a run with SIGKILL mid-iteration, re-run the same command: the final logs.mat equals an
uninterrupted run's, and no file is ever seen truncated (render: tests/cli/test_render.py)."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from support.runs import logs, readable, run, tiny_args

from pets_core.results.checkpoint import load_checkpoint
from pets_core.results.metrics import read_metrics_csv


@pytest.mark.slow
def test_sigkill_mid_iteration_then_rerun_equals_uninterrupted(tmp_path):
    argv = tiny_args("cartpole", iters=4)
    assert run(tmp_path / "ref", argv) == 0

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "pets_core.mbexp", *argv, "--run-dir", str(killed)]
    cmd += ["--threads", str(torch.get_num_threads())]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while readable(killed) < 2:  # iteration 2 has written logs.mat, not yet its checkpoint
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not (killed / "done.json").exists()
    readable(killed)
    assert load_checkpoint(killed)["run"]["iteration"] < 4

    assert run(killed, argv) == 0  # the same command resumes
    a, b = logs(tmp_path / "ref"), logs(killed)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not list(killed.glob(".*.tmp*"))
    assert len(read_metrics_csv(killed)) == 4
