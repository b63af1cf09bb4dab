"""Damaged run-directory files are named with their fix, never a traceback, never resumed or
ingested as if whole: real tiny runs, real files damaged by the test, a real sqlite store."""

import shutil
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from support.faults import flip_bytes, truncate
from support.runs import logs, run, tiny_args

from pets_core.cli import ingest
from pets_core.results.reader import DamagedFile, read_checkpoint

ARGV = tiny_args("cartpole", iters=2)
CKPT_FIX = "delete it to restart the run, or restore it"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two finished tiny runs (seeds 1 and 2), copied by the tests that damage them."""
    root = tmp_path_factory.mktemp("finished")
    for seed in (1, 2):
        assert run(root / f"seed{seed}", [*ARGV, "--seed", str(seed)]) == 0
    return root


def unfinished(finished, tmp_path, seed=1):
    """A copy of a finished run without its done.json: the same arguments resume it."""
    run_dir = tmp_path / f"seed{seed}"
    shutil.copytree(finished / f"seed{seed}", run_dir)
    (run_dir / "done.json").unlink()
    return run_dir


def assert_same_logs(run_dir, reference):
    """logs.mat's arrays bit for bit (the file's header holds its creation time)."""
    got, want = logs(run_dir), logs(reference)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def mbexp_process(run_dir, seed=1):
    """The runner as a user starts it: its exit code and stderr."""
    cmd = [sys.executable, "-m", "pets_core.mbexp", *ARGV, "--seed", str(seed)]
    result = subprocess.run(
        [*cmd, "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=300
    )
    return result.returncode, result.stderr


def test_flipped_checkpoint_bytes_are_named_not_resumed(finished, tmp_path):
    """Before: 64 flipped bytes resumed silently into a different run."""
    run_dir = unfinished(finished, tmp_path)
    flip_bytes(run_dir / "checkpoint.pt", n=64, at=0.5)
    code, err = mbexp_process(run_dir)
    assert code == 1
    assert err == (
        f"mbexp: error: {run_dir}/checkpoint.pt is damaged (its checksum does not match its "
        f"contents); {CKPT_FIX}\n"
    )
    assert not (run_dir / "done.json").exists()


def test_a_truncated_checkpoint_is_one_line_without_unsafe_advice(finished, tmp_path):
    """Before: a PytorchStreamReader traceback advising weights_only=False."""
    run_dir = unfinished(finished, tmp_path)
    truncate(run_dir / "checkpoint.pt", keep=0.5)
    code, err = mbexp_process(run_dir)
    assert code == 1
    assert err == (
        f"mbexp: error: {run_dir}/checkpoint.pt is damaged (not a readable checkpoint: "
        f"truncated or not one); {CKPT_FIX}\n"
    )
    assert "weights_only" not in err and "Traceback" not in err


def test_the_fix_works_deleting_the_checkpoint_restarts_the_run(finished, tmp_path):
    run_dir = unfinished(finished, tmp_path)
    truncate(run_dir / "checkpoint.pt", keep=0.3)
    (run_dir / "checkpoint.pt").unlink()
    assert run(run_dir, [*ARGV, "--seed", "1"]) == 0
    assert (run_dir / "done.json").exists()
    assert_same_logs(run_dir, finished / "seed1")


def test_a_checkpoint_from_before_checksums_still_loads(tmp_path):
    shutil.copytree("tests/data/checkpoint_452d06f", tmp_path / "old")
    state = read_checkpoint(tmp_path / "old")
    assert state["run"]["iteration"] == 1 and set(state) >= {"trainer", "mpc", "rng"}


@pytest.mark.parametrize(
    ("name", "garbage", "reason", "fix"),
    [
        ("config.yaml", "a: [\n", "not valid YAML (", "restore it (config.txt holds"),
        ("run.json", '{"run_uid": ', "not JSON: ", "restore it (it holds the run's identity"),
        ("run.json", "[1, 2]", "a JSON list, not an object", "restore it"),
        ("done.json", "\x00\x01garbage", "not JSON: ", "delete it: the same mbexp command"),
        ("done.json", '{"iterations": "two"}', "no valid 'iterations'", "delete it"),
    ],
)
def test_garbage_files_are_named_with_their_fix(finished, tmp_path, capsys, name, garbage,
                                                reason, fix):  # fmt: skip
    """Before: ScannerError / JSONDecodeError tracebacks naming no file; a garbage done.json
    made mbexp call the run complete ("nothing to do", exit 0)."""
    run_dir = unfinished(finished, tmp_path)
    (run_dir / name).write_text(garbage)
    assert run(run_dir, [*ARGV, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mbexp: error: {run_dir}/{name} is damaged ({reason}"), err
    assert fix in err and err.count("\n") == 1
    assert "already complete" not in capsys.readouterr().out


def test_a_garbage_done_json_is_not_complete_and_its_fix_finishes_the_run(finished, tmp_path):
    run_dir = unfinished(finished, tmp_path)
    (run_dir / "done.json").write_text("garbage")
    code, err = mbexp_process(run_dir)
    assert code == 2 and "done.json is damaged" in err
    (run_dir / "done.json").unlink()  # the fix it names
    code, err = mbexp_process(run_dir)
    assert code == 0, err
    assert_same_logs(run_dir, finished / "seed1")


def test_ingest_goes_on_past_bad_runs_and_lists_them(finished, tmp_path, capsys):
    """Before: a truncated metrics.csv was ingested as a FINISHED run missing an iteration, and
    a garbage config.yaml stopped ingest part-way (later runs never ingested)."""
    root = tmp_path / "results"
    good, short, bad = root / "a" / "seed1", root / "b" / "seed2", root / "c" / "seed2"
    shutil.copytree(finished / "seed1", good)
    shutil.copytree(finished / "seed2", short)
    truncate(short / "metrics.csv", keep=0.8)  # the last row cut mid-line
    shutil.copytree(finished / "seed2", bad)
    run_json = (bad / "run.json").read_text()
    (bad / "run.json").write_text(run_json.replace('"run_uid": "', '"run_uid": "x'))  # its own
    (bad / "config.yaml").write_text("ctrl_cfg: {")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert ingest.main([str(root), "--mlflow-uri", uri]) == 1
    out, err = capsys.readouterr()
    assert f"{good}: added" in out
    assert "\ningest: 2 of 3 run(s) not ingested:\n" in f"\n{err}"
    assert f"  {short}: {short}/metrics.csv is damaged (row 2 is not 8 cells)" in err
    assert f"  {bad}: {bad}/config.yaml is damaged (not valid YAML" in err
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("pets-cartpole")
    runs = client.search_runs([exp.experiment_id])
    assert [r.data.tags["seed"] for r in runs] == ["1"]
    assert runs[0].info.status == "FINISHED"


def test_ingest_checks_metrics_against_logs(finished, tmp_path, capsys):
    run_dir = tmp_path / "seed1"
    shutil.copytree(finished / "seed1", run_dir)
    lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
    (run_dir / "metrics.csv").write_text("".join(lines[:-1]))  # a whole row lost
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert ingest.main([str(run_dir), "--mlflow-uri", uri]) == 1
    err = capsys.readouterr().err
    assert f"{run_dir}/metrics.csv is damaged (1 iterations, logs.mat has 2)" in err
    truncate(run_dir / "logs.mat", keep=0.5)
    with pytest.raises(DamagedFile, match=r"logs.mat is damaged \(not a readable .mat file"):
        ingest.ingest_run(run_dir, uri)
