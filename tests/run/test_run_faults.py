"""A run that fails on its own, or meets a second writer, a full disk or a dead tracking server:
one line saying so, the right exit status and MLflow status, commands that paste as printed.
Real processes, a real tmpfs, a real sqlite store and a real `mlflow server`."""

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from support.runs import readable, run, tiny_args

from pets_core.results.reader import read_checkpoint, read_metrics

PY = Path(sys.executable)
LR = "ctrl_cfg.prop_cfg.model_init_cfg.learning_rate"


def mbexp(run_dir, argv, **kwargs) -> subprocess.Popen:
    """`python -m pets_core.mbexp ARGV --run-dir RUN_DIR` as its own process."""
    cmd = [PY, "-m", "pets_core.mbexp", *argv, "--run-dir", str(run_dir)]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def wait_for(condition, proc, timeout_s=300.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def shell(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """A printed command pasted into bash, with this interpreter as `python`."""
    env = {**os.environ, "PATH": f"{PY.parent}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_divergence_stops_the_run_naming_the_iteration_and_fails_the_mlflow_run(tmp_path, capsys):
    """Before: non-finite weights ran to exit 0 with done.json (`train nll -`). A learning rate
    of 1e30 is finite, so it passes validation, and Adam's first step sends the weights to inf."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [a for a in tiny_args("cartpole", iters=2) if a not in ("--mlflow-uri", "none")]
    assert run(tmp_path / "run", [*argv, "-o", LR, "1e30", "--mlflow-uri", uri]) == 1
    err = capsys.readouterr().err
    assert err.endswith(
        "mbexp: error: the model diverged in the training on the initial random episodes: "
        "train loss nan, 10 of 12 weight tensors non-finite; no checkpoint was written, no "
        f"done.json. Lower {LR} (or check the weight decays)\n"
    ), err
    assert not (tmp_path / "run" / "done.json").exists()
    client = mlflow.MlflowClient(tracking_uri=uri)
    (r,) = client.search_runs([client.get_experiment_by_name("pets-cartpole").experiment_id])
    assert r.info.status == "FAILED"


def test_a_second_writer_refuses_naming_the_holder(tmp_path):
    """Before: two mbexp on one --run-dir crashed each other (one deleted the other's temp file)."""
    run_dir = tmp_path / "run"
    argv = tiny_args("cartpole", iters=200)  # still running when the second one looks
    lock = run_dir / ".lock"
    first = mbexp(run_dir, argv)
    try:
        wait_for(lambda: lock.exists() and lock.read_text(), first)
        second = mbexp(run_dir, argv)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2
        assert err == (
            f"mbexp: error: {run_dir} is in use by another run (pid {first.pid} on host "
            f"{socket.gethostname()}); wait for it to finish or stop it, or use another --run-dir\n"
        )
        assert first.poll() is None  # the holder goes on
        first.send_signal(signal.SIGKILL)  # the kernel drops its lock: nothing stale is left
        first.wait(timeout=30)
    finally:
        first.kill()
    left = readable(run_dir)
    third = mbexp(run_dir, argv)
    try:
        wait_for(lambda: lock.read_text().split()[:1] == [str(third.pid)], third)
        wait_for(lambda: readable(run_dir) > left, third)  # it resumed and went on
        third.send_signal(signal.SIGINT)
        _, err = third.communicate(timeout=120)
        assert third.returncode == 130, err  # it had the lock and was running
    finally:
        third.kill()


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (root only: CI runs as root), unmounted afterwards."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write zeros into disk/filler until it is full."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as f:
        while True:
            f.write(bytes(1 << 16))
            f.flush()
    return filler


def test_a_full_disk_is_one_line_and_the_last_checkpoint_resumes(small_disk):
    """Before: a `basic_ios::clear: iostream error` traceback."""
    run_dir = small_disk / "run"
    argv = tiny_args("cartpole", iters=40)
    proc = mbexp(run_dir, argv)
    wait_for(lambda: readable(run_dir) >= 2, proc)  # iteration 1 checkpointed
    filler = fill(small_disk)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"mbexp: error: No space left on device writing {run_dir}/")
    resume = lines[0].split("Free space, then resume with: ")[1]
    assert "checkpoint.pt included) is intact" in lines[0]
    saved = read_checkpoint(run_dir)["run"]["iteration"]  # loads: its checksum holds
    assert saved >= 1 and not (run_dir / "done.json").exists()
    assert not list(run_dir.glob(".*.tmp*"))  # no temp file left to fill the disk further
    filler.unlink()
    pasted = shell(resume, cwd=Path.cwd())
    assert pasted.returncode == 0, pasted.stderr
    assert f"resuming {run_dir} after iteration {saved} of 40" in pasted.stdout
    assert len(read_metrics(run_dir)) == 40


def test_printed_commands_paste_and_run_with_spaces_in_paths(tmp_path):
    """Before: the ingest, video and resume commands were not quoted: `-model-dir /a b/run`."""
    project = tmp_path / "my project"
    project.mkdir()
    run_dir = project / "runs" / "seed 1"
    argv = tiny_args("cartpole", iters=2)  # --mlflow-uri none: ingest comes later
    proc = mbexp(run_dir, argv, cwd=project, start_new_session=True)
    wait_for(lambda: readable(run_dir) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    resume = err.split("Resume with: ")[1].strip()
    pasted = shell(resume, cwd=project)
    assert pasted.returncode == 0, pasted.stderr
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in
             pasted.stdout.splitlines() if line.startswith(("MLflow:", "video:"))}  # fmt: skip
    ingest = lines["MLflow"].split("add it later with ")[1]
    assert shlex.split(ingest)[3] == str(run_dir.resolve())
    ingested = shell(ingest, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert f"{run_dir.resolve()}: added" in ingested.stdout
    assert (project / "results" / "mlflow.db").exists()  # the store the run would have used
    video = shell(lines["video"] + " -logdir 'videos here'", cwd=tmp_path)
    assert video.returncode == 0, video.stderr
    assert list((tmp_path / "videos here").glob("*/rollout0.mp4"))


def test_notices_survive_pythonwarnings_ignore(tmp_path):
    """Before: notices were Python warnings; PYTHONWARNINGS=ignore hid them."""
    argv = [a for a in tiny_args("cartpole", iters=1) if a not in ("--mlflow-uri", "none")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = mbexp(tmp_path / "run", [*argv, "--mlflow-uri", "http://127.0.0.1:9"], env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0
    assert "MLflow tracking skipped: http://127.0.0.1:9 unreachable" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(root: Path, port: int):
    """`mlflow server` on 127.0.0.1:port over root/mlflow.db; its process group is killed on exit
    (or earlier, by the test, with os.killpg(server.pid, SIGKILL))."""
    log = (root / f"server-{time.monotonic_ns()}.log").open("w")
    server = subprocess.Popen(
        [PY.parent / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--serve-artifacts", "--artifacts-destination", str(root / "artifacts")],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240  # seconds on a loaded 2-core box
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
                break
            assert server.poll() is None and time.monotonic() < deadline, "no mlflow server"
            time.sleep(0.5)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()


@pytest.mark.slow
def test_a_server_dying_mid_run_is_said_and_ingest_completes_the_run(tmp_path):
    """Before: the MLflow run stayed RUNNING with 3 of 12 steps while the closing lines printed
    the run and a browse link as if all were there."""
    port, run_dir, iters = _free_port(), tmp_path / "run", 12
    uri = f"http://127.0.0.1:{port}"
    argv = [a for a in tiny_args("cartpole", iters=iters) if a not in ("--mlflow-uri", "none")]
    with mlflow_server(tmp_path, port) as server:
        proc = mbexp(run_dir, [*argv, "--mlflow-uri", uri])
        wait_for(lambda: readable(run_dir) >= 3, proc)
        os.killpg(server.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err  # the run goes on: the files are the record
    assert "MLflow tracking skipped: logging failed" in err
    (said,) = [line for line in out.splitlines() if line.startswith("MLflow:")]
    assert said.startswith("MLflow:  tracking stopped after iteration ")
    assert "browse:" not in out
    ingest = said.split("Fill it in with: ")[1]
    with mlflow_server(tmp_path, port):
        pasted = shell(ingest, cwd=tmp_path)
        assert pasted.returncode == 0, pasted.stderr
        assert f"\n{run_dir}: completed (run " in f"\n{pasted.stdout}", pasted.stdout
        client = mlflow.MlflowClient(tracking_uri=uri)
        (r,) = client.search_runs([client.get_experiment_by_name("pets-cartpole").experiment_id])
        assert r.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "return")]
        assert sorted(steps) == list(range(1, iters + 1))
