"""checkpoint.pt compatibility: a run directory whose checkpoint main's code wrote (452d06f, the
format of the long reference runs) resumes with today's code to the bit-identical logs.mat."""

import dataclasses
import json
import shlex
import shutil
import subprocess
import sys
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


def test_main_checkpoint_resumes_to_the_same_logs(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    argv = fixture_argv()
    assert "--threads" in argv  # resumed with the thread count that made the fixture
    result = subprocess.run(
        [sys.executable, "-m", "pets_core.mbexp", *argv, "--run-dir", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"resuming {run_dir} after iteration 1 of 3" in result.stdout
    got = scipy.io.loadmat(run_dir / "logs.mat")
    want = scipy.io.loadmat(FIXTURE / "uninterrupted-logs.mat")
    for key in ("observations", "actions", "rewards", "returns"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert got["returns"].shape == (1, 3)
    assert [r["iteration"] for r in read_metrics_csv(run_dir)] == [1.0, 2.0, 3.0]
    saved = load_checkpoint(run_dir)
    assert saved["run"]["iteration"] == 3
    assert not set(DROPPED_KEYS) & set(saved["run"])  # written in today's format
    assert json.loads((run_dir / "done.json").read_text())["iterations"] == 3
