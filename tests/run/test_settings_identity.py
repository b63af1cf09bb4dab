"""A run's settings identity (pets_core.config.fingerprint) and what the runner does with it:
a finished run is never "complete" for other settings, a run's first trials do not depend on its
length, and a finished run asked for more trials is extended to exactly the longer run."""

import json
from pathlib import Path

import numpy as np
import pytest
from support.runs import logs, run, tiny_args

from pets_core.cli.snapshot import main as snapshot_main
from pets_core.config import fingerprint, from_yaml, load_config, settings, settings_difference

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference" / "fidelity"


def _cfg(*overrides, env="cartpole", seed=0):
    return load_config(env, [], [(k, str(v)) for k, v in overrides], seed=seed)


@pytest.mark.parametrize(
    "same",
    [
        [],
        [("exp_cfg.exp_cfg.ntrain_iters", 7)],
        [("exp_cfg.log_cfg.record_iters", "[-1]")],
        [("exp_cfg.log_cfg.nrecord", 1)],  # films the one episode it runs anyway
        [("ctrl_cfg.log_cfg.save_all_models", "true")],
        [("ctrl_cfg.graph", "never")],
        [("ctrl_cfg.precision", "fp32")],  # the default, written out
    ],
)
def test_fingerprint_ignores_what_never_changes_a_trial(same):
    base = _cfg(seed=1)
    assert fingerprint(_cfg(*same, seed=5)) == fingerprint(base)
    assert settings_difference(_cfg(*same, seed=5), base) is None


@pytest.mark.parametrize(
    ("other", "named"),
    [
        ([("exp_cfg.sim_cfg.task_hor", 20)], "exp_cfg.sim_cfg.task_hor: 200 != 20"),
        ([("exp_cfg.log_cfg.neval", 2)], "exp_cfg.log_cfg.neval: 1 != 2"),
        ([("exp_cfg.log_cfg.nrecord", 2)], "exp_cfg.log_cfg.nrecord: None != 2"),  # +1 episode
        ([("ctrl_cfg.log_cfg.log_traj_preds", "true")], "log_traj_preds: False != True"),
        ([("ctrl_cfg.precision", "bf16")], "ctrl_cfg.precision: 'fp32' != 'bf16'"),
        ([("ctrl_cfg.opt_cfg.cfg.popsize", 50)], "ctrl_cfg.opt_cfg.cfg.popsize: 400 != 50"),
    ],
)
def test_fingerprint_tells_settings_apart(other, named):
    assert fingerprint(_cfg(*other)) != fingerprint(_cfg())
    assert named in settings_difference(_cfg(), _cfg(*other))


def test_committed_runs_have_the_fingerprint_of_their_settings():
    """Computed from a committed config.yaml (older code: no precision, graph or record_iters
    leaves) it equals a new run's of the same settings, whatever the trial count: the
    pre-registered reacher / pusher seeds 4-6 at 25 trials join seeds 1-3 at 17."""
    for env in ("reacher", "pusher"):
        committed = {
            fingerprint(from_yaml(p)) for p in REFERENCE.glob(f"{env}/*/seed*/config.yaml")
        }
        longer = _cfg(("exp_cfg.exp_cfg.ntrain_iters", 25), env=env, seed=4)
        assert committed == {fingerprint(longer)}
        assert len(settings(longer)) > 30
    # pinned: the name of a setting must not change between versions of this code
    assert fingerprint(from_yaml(REFERENCE / "reacher/PE-TSinf-CEM/seed1/config.yaml")) == (
        "a992d7366326"
    )


def test_run_json_and_done_json_carry_the_fingerprint(tmp_path):
    assert run(tmp_path / "run", tiny_args("cartpole", iters=1)) == 0
    expected = fingerprint(from_yaml(tmp_path / "run" / "config.yaml"))
    for name in ("run.json", "done.json"):
        assert json.loads((tmp_path / "run" / name).read_text())["settings_fingerprint"] == expected


def test_first_trials_do_not_depend_on_the_run_length(tmp_path):
    """A 3-trial run's first 2 trials are the 2-trial run's (bit for bit, one machine), and the
    2-trial run extended to 3 is the 3-trial run: nothing before trial k reads ntrain_iters."""
    assert run(tmp_path / "two", tiny_args("cartpole", iters=2), "--seed", "4") == 0
    assert run(tmp_path / "three", tiny_args("cartpole", iters=3), "--seed", "4") == 0
    short, long = logs(tmp_path / "two"), logs(tmp_path / "three")
    assert short["returns"].shape == (1, 2) and long["returns"].shape == (1, 3)
    assert np.array_equal(short["returns"], long["returns"][:, :2])
    for key in ("observations", "actions", "rewards"):  # 1 random + 2 MPC episodes
        assert np.array_equal(short[key], long[key][:3])

    assert run(tmp_path / "two", tiny_args("cartpole", iters=3), "--seed", "4") == 0
    extended = logs(tmp_path / "two")
    for key, value in long.items():
        assert np.array_equal(extended[key], value), key
    assert json.loads((tmp_path / "two" / "done.json").read_text())["iterations"] == 3


def test_finished_run_refuses_other_settings(tmp_path, capsys):
    """Before: "... is already complete (done.json present); nothing to do", exit 0."""
    argv = tiny_args("cartpole", iters=1)
    assert run(tmp_path / "run", argv) == 0
    done = (tmp_path / "run" / "done.json").read_bytes()
    capsys.readouterr()
    other = [*argv, "-o", "ctrl_cfg.opt_cfg.cfg.popsize", "9"]
    assert run(tmp_path / "run", other) == 2
    out = capsys.readouterr()
    assert out.err == (
        f"mbexp: error: --run-dir {tmp_path / 'run'} holds a finished run with a different config "
        "(ctrl_cfg.opt_cfg.cfg.popsize: 8 != 9); use another --run-dir\n"
    )
    assert run(tmp_path / "run", argv, "--seed", "3") == 2
    assert "(seed: 0 != 3)" in capsys.readouterr().err
    assert (tmp_path / "run" / "done.json").read_bytes() == done
    # settings that never change a trial are not a different run
    assert run(tmp_path / "run", [*argv, "-o", "ctrl_cfg.graph", "never"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_finished_run_of_another_length(tmp_path, capsys):
    argv2 = tiny_args("cartpole", iters=2)
    assert run(tmp_path / "run", argv2) == 0
    capsys.readouterr()
    assert run(tmp_path / "run", tiny_args("cartpole", iters=1)) == 2
    assert capsys.readouterr().err == (
        f"mbexp: error: --run-dir {tmp_path / 'run'} holds a finished run of 2 trials, more than "
        "asked (exp_cfg.exp_cfg.ntrain_iters: 2 != 1); its first 1 are those of a 1-trial run: "
        "read them there, or use another --run-dir\n"
    )
    (tmp_path / "run" / "checkpoint.pt").unlink()  # as in results/reference/
    assert run(tmp_path / "run", tiny_args("cartpole", iters=3)) == 2
    assert capsys.readouterr().err == (
        f"mbexp: error: --run-dir {tmp_path / 'run'} holds a finished run of 2 trials and no "
        "checkpoint.pt to extend it from (exp_cfg.exp_cfg.ntrain_iters: 2 != 3); "
        "use another --run-dir\n"
    )
    assert json.loads((tmp_path / "run" / "done.json").read_text())["iterations"] == 2


def test_unfinished_run_refuses_fewer_trials_than_it_holds(tmp_path, capsys):
    assert run(tmp_path / "run", tiny_args("cartpole", iters=2)) == 0
    (tmp_path / "run" / "done.json").unlink()  # as if killed after its last checkpoint
    capsys.readouterr()
    assert run(tmp_path / "run", tiny_args("cartpole", iters=1)) == 2
    assert "holds a run of 2 trials, more than asked" in capsys.readouterr().err
    assert run(tmp_path / "run", tiny_args("cartpole", iters=2)) == 0
    assert json.loads((tmp_path / "run" / "done.json").read_text())["iterations"] == 2


def test_a_slim_checkpoint_of_a_shorter_run_extends_to_the_longer_run(tmp_path, capsys):
    """A snapshot (python -m pets_core.snapshot) of a 2-trial run whose done.json is gone (as
    Snakemake removes it before rerunning a job whose trial count changed), asked for 3: the
    replayed training stops where the 2-trial run's did (exact), then trains as the 3-trial run."""
    assert run(tmp_path / "three", tiny_args("cartpole", iters=3)) == 0
    assert run(tmp_path / "two", tiny_args("cartpole", iters=2)) == 0
    (tmp_path / "two" / "done.json").unlink()
    assert snapshot_main([str(tmp_path / "two"), str(tmp_path / "snap")]) == 0
    assert not (tmp_path / "snap" / "done.json").exists()
    capsys.readouterr()
    assert run(tmp_path / "snap", tiny_args("cartpole", iters=3)) == 0
    assert "the trainer equals the one that ran, bit for bit" in capsys.readouterr().out
    extended, long = logs(tmp_path / "snap"), logs(tmp_path / "three")
    for key, value in long.items():
        assert np.array_equal(extended[key], value), key
