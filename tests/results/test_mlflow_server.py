"""The workflow against a real `mlflow server` (the multi-machine setup), on loopback.

The server binds all interfaces and knows itself by 127.0.0.2 only (--allowed-hosts); clients reach
it through 127.0.0.2 (allowed) or 127.0.0.3 (refused: MLflow 3's Host-header check, as a client on
another machine using an address the server was not told about). Artifacts go through the server
(--serve-artifacts) into its --artifacts-destination; the server is killed at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from support.workflow import REPO, copy_workflow, snakemake

from pets_core.results import store

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:  # not listening (yet)
        return 0


@contextlib.contextmanager
def _server(root: Path, env: dict, *extra: str):
    """`mlflow server --host 0.0.0.0 --allowed-hosts 127.0.0.2:PORT --serve-artifacts` in root,
    killed (its whole process group) on exit; yields the port."""
    port = _free_port()
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [Path(sys.executable).parent / "mlflow", "server", "--host", "0.0.0.0", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
         "--allowed-hosts", f"127.0.0.2:{port}", *extra],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240  # seconds on a loaded 2-core box
        while _status(f"http://127.0.0.2:{port}/health") != 200:
            assert process.poll() is None, (root / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(0.5)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):  # its group may be gone already
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mlflow-server")
    with _server(root, dict(os.environ)) as port:
        yield {"port": port, "root": root}


def test_host_header_check_refuses_unlisted_addresses_with_a_clear_reason(server: dict) -> None:
    port = server["port"]
    api = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status(f"http://127.0.0.3:{port}/health") == 200  # the probe a naive client trusts
    assert _status(f"http://127.0.0.3:{port}{api}") == 403
    assert _status(f"http://127.0.0.2:{port}{api}") == 200
    reason = store.unreachable_reason(f"http://127.0.0.3:{port}")
    assert reason is not None and f"--allowed-hosts 127.0.0.3:{port}" in reason, reason
    assert store.unreachable_reason(f"http://127.0.0.2:{port}") is None


def _workflow(tmp_path: Path, uri: str, seeds: list[int]) -> tuple[Path, object]:
    workdir = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["experiments"]["test"]["seeds"] = seeds
    config["mlflow"] = {"tracking_uri": uri}
    (workdir / "config/server.yaml").write_text(yaml.safe_dump(config))
    return workdir, snakemake("--configfile", "config/server.yaml", "--cores", "4", cwd=workdir)


def test_refused_client_fails_before_any_job_with_the_fix_named(server, tmp_path) -> None:
    uri = f"http://127.0.0.3:{server['port']}"
    workdir, result = _workflow(tmp_path, uri, [1])
    assert result.returncode == 1  # Snakemake's exit status for a workflow error
    assert "Error in rule init_mlflow" in result.stdout + result.stderr
    log = (workdir / "results/server/logs/init_mlflow.log").read_text()
    assert f"--allowed-hosts 127.0.0.3:{server['port']}" in log.strip().splitlines()[-1], log
    assert not (workdir / "results/server/runs").exists()  # no training job started


def test_workflow_end_to_end_through_the_server(server: dict, tmp_path: Path) -> None:
    """4 runs (2 variants x 2 seeds) log live to the server; artifacts land on the server side."""
    import mlflow

    uri = f"http://127.0.0.2:{server['port']}"
    workdir, result = _workflow(tmp_path, uri, [1, 2])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for run_dir in (workdir / "results/server/runs/cartpole").glob("*/seed*"):
        log = workdir / "results/server/logs/train/cartpole" / f"{run_dir.parent.name}/{run_dir.name}.log"
        assert "tracking skipped" not in log.read_text() and f"browse:  {uri}/#/" in log.read_text()
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("pets-cartpole")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied, not a path
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name.rsplit(" ", 1)[0] for r in runs) == [
        f"{v} seed{s}" for v in ("D-E-CEM", "PE-TSinf-CEM") for s in (1, 2)
    ]
    assert {r.data.tags["config"] for r in runs} == {"server"}
    for run in runs:
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "return")] == [1, 2]
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "logs.mat" in names, names
        stored = server["root"] / "artifacts" / experiment.experiment_id / run.info.run_id
        variant, seed, _ = run.info.run_name.split(" ")  # "PE-TSinf-CEM seed1 <settings>"
        local = workdir / "results/server/runs/cartpole" / variant / seed / "logs.mat"
        # uploaded through the server, byte for byte
        assert (stored / "artifacts/logs.mat").read_bytes() == local.read_bytes()
    assert not list(workdir.rglob("mlruns")) and not list(workdir.rglob("mlartifacts"))


def test_credentials_refusal_is_one_line_and_env_credentials_are_sent(monkeypatch) -> None:
    """MLflow's basic-auth app (needs mlflow[auth], not pinned here) answers 401 without valid
    credentials; a stand-in HTTP server that accepts exactly admin:pw checks what the probe
    sends."""
    import base64
    import http.server
    import threading

    good = "Basic " + base64.b64encode(b"admin:pw").decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # the http.server API
            ok = self.path == "/health" or self.headers.get("Authorization") == good
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        assert store.unreachable_reason(uri) == (
            f"{uri} needs credentials (401): set MLFLOW_TRACKING_USERNAME and _PASSWORD"
        )
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        assert "needs credentials (401)" in store.unreachable_reason(uri)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
        assert store.unreachable_reason(uri) is None
    finally:
        httpd.shutdown()
        httpd.server_close()
