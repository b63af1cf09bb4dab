"""MLflow: a live, searchable view of run directories (the files stay the source of truth).

* One MLflow run per run identity (``run.json``'s ``run_uid``, see :mod:`pets_core.logs`), found
  again through its ``run_uid`` tag: a resumed run, a re-run, a moved or copied results dir and
  ``python -m pets_core.ingest`` all land on the same MLflow run, so nothing is duplicated.
* On a sqlite store, finding-or-creating a run (and creating / migrating the store itself) holds
  an exclusive file lock beside the db (``<db>.lock``), so concurrent runs and ingests neither race
  on the schema nor create a run twice. A store whose experiments point at another folder's
  ``mlartifacts`` (a copied store) is relocated to its own folder before anything is written.
* Experiments are tagged ``mlflow.experimentKind = custom_model_development`` (MLflow 3's "Machine
  learning" kind). MLflow 3.17's UI routes by its global GenAI / Model training toggle instead
  (default GenAI, remembered per browser), so the links this module prints carry
  ``?workflowType=machine_learning``, which opens the runs.
* Run name ``<variant> seed<N>`` (the experiment is the env); tags env, variant, seed, run_dir,
  run_uid, device, command, ``mlflow.source.*`` (name, type, git commit); the description
  (``mlflow.note.content``) lists the settings that differ from the paper's for that variant.
* Params = the flattened resolved config; metrics = one ``log_batch`` per iteration (per-value
  ``log_metric`` costs 7-17 ms on sqlite) under keys whose meaning never depends on the variant
  (:func:`mlflow_metrics`); system metrics (``system/*``: CPU, memory, disk, network; GPU when
  ``pynvml`` is installed) from MLflow's own monitor every :data:`SYSTEM_METRICS_INTERVAL_S` s.
* If the store cannot be reached the run goes on, says once that tracking was skipped, and
  ``python -m pets_core.ingest <run_dir>`` adds it later.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import math
import os
import shlex
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_URI = "sqlite:///results/mlflow.db"
DISABLED = ("", "none", "off", "false")
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
"""MLflow 3's UI opens an experiment without this tag on its GenAI pages (0 traces)."""
UI_URL = "http://127.0.0.1:5000"
UI_QUERY = "workflowType=machine_learning"
"""MLflow 3.17's UI picks GenAI or "Model training" pages from a global toggle (default GenAI,
remembered by the browser), not from the experiment's kind; this query selects Model training."""
SYSTEM_METRICS_INTERVAL_S = 5.0
"""Sampling interval of MLflow's system-metrics monitor: a one-minute run gets ~12 samples."""
METRIC_KEYS = (
    "return",
    "best_so_far",
    "env_steps",
    "train/nll",
    "train/mse",
    "holdout/mse",
    "plan/s_per_action",
    "time/iteration_s",
    "time/wall_s",
)
"""Every key :func:`mlflow_metrics` may log; each means the same for every variant."""
# Fail fast against a dead server instead of mlflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def resolve_uri(cli_uri: str | None) -> str | None:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else the embedded sqlite store; None = disabled."""
    uri = cli_uri if cli_uri is not None else os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    return None if uri.strip().lower() in DISABLED else uri


def experiment_name(env: str) -> str:
    return f"pets-{env}"


def run_name(variant: str, seed: int) -> str:
    """``PE-TSinf-CEM seed3``: short enough that MLflow's runs table never cuts off the seed."""
    return f"{variant} seed{seed}"


# ----------------------------------------------------------------------------- metrics
def mlflow_metrics(
    rows: Sequence[Mapping[str, float]], variant: str
) -> list[tuple[str, float, int]]:
    """(key, value, step = iteration) for metrics.csv-style rows, keys of one meaning each.

    * ``train/nll``: the Gaussian NLL objective, P / PE only (``train_loss`` of those rows);
    * ``train/mse``: mean((mu - y)^2) for every variant: the row's ``train_mse`` when the runner
      recorded it, else (D / DE, whose ``train_loss`` is mean((mu - y)^2) / 2) 2 x ``train_loss``;
    * ``holdout/mse`` only where there was a holdout (NaN values are never logged);
    * ``time/iteration_s`` = the row's ``wall_s``; ``time/wall_s`` its cumulative sum (x-axis);
      ``env_steps`` (cumulative, x-axis), ``return``, ``best_so_far``, ``plan/s_per_action``.
    """
    probabilistic = variant.split("-")[0] in ("P", "PE")
    out: list[tuple[str, float, int]] = []
    cumulative = 0.0
    for row in rows:
        step = int(row["iteration"])

        def get(key: str, row: Mapping[str, float] = row) -> float:
            value = row.get(key)
            return math.nan if value is None else float(value)

        cumulative += 0.0 if math.isnan(get("wall_s")) else get("wall_s")
        loss = get("train_loss")
        mse = get("train_mse")
        if math.isnan(mse) and not probabilistic:
            mse = 2.0 * loss
        values = {
            "return": get("return"),
            "best_so_far": get("best_so_far"),
            "env_steps": get("env_steps"),
            "train/nll": loss if probabilistic else math.nan,
            "train/mse": mse,
            "holdout/mse": get("holdout_mse"),
            "plan/s_per_action": get("plan_s_per_action"),
            "time/iteration_s": get("wall_s"),
            "time/wall_s": cumulative,
        }
        out += [(k, v, step) for k, v in values.items() if not math.isnan(v)]
    return out


def run_artifacts(run_dir: Path) -> list[tuple[Path, str | None]]:
    """(file, artifact folder) of everything a run directory shows in MLflow, in a fixed order.

    logs.mat, metrics.csv, config, run.json, done.json and the final model at the top level;
    figures (``*.png``/``*.pdf``/``*.svg`` of the run dir) under ``figures/``; recorded episodes
    (``train_iter<i>/*.mp4``) under ``videos/train_iter<i>/``. Not checkpoint.pt (resume state).
    """
    run_dir = Path(run_dir)
    top = (
        "logs.mat",
        "metrics.csv",
        "config.yaml",
        "config.txt",
        "run.json",
        "done.json",
        "model.pt",
        "model.mat",
        "model.nns",
    )
    found: list[tuple[Path, str | None]] = [(run_dir / n, None) for n in top]
    for ext in ("png", "pdf", "svg"):
        found += [(p, "figures") for p in sorted(run_dir.glob(f"*.{ext}"))]
    for video in sorted(run_dir.glob("train_iter*/*.mp4"), key=_iteration_order):
        found.append((video, f"videos/{video.parent.name}"))
    return [(p, folder) for p, folder in found if p.is_file() and not p.name.startswith(".")]


def _iteration_order(path: Path) -> tuple[int, str]:
    digits = path.parent.name.removeprefix("train_iter")
    return (int(digits) if digits.isdigit() else 0, path.name)


# ----------------------------------------------------------------------------- provenance
def git_commit(path: Path | None = None) -> str | None:
    """HEAD of the git checkout holding ``path`` (default: this package), ``+dirty`` if modified."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def command_line(module: str, argv: Sequence[str]) -> str:
    """The exact command as typed, re-quoted: ``python -m pets_core.mbexp -env cartpole ...``."""
    return shlex.join(["python", "-m", module, *argv])


def provenance_tags(run_info: Mapping[str, Any]) -> dict[str, str]:
    """``mlflow.source.*`` + command from a run.json (what made the run, not what ingested it)."""
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "pets_core.mbexp"}
    if run_info.get("git_commit"):
        commit = str(run_info["git_commit"])
        tags["mlflow.source.git.commit"] = commit.removesuffix("+dirty")
        tags["git_dirty"] = str(commit.endswith("+dirty")).lower()
    if run_info.get("command"):
        tags["command"] = str(run_info["command"])
    return tags


def describe_differences(cfg, run_dir: Path | None = None) -> str:
    """Markdown run description: the settings that differ from the paper's for this variant."""
    from pets_core import config as config_mod

    variant = cfg.parsed_variant
    ca = [("model-type", variant.model), ("prop-type", variant.prop), ("opt-type", variant.opt)]
    paper = config_mod.flatten(config_mod.load_config(cfg.env, ca, seed=cfg.seed))
    ours = config_mod.flatten(cfg)
    lines = [
        f"**{cfg.env} {cfg.variant}, seed {cfg.seed}**" + (f" — `{run_dir}`" if run_dir else "")
    ]
    diffs = [k for k in ours if _param_str(ours[k]) != _param_str(paper.get(k))]
    if diffs:
        lines.append("")
        lines.append(f"Settings that differ from the paper's ({len(diffs)}):")
        lines.append("")
        lines += [
            f"- `{k}` = {_param_str(ours[k])} (paper: {_param_str(paper.get(k))})" for k in diffs
        ]
    else:
        lines.append("")
        lines.append("Paper settings (no overrides).")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the store
def unreachable_reason(uri: str, timeout_s: float = 15.0) -> str | None:
    """A quick probe so a dead server costs seconds, not mlflow's retry budget (a refused
    connection answers at once; the timeout only bounds a hung or very busy server)."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
        except urllib.error.HTTPError:
            return None  # something answers; let mlflow decide
        except (OSError, ValueError) as err:
            return f"{uri} unreachable ({getattr(err, 'reason', err)})"
        return _server_refusal(uri, timeout_s)
    if db := _sqlite_path(uri):
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


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


_HELD: dict[Path, int] = {}  # lock files this process holds, with their nesting depth


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Exclusive lock on a sqlite store (``<db>.lock`` beside it) across processes; else nothing.

    Held while a store is created or migrated and while a run is found or created: sqlite has
    no unique constraint on a tag, so "find, else create" must not interleave. Re-entrant
    within a process (flock on a second descriptor would wait for itself).
    """
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    path = db.parent.resolve() / (db.name + ".lock")
    if _HELD.get(path):
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        _HELD[path] = 1
        try:
            yield
        finally:
            _HELD[path] = 0
            fcntl.flock(f, fcntl.LOCK_UN)


def _client(uri: str):
    import mlflow  # deferred: ~1 s import, and a run with tracking off never pays it

    return mlflow.MlflowClient(tracking_uri=uri)


def _artifact_home(uri: str) -> Path | None:
    """``<db folder>/mlartifacts``: artifacts beside the db, not in ./mlruns of the CWD."""
    db = _sqlite_path(uri)
    return (db.parent / "mlartifacts").resolve() if db is not None else None


def _experiment_id(client, name: str, uri: str) -> str:
    """Find or create an experiment (call under :func:`store_lock`); tags its kind."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        home = _artifact_home(uri)
        location = (home / name).as_uri() if home is not None else None
        try:
            exp_id = client.create_experiment(
                name, artifact_location=location, tags=dict([EXPERIMENT_KIND])
            )
            return exp_id
        except Exception:  # created concurrently by a process that does not lock (a server)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.tags.get(EXPERIMENT_KIND[0]) is None:
        client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
    _relocate_if_copied(uri, exp)
    return exp.experiment_id


def _relocate_if_copied(uri: str, exp) -> None:
    """A copied sqlite store still points at the original's mlartifacts: point it at its own.

    Only experiments this module made (location ``file://<dir>/mlartifacts/<name>``) are moved,
    with their runs' artifact URIs, in one sqlite transaction.
    """
    home = _artifact_home(uri)
    location = exp.artifact_location or ""
    if home is None or not location.startswith("file://"):
        return
    old_home = Path(location.removeprefix("file://")).parent
    if old_home.name != "mlartifacts" or old_home == home:
        return
    old, new = old_home.as_uri(), home.as_uri()
    with contextlib.closing(sqlite3.connect(_sqlite_path(uri), timeout=60)) as db, db:
        db.execute(
            "UPDATE experiments SET artifact_location = ? || substr(artifact_location, ?)"
            " WHERE experiment_id = ? AND substr(artifact_location, 1, ?) = ?",
            (new, len(old) + 1, int(exp.experiment_id), len(old), old),
        )
        db.execute(
            "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?)"
            " WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
            (new, len(old) + 1, int(exp.experiment_id), len(old), old),
        )


def init_store(uri: str, experiment_names: Iterable[str]) -> None:
    """Create / migrate the store and the experiments once, before jobs fan out."""
    if reason := unreachable_reason(uri):
        raise RuntimeError(f"MLflow store {uri}: {reason}")
    with store_lock(uri):
        client = _client(uri)
        for name in experiment_names:
            _experiment_id(client, name, uri)


def find_run(client, exp_id: str, run_uid: str, run_dir: str):
    """The MLflow run of this identity; else an untagged one of the same run_dir (made before
    run identities existed), which is adopted; else None."""
    found = client.search_runs([exp_id], f"tags.run_uid = '{run_uid}'", max_results=1)
    if found:
        return found[0]
    quote = next((q for q in "'\"" if q not in run_dir), None)
    if quote is None:
        return None
    for run in client.search_runs([exp_id], f"tags.run_dir = {quote}{run_dir}{quote}"):
        if "run_uid" not in run.data.tags:
            client.set_tag(run.info.run_id, "run_uid", run_uid)
            return run
    return None


class Tracker:
    """The MLflow run of one run directory; every method is a no-op once tracking is skipped."""

    def __init__(
        self,
        uri: str | None,
        *,
        experiment: str,
        run_name: str,
        run_dir: Path,
        run_uid: str,
        tags: Mapping[str, Any],
        params: Mapping[str, Any],
        variant: str = "",
        description: str | None = None,
        system_metrics: bool = False,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.run_dir = str(Path(run_dir).resolve())
        self.run_uid = run_uid
        self.tags = {
            **{k: str(v) for k, v in tags.items()},
            "run_dir": self.run_dir,
            "run_uid": run_uid,
        }
        if description:
            self.tags["mlflow.note.content"] = description
        self.params = {k: _param_str(v) for k, v in params.items()}
        self.variant = variant or str(tags.get("variant", ""))
        self.system_metrics = system_metrics
        self.echo = echo
        self.client = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.logged_through = 0
        self.finished = False
        self.created = False
        self.status: str | None = None
        self.log_ms: list[float] = []
        self._monitor = None

    @property
    def active(self) -> bool:
        return self.client is not None

    def skip(self, reason: str) -> None:
        if self.uri is not None:
            self.echo(
                f"MLflow tracking skipped: {reason}. The run directory is complete without it; "
                f"add it later with: python -m pets_core.ingest {shlex.quote(self.run_dir)} "
                f"--mlflow-uri {shlex.quote(self.uri)}"
            )
        self.client = None

    def start(self, *, resume: bool = True) -> Tracker:
        """Find this identity's MLflow run (or create it, with params and tags) under the store
        lock; a KILLED / FAILED run found again is set RUNNING (``resume``), and system metrics
        start if asked."""
        if self.uri is None:
            return self
        if reason := unreachable_reason(self.uri):
            self.skip(reason)
            return self
        try:
            from mlflow.entities import Param, RunTag

            with store_lock(self.uri):
                client = _client(self.uri)
                exp_id = _experiment_id(client, self.experiment, self.uri)
                run = find_run(client, exp_id, self.run_uid, self.run_dir)
                if run is None:
                    run = client.create_run(exp_id, run_name=self.run_name, tags=self.tags)
                    self.created = True
                    items = [Param(k, v) for k, v in self.params.items()]
                    for i in range(0, len(items), 100):  # log_batch: at most 100 params per call
                        client.log_batch(run.info.run_id, params=items[i : i + 100])
            self.status = run.info.status
            self.finished = run.info.status == "FINISHED"
            if not self.created:
                history = client.get_metric_history(run.info.run_id, "return")
                self.logged_through = max((m.step for m in history), default=0)
                # tags a run made by older code lacks (never overwrite the creator's command)
                missing = {k: v for k, v in self.tags.items() if k not in run.data.tags}
                if missing:
                    client.log_batch(
                        run.info.run_id, tags=[RunTag(k, v) for k, v in missing.items()]
                    )
                if resume and not self.finished and run.info.status != "RUNNING":
                    client.update_run(run.info.run_id, status="RUNNING")
            self.client, self.run_id, self.experiment_id = client, run.info.run_id, exp_id
        except Exception as err:  # the store is optional; the files are the record
            self.skip(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            return self
        if self.system_metrics and not self.finished:
            self._start_system_metrics()
        return self

    def browse_hint(self) -> str:
        """Where to look: the run's page in MLflow's UI (opened on runs, not on GenAI traces)."""
        page = f"#/experiments/{self.experiment_id}/runs/{self.run_id}?{UI_QUERY}"
        if self.uri is not None and self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/{page}"
        return f"mlflow ui --backend-store-uri {shlex.quote(self.uri or '')}, then {UI_URL}/{page}"

    def _start_system_metrics(self) -> None:
        try:
            import logging

            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no INFO chatter

            self._monitor = SystemMetricsMonitor(
                self.run_id,
                sampling_interval=SYSTEM_METRICS_INTERVAL_S,
                samples_before_logging=1,
                resume_logging=not self.created,
                tracking_uri=self.uri,
            )
            self._monitor.start()
        except Exception as err:  # psutil missing, ...: the run goes on without them
            self.echo(f"MLflow system metrics off: {type(err).__name__}: {err}")
            self._monitor = None

    def _stop_system_metrics(self) -> None:
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None

    def log_rows(self, rows: Sequence[Mapping[str, float]]) -> None:
        """Log the metrics rows not logged yet, in one log_batch (step = iteration)."""
        new_from = self.logged_through
        if not self.active or not rows or int(rows[-1]["iteration"]) <= new_from:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [  # cumulative keys need every row; only the new ones are sent
            Metric(key, value, now, step)
            for key, value, step in mlflow_metrics(rows, self.variant)
            if step > new_from
        ]
        t0 = time.perf_counter()
        try:
            for i in range(0, len(metrics), 1000):
                self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])
        except Exception as err:
            self.skip(f"logging failed ({type(err).__name__}: {err})")
            return
        self.log_ms.append(1000 * (time.perf_counter() - t0))
        self.logged_through = int(rows[-1]["iteration"])

    def finish(
        self, artifacts: Iterable[tuple[Path, str | None]], status: str = "FINISHED"
    ) -> None:
        """Upload the artifacts and close the run (skipped if it was already FINISHED)."""
        self._stop_system_metrics()
        if not self.active or self.finished:
            return
        try:
            for path, folder in artifacts:
                if Path(path).exists():
                    self.client.log_artifact(self.run_id, str(path), artifact_path=folder)
            self.client.set_terminated(self.run_id, status)
            self.status = status
            self.finished = status == "FINISHED"
        except Exception as err:
            self.skip(f"finishing the run failed ({type(err).__name__}: {err})")


def _param_str(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
