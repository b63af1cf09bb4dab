"""`python -m pets_core.snapshot`: an unfinished run without its model weights resumes by
replaying its model training, to the uninterrupted run's logs.mat bit for bit (both made here)."""

import json

import numpy as np
import pytest
import torch
from support.runs import logs, run, sigkill_after_logs, tiny_args

from pets_core.cli.snapshot import main as snapshot_main
from pets_core.results.checkpoint import load_checkpoint, pack
from pets_core.run.checkpoint import trainer_digest


def _killed_run(tmp_path, argv):
    killed = tmp_path / "killed"
    sigkill_after_logs(killed, argv, "--threads", str(torch.get_num_threads()), timeout_s=120)
    assert not (killed / "done.json").exists()
    return killed


@pytest.mark.parametrize("variant", ["PE-TSinf-CEM", "D-E-CEM"])
def test_a_snapshot_resumes_to_the_uninterrupted_logs(tmp_path, capsys, variant):
    argv = tiny_args("cartpole", variant, iters=4)
    assert run(tmp_path / "ref", argv) == 0
    killed = _killed_run(tmp_path, argv)
    full = load_checkpoint(killed)
    assert 1 <= full["run"]["iteration"] < 4

    snap = tmp_path / "snap"
    assert snapshot_main([str(killed), str(snap)]) == 0
    slim = load_checkpoint(snap)
    assert "trainer" not in slim and slim["trainer_digest"] == trainer_digest(full["trainer"])
    capsys.readouterr()

    assert run(snap, argv) == 0
    out = capsys.readouterr().out
    assert f"after iteration {full['run']['iteration']} of 4" in out
    assert "the trainer equals the one that ran, bit for bit" in out
    a, b = logs(tmp_path / "ref"), logs(snap)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    done = json.loads((snap / "done.json").read_text())
    assert done["replays"] == [{"after_iteration": full["run"]["iteration"], "exact": True}]
    assert "replays" not in json.loads((tmp_path / "ref" / "done.json").read_text())


def test_a_replay_that_differs_in_rounding_is_reported_not_hidden(tmp_path, capsys):
    argv = tiny_args("cartpole", iters=3)
    snap = tmp_path / "snap"
    assert snapshot_main([str(_killed_run(tmp_path, argv)), str(snap)]) == 0
    ckpt = load_checkpoint(snap)
    ckpt["trainer_digest"] = "0" * 64  # what another CPU's rounding looks like to the digest
    torch.save(pack(ckpt), snap / "checkpoint.pt")
    assert run(snap, argv) == 0
    assert "differs from the one that ran in rounding" in capsys.readouterr().out
    assert json.loads((snap / "done.json").read_text())["replays"][0]["exact"] is False


@pytest.mark.parametrize(
    "damage, message",
    [
        ("rng", "left the training RNG elsewhere than the run's"),
        ("episodes", "checkpoint holds 1 episodes, its training used 2"),
    ],
)
def test_a_replay_that_cannot_match_the_run_is_refused(tmp_path, capsys, damage, message):
    argv = tiny_args("cartpole", iters=3)
    snap = tmp_path / "snap"
    assert snapshot_main([str(_killed_run(tmp_path, argv)), str(snap)]) == 0
    ckpt = load_checkpoint(snap)
    if damage == "rng":  # the state a training of other data sizes leaves behind
        ckpt["rng"]["train"] = np.random.default_rng(12345).bit_generator.state
    else:
        ckpt["run"]["episodes"] = ckpt["run"]["episodes"][:1]
    torch.save(pack(ckpt), snap / "checkpoint.pt")
    capsys.readouterr()
    assert run(snap, argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (snap / "done.json").exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("no-checkpoint", "no checkpoint.pt, so nothing to resume from"),
        ("finished", "is finished (done.json)"),
        ("other-run", "holds something else"),
    ],
)
def test_bad_snapshot_input_is_one_line(tmp_path, capsys, case, message):
    argv = tiny_args("cartpole", iters=2)
    src = tmp_path / "src"
    if case == "no-checkpoint":
        src.mkdir()
    else:
        assert run(src, argv) == 0
    dst = tmp_path / "dst"
    if case == "other-run":
        (src / "done.json").unlink()
        assert run(tmp_path / "other", argv) == 0
        dst = tmp_path / "other"
    capsys.readouterr()
    assert snapshot_main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
