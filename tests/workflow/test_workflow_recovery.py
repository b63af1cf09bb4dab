"""The documented recovery line (docs/reproducing.md), for real: Snakemake killed with SIGKILL
right after its training job wrote done.json (the job finishes, Snakemake never records it)
recovers with `--unlock` once, then the same command with `--rerun-incomplete`; the run dir
resumes, nothing retrains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.workflow import REPO, copy_workflow, snakemake

pytestmark = pytest.mark.slow


def test_sigkill_after_done_json_recovers_with_unlock_then_rerun_incomplete(tmp_path: Path):
    workdir = copy_workflow(tmp_path / "work")
    config = workdir / "config/one.yaml"
    config.write_text(
        (REPO / "config/test.yaml")
        .read_text()
        .replace("variants: [PE-TSinf-CEM, D-E-CEM]", "variants: [D-E-CEM]")
        .replace("seeds: [1, 2, 3, 4]", "seeds: [1]")
    )
    run_dir = workdir / "results/one/runs/cartpole/D-E-CEM/seed1"
    target = str(run_dir.relative_to(workdir) / "done.json")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--configfile", str(config), "--cores", "1", target],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while not (run_dir / "config.yaml").exists():  # the training job has started
        assert process.poll() is None and time.monotonic() < deadline, "no job started"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # Snakemake only: its job runs on and writes done.json
    process.wait()
    while not (run_dir / "done.json").exists():
        assert time.monotonic() < deadline, "the orphaned job never finished"
        time.sleep(0.2)
    time.sleep(2)  # let the job's process exit
    metrics = (run_dir / "metrics.csv").read_text()

    assert snakemake("--configfile", str(config), "--unlock", cwd=workdir).returncode == 0
    plain = snakemake("--configfile", str(config), "--cores", "1", target, cwd=workdir)
    assert plain.returncode == 1 and "IncompleteFilesException" in plain.stdout + plain.stderr
    again = snakemake(
        "--configfile", str(config), "--cores", "1", "--rerun-incomplete", target, cwd=workdir
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (run_dir / "done.json").is_file()
    assert (run_dir / "metrics.csv").read_text() == metrics  # resumed at the end: no retraining
    log = (workdir / "results/one/logs/train/cartpole/D-E-CEM/seed1.log").read_text()
    assert "resuming" in log and "after iteration 2 of 2" in log, log[-2000:]

    docs = " ".join((REPO / "docs/reproducing.md").read_text().split())
    assert "`snakemake --unlock` once, then the same command with `--rerun-incomplete`" in docs
