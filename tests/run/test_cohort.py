"""Seeds in lockstep (``mbexp --seeds``): each cohort seed's run equals its single run, bit for bit
on this machine; cohorts resume, catch up and refuse bad input in one line."""

import numpy as np
import pytest
import torch
from support.runs import logs, run, sigkill_after_logs, tiny_args

from pets_core.cli import mbexp
from pets_core.results.checkpoint import load_checkpoint
from pets_core.results.metrics import read_metrics_csv
from pets_core.results.rundir import RunDir

TIMING = ("plan_s_per_action", "wall_s")
"""metrics.csv columns that are wall-clock measurements (a cohort seed's is its share)."""


def assert_same_run(single, cohort_seed) -> None:
    """logs.mat, metrics (but timings) and the checkpoint's model, Adam and RNGs: bit for bit."""
    a, b = logs(single), logs(cohort_seed)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    rows_a, rows_b = read_metrics_csv(single), read_metrics_csv(cohort_seed)
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ra:
            if key not in TIMING:
                np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
    ca, cb = load_checkpoint(single), load_checkpoint(cohort_seed)
    for name, t in ca["trainer"]["model"].items():
        assert torch.equal(t, cb["trainer"]["model"][name]), name
    assert ca["rng"]["train"] == cb["rng"]["train"]
    assert ca["rng"]["env"] == cb["rng"]["env"]
    assert torch.equal(ca["mpc"]["torch_generator"], cb["mpc"]["torch_generator"])
    assert ca["mpc"]["np_rng"] == cb["mpc"]["np_rng"]


@pytest.mark.parametrize(
    "variant", ["PE-TSinf-CEM", "PE-TS1-iCEM", "DE-DS-MPPI", "D-E-Random", "P-MM-CEM"]
)
def test_cohort_seeds_equal_their_single_runs(tmp_path, variant):
    argv = tiny_args("cartpole", variant, iters=2)
    for seed in (3, 5):
        assert run(tmp_path / f"single{seed}", argv, "--seed", str(seed)) == 0
    assert run(tmp_path / "cohort" / "seed{seed}", argv, "--seeds", "3,5") == 0
    for seed in (3, 5):
        assert_same_run(tmp_path / f"single{seed}", tmp_path / "cohort" / f"seed{seed}")
        done = RunDir(tmp_path / "cohort" / f"seed{seed}").done()
        assert done["seed"] == seed and done["cohort"] == [3, 5] and done["iterations"] == 2
    # the two seeds are different runs: a mix-up could not pass the comparison above
    assert not np.array_equal(
        logs(tmp_path / "single3")["actions"], logs(tmp_path / "single5")["actions"]
    )


def test_seeds_at_different_iterations_catch_up_then_go_on_together(tmp_path):
    """Seed 1 finished 1 trial alone, seed 2 is new: asked for 3, seed 2 first catches up,
    then both go on; each equals its uninterrupted 3-trial single run."""
    argv3 = tiny_args("cartpole", iters=3)
    for seed in (1, 2):
        assert run(tmp_path / f"single{seed}", argv3, "--seed", str(seed)) == 0
    assert run(tmp_path / "cohort" / "seed1", tiny_args("cartpole", iters=1), "--seed", "1") == 0
    assert run(tmp_path / "cohort" / "seed{seed}", argv3, "--seeds", "1,2") == 0
    for seed in (1, 2):
        assert_same_run(tmp_path / f"single{seed}", tmp_path / "cohort" / f"seed{seed}")


@pytest.mark.slow
def test_killed_cohort_resumes_to_the_single_runs(tmp_path):
    argv = tiny_args("cartpole", iters=4)
    threads = ("--threads", str(torch.get_num_threads()))
    for seed in (1, 2):
        assert run(tmp_path / f"single{seed}", argv, "--seed", str(seed), *threads) == 0
    template = tmp_path / "cohort" / "seed{seed}"
    sigkill_after_logs(
        template, argv, "--seeds", "1,2", *threads, timeout_s=120, watch=tmp_path / "cohort/seed1"
    )
    assert not (tmp_path / "cohort" / "seed1" / "done.json").exists()
    assert run(template, argv, "--seeds", "1,2", *threads) == 0  # the same command resumes
    for seed in (1, 2):
        assert_same_run(tmp_path / f"single{seed}", tmp_path / "cohort" / f"seed{seed}")


def test_a_finished_seed_is_left_alone(tmp_path, capsys):
    argv = tiny_args("cartpole", iters=1)
    assert run(tmp_path / "c" / "seed{seed}", argv, "--seeds", "1,2") == 0
    before = (tmp_path / "c" / "seed1" / "done.json").read_bytes()
    capsys.readouterr()
    assert run(tmp_path / "c" / "seed{seed}", argv, "--seeds", "1,2") == 0
    assert capsys.readouterr().out.count("is already complete") == 2
    assert (tmp_path / "c" / "seed1" / "done.json").read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "1,2,1"], "--seeds repeats seed 1 (got 1,2,1)"),
        (["--seeds", "1,x"], "--seeds must be a comma-separated list of integers"),
        (["--seeds", "1,-2"], "--seeds must be in 0..4294967295 (got -2)"),
        (["--seed", "1", "--seeds", "2,3"], "--seed and --seeds: give one of them"),
    ],
)
def test_bad_seeds_are_one_line_and_write_nothing(tmp_path, capsys, extra, message):
    code = run(tmp_path / "c" / "seed{seed}", tiny_args("cartpole"), *extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_a_cohort_run_dir_needs_the_seed_field(tmp_path, capsys):
    code = run(tmp_path / "c", tiny_args("cartpole"), "--seeds", "1,2")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        f"mbexp: error: --run-dir {tmp_path / 'c'}: several --seeds need {{seed}} in it, where "
        f"each seed's directory differs (e.g. {tmp_path / 'c'}/seed{{seed}})"
    )
    assert not (tmp_path / "c").exists()


def test_a_seed_dir_of_other_settings_refuses_the_whole_cohort(tmp_path, capsys):
    argv = tiny_args("cartpole", iters=1)
    other = [*argv, "-o", "ctrl_cfg.opt_cfg.cfg.popsize", "9"]
    assert run(tmp_path / "c" / "seed2", other, "--seed", "2") == 0
    capsys.readouterr()
    assert run(tmp_path / "c" / "seed{seed}", argv, "--seeds", "1,2") == 2
    err = capsys.readouterr().err
    seed2 = tmp_path / "c" / "seed2"
    assert f"--run-dir {seed2} holds a finished run with a different config" in err
    assert "ctrl_cfg.opt_cfg.cfg.popsize: 9 != 8" in err
    assert not (tmp_path / "c" / "seed1").exists()  # nothing started for the other seed


def test_seeds_without_run_dir_go_under_one_timestamped_folder(tmp_path, capsys):
    assert mbexp.main([*tiny_args("cartpole"), "-logdir", str(tmp_path), "--seeds", "4,7"]) == 0
    (stamp,) = tmp_path.iterdir()
    assert sorted(p.name for p in stamp.iterdir()) == ["seed4", "seed7"]
    assert all(RunDir(p).is_complete for p in stamp.iterdir())
