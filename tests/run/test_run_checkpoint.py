"""checkpoint.pt compatibility: a run directory whose checkpoint main's code wrote (452d06f, the
format of the long reference runs) resumes with today's code.

Two claims, tested separately because floats are not bit-identical across CPU families (oneDNN and
MKL take other kernel paths on other instruction sets; the fixture was made on an Intel host):
* the old format still resumes to the committed uninterrupted run: the part read back from the
  fixture bit for bit, the part recomputed here to a stated tolerance, every shape and count exact;
* the resume itself is exact: on this machine, a resume killed mid-way and resumed again gives the
  uninterrupted resume's logs.mat bit for bit.
"""

import dataclasses
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io

from pets_core.results.checkpoint import load_checkpoint
from pets_core.results.metrics import read_metrics_csv
from pets_core.run.checkpoint import DROPPED_KEYS, RunState

FIXTURE = Path(__file__).parents[1] / "data" / "checkpoint_452d06f"
REPO = Path(__file__).resolve().parents[2]


def fixture_argv() -> list[str]:
    """The command that made the fixture (run.json), without its --run-dir."""
    words = shlex.split(json.loads((FIXTURE / "run.json").read_text())["command"])
    assert words[:3] == ["python", "-m", "pets_core.mbexp"]
    i = words.index("--run-dir")
    return words[3:i] + words[i + 2 :]


def test_fixture_is_the_old_format():
    saved = load_checkpoint(FIXTURE)
    assert saved["run"]["iteration"] == 1
    assert set(DROPPED_KEYS) <= set(saved["run"])  # the key today's RunState no longer has
    assert not set(DROPPED_KEYS) & {f.name for f in dataclasses.fields(RunState)}


KEYS = ("observations", "actions", "rewards", "returns")
# Observed across CPU families: max relative gap 6.4e-7 (AMD EPYC against the fixture's Intel
# host, 32 of 144 elements). 1e-4 leaves room for the drift to grow over an episode, and is still
# four orders below what a changed algorithm (another action, another model) produces.
CROSS_CPU_RTOL = 1e-4
CROSS_CPU_ATOL = 1e-6


def _resume(run_dir: Path) -> subprocess.Popen:
    """Start the fixture's command (its thread count included) on run_dir."""
    argv = fixture_argv()
    assert "--threads" in argv  # resumed with the thread count that made the fixture
    return subprocess.Popen(
        [sys.executable, "-m", "pets_core.mbexp", *argv, "--run-dir", str(run_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _resumed_copy(run_dir: Path) -> tuple[str, dict[str, np.ndarray]]:
    shutil.copytree(FIXTURE, run_dir)
    out, err = _resume(run_dir).communicate(timeout=300)
    assert (run_dir / "done.json").exists(), err
    return out, _logs(run_dir / "logs.mat")


def _logs(path: Path) -> dict[str, np.ndarray]:
    data = scipy.io.loadmat(path)
    return {key: data[key] for key in KEYS}


def test_main_checkpoint_resumes_to_the_same_logs(tmp_path):
    run_dir = tmp_path / "run"
    out, got = _resumed_copy(run_dir)
    assert f"resuming {run_dir} after iteration 1 of 3" in out
    want = _logs(FIXTURE / "uninterrupted-logs.mat")
    before = _logs(FIXTURE / "logs.mat")  # what the fixture had logged: read back, not recomputed
    for key in KEYS:
        assert got[key].shape == want[key].shape, key
    assert got["returns"].shape == (1, 3)
    n = before["observations"].shape[0]  # episodes logged before the checkpoint (random + iter 1)
    for key in ("observations", "actions", "rewards"):
        np.testing.assert_array_equal(got[key][:n], before[key], err_msg=key)
        np.testing.assert_allclose(
            got[key][n:], want[key][n:], rtol=CROSS_CPU_RTOL, atol=CROSS_CPU_ATOL, err_msg=key
        )
    np.testing.assert_array_equal(got["returns"][:, :1], before["returns"])
    np.testing.assert_allclose(got["returns"], want["returns"], rtol=CROSS_CPU_RTOL)
    assert [r["iteration"] for r in read_metrics_csv(run_dir)] == [1.0, 2.0, 3.0]
    saved = load_checkpoint(run_dir)
    assert saved["run"]["iteration"] == 3
    assert not set(DROPPED_KEYS) & set(saved["run"])  # written in today's format
    assert json.loads((run_dir / "done.json").read_text())["iterations"] == 3


def test_main_checkpoint_resume_killed_and_resumed_is_bit_exact(tmp_path):
    # both sides computed here, on this machine: the uninterrupted resume, and one SIGKILLed as
    # soon as iteration 2 has written logs.mat (before its checkpoint), then resumed again
    _, uninterrupted = _resumed_copy(tmp_path / "uninterrupted")

    killed = tmp_path / "killed"
    shutil.copytree(FIXTURE, killed)
    logged = _logs(FIXTURE / "logs.mat")["observations"].shape[0]
    proc = _resume(killed)
    try:
        deadline = time.monotonic() + 300
        while _episodes(killed / "logs.mat") <= logged:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert not (killed / "done.json").exists()
    done = load_checkpoint(killed)["run"]["iteration"]  # 1 unless iteration 2 trained in the
    assert done in (1, 2)  # few ms between its logs.mat and the kill

    out, err = _resume(killed).communicate(timeout=300)
    assert f"resuming {killed} after iteration {done} of 3" in out, err
    resumed = _logs(killed / "logs.mat")
    for key in KEYS:
        np.testing.assert_array_equal(resumed[key], uninterrupted[key], err_msg=key)


def _episodes(logs_mat: Path) -> int:
    """Episodes logs.mat holds now (0 while it is being replaced)."""
    try:
        return scipy.io.loadmat(logs_mat)["observations"].shape[0]
    except (OSError, ValueError, KeyError):
        return 0
