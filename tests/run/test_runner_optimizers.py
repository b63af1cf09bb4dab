"""iCEM and MPPI in the runner: seeded runs replay exactly; a killed run resumes to the same logs
(iCEM's elites never outlive an episode, so the between-iteration checkpoint is complete)."""

import numpy as np
import pytest
from support.runs import logs, run, sigkill_after_logs, tiny_args

from pets_core.results.checkpoint import load_checkpoint


@pytest.mark.parametrize("variant", ["PE-TSinf-iCEM", "PE-TSinf-MPPI"])
def test_same_seed_same_logs_other_seed_differs(tmp_path, variant):
    argv = tiny_args("cartpole", variant, iters=2)
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert run(tmp_path / name, argv, "--seed", seed) == 0
    a, b, c = (logs(tmp_path / n) for n in "abc")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # the planned episodes (the first one is random), where the optimizer's draws show
    assert not np.array_equal(a["actions"][1:], c["actions"][1:])


@pytest.mark.slow
def test_icem_run_killed_mid_iteration_then_rerun_equals_uninterrupted(tmp_path):
    argv = tiny_args("cartpole", "PE-TSinf-iCEM", iters=3)
    assert run(tmp_path / "ref", argv) == 0
    killed = tmp_path / "killed"
    sigkill_after_logs(killed, argv)
    assert load_checkpoint(killed)["run"]["iteration"] < 3
    assert run(killed, argv) == 0  # the same command resumes
    a, b = logs(tmp_path / "ref"), logs(killed)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
