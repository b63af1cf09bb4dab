"""MLflow: a live, searchable view of run directories (the files stay the source of truth).

* One MLflow run per run directory, found again through its ``run_dir`` tag (absolute path): a
  resumed run, a re-run and ``python -m pets_core.ingest`` all land on the same MLflow run, so
  nothing is ever duplicated.
* Params = the flattened resolved config; metrics = one ``log_batch`` per iteration (per-value
  ``log_metric`` costs 7-17 ms on sqlite); tags env, variant, seed, run_dir.
* If the store cannot be reached the run goes on, says once that tracking was skipped, and
  ``python -m pets_core.ingest <run_dir>`` adds it later.
"""

from __future__ import annotations

import base64
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_URI = "sqlite:///results/mlflow.db"
DISABLED = ("", "none", "off", "false")
METRIC_KEYS = (
    "return",
    "best_so_far",
    "train_loss",
    "holdout_mse",
    "plan_s_per_action",
    "env_steps",
    "wall_s",
)
# Fail fast against a dead server instead of mlflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def resolve_uri(cli_uri: str | None) -> str | None:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else the embedded sqlite store; None = disabled."""
    uri = cli_uri if cli_uri is not None else os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    return None if uri.strip().lower() in DISABLED else uri


def experiment_name(env: str) -> str:
    return f"pets-{env}"


def run_name(env: str, variant: str, seed: int) -> str:
    return f"{env}/{variant}/seed{seed}"


def unreachable_reason(uri: str, timeout_s: float = 3.0) -> str | None:
    """A quick probe so a dead server costs seconds, not mlflow's retry budget."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
        except urllib.error.HTTPError:
            return None  # something answers; let mlflow decide
        except (OSError, ValueError) as err:
            return f"{uri} unreachable ({getattr(err, 'reason', err)})"
        return _server_refusal(uri, timeout_s)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"cannot create {db.parent} ({err.strerror})"
        if not os.access(db.parent, os.W_OK):
            return f"{db.parent} is not writable"
    return None


def _server_refusal(uri: str, timeout_s: float) -> str | None:
    """/health answers even where the API refuses this client: ask the API once, so that a
    Host-header or credentials refusal is one clear line rather than a traceback per job."""
    request = urllib.request.Request(
        uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    )
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout_s).close()
    except urllib.error.HTTPError as err:
        host = urllib.parse.urlsplit(uri).netloc
        if err.code == 403 and b"Host header" in err.read(500):
            return (
                f"{uri} refuses requests for host {host} (403 Invalid Host header): start "
                f"`mlflow server` with --allowed-hosts {host} (README: Scaling out)"
            )
        if err.code == 401:
            return f"{uri} needs credentials (401): set MLFLOW_TRACKING_USERNAME and _PASSWORD"
    except (OSError, ValueError) as err:
        return f"{uri} unreachable ({getattr(err, 'reason', err)})"
    return None


def _client(uri: str):
    import mlflow  # deferred: ~1 s import, and a run with tracking off never pays it

    return mlflow.MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside the db, not in ./mlruns of the CWD
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / name).resolve()
        location = location.as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another job
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def init_store(uri: str, experiment_names: Iterable[str]) -> None:
    """Create / migrate the store and the experiments once, before jobs fan out (schema race)."""
    if reason := unreachable_reason(uri):
        raise RuntimeError(f"MLflow store {uri}: {reason}")
    client = _client(uri)
    for name in experiment_names:
        _experiment_id(client, name, uri)


class Tracker:
    """The MLflow run of one run directory; every method is a no-op once tracking is skipped."""

    def __init__(
        self,
        uri: str | None,
        *,
        experiment: str,
        run_name: str,
        run_dir: Path,
        tags: Mapping[str, Any],
        params: Mapping[str, Any],
        echo: Callable[[str], None] = print,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.run_dir = str(Path(run_dir).resolve())
        self.tags = {**{k: str(v) for k, v in tags.items()}, "run_dir": self.run_dir}
        self.params = {k: _param_str(v) for k, v in params.items()}
        self.echo = echo
        self.client = None
        self.run_id: str | None = None
        self.logged_through = 0
        self.finished = False
        self.created = False
        self.log_ms: list[float] = []

    @property
    def active(self) -> bool:
        return self.client is not None

    def skip(self, reason: str) -> None:
        if self.uri is not None:
            self.echo(
                f"MLflow tracking skipped: {reason}. The run directory is complete without it; "
                f"add it later with: python -m pets_core.ingest {self.run_dir} "
                f"--mlflow-uri {self.uri}"
            )
        self.client = None

    def start(self) -> Tracker:
        """Find this run dir's MLflow run (or create it) and log params + tags once."""
        if self.uri is None:
            return self
        if reason := unreachable_reason(self.uri):
            self.skip(reason)
            return self
        try:
            from mlflow.entities import Param, RunTag

            client = _client(self.uri)
            exp_id = _experiment_id(client, self.experiment, self.uri)
            quoted = self.run_dir.replace("'", "\\'")
            found = client.search_runs([exp_id], f"tags.run_dir = '{quoted}'", max_results=1)
            if found:
                run = found[0]
                self.finished = run.info.status == "FINISHED"
                history = client.get_metric_history(run.info.run_id, "return")
                self.logged_through = max((m.step for m in history), default=0)
            else:
                run = client.create_run(exp_id, run_name=self.run_name, tags=self.tags)
                self.created = True
                items = [Param(k, v) for k, v in self.params.items()]
                for i in range(0, len(items), 100):  # log_batch: at most 100 params per call
                    client.log_batch(run.info.run_id, params=items[i : i + 100])
                client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in self.tags.items()])
            self.client, self.run_id = client, run.info.run_id
        except Exception as err:  # the store is optional; the files are the record
            self.skip(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        return self

    def log_rows(self, rows: Sequence[Mapping[str, float]]) -> None:
        """Log the metrics rows not logged yet, in one log_batch (step = iteration)."""
        new = [r for r in rows if int(r["iteration"]) > self.logged_through]
        if not self.active or not new:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(row[key]), now, int(row["iteration"]))
            for row in new
            for key in METRIC_KEYS
            if row.get(key) is not None and not math.isnan(float(row[key]))
        ]
        t0 = time.perf_counter()
        try:
            for i in range(0, len(metrics), 1000):
                self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])
        except Exception as err:
            self.skip(f"logging failed ({type(err).__name__}: {err})")
            return
        self.log_ms.append(1000 * (time.perf_counter() - t0))
        self.logged_through = int(new[-1]["iteration"])

    def finish(self, artifacts: Iterable[Path], status: str = "FINISHED") -> None:
        """Upload the artifacts and close the run (skipped if it was already FINISHED)."""
        if not self.active or self.finished:
            return
        try:
            for path in artifacts:
                if Path(path).exists():
                    self.client.log_artifact(self.run_id, str(path))
            self.client.set_terminated(self.run_id, status)
            self.finished = True
        except Exception as err:
            self.skip(f"finishing the run failed ({type(err).__name__}: {err})")


def _param_str(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
