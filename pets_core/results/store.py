"""The MLflow store: its URI, reachability, the cross-process lock, experiments and run lookup.

* On a sqlite store, finding-or-creating a run (and creating / migrating the store itself) holds
  an exclusive file lock beside the db (``<db>.lock``), so concurrent runs and ingests neither race
  on the schema nor create a run twice. A store whose experiments point at another folder's
  ``mlartifacts`` (a copied store) is relocated to its own folder before anything is written.
* Experiments are tagged ``mlflow.experimentKind = custom_model_development`` (MLflow 3's "Machine
  learning" kind). MLflow 3.17's UI routes by its global GenAI / Model training toggle instead
  (default GenAI, remembered per browser), so the links printed carry
  ``?workflowType=machine_learning``, which opens the runs.
* A dead server costs seconds (:func:`unreachable_reason`), not mlflow's minutes of retries.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT_URI = "sqlite:///results/mlflow.db"
DISABLED = ("", "none", "off", "false")
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
"""MLflow 3's UI opens an experiment without this tag on its GenAI pages (0 traces)."""
UI_URL = "http://127.0.0.1:5000"
UI_QUERY = "workflowType=machine_learning"
"""MLflow 3.17's UI picks GenAI or "Model training" pages from a global toggle (default GenAI,
remembered by the browser), not from the experiment's kind; this query selects Model training."""
# Fail fast against a dead server instead of mlflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def resolve_uri(cli_uri: str | None) -> str | None:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else the embedded sqlite store; None = disabled."""
    uri = cli_uri if cli_uri is not None else os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    return None if uri.strip().lower() in DISABLED else uri


def absolute_uri(uri: str | None) -> str:
    """The URI as it reads from any working directory (printed commands): a relative sqlite
    path made absolute; None (tracking was off) -> the default store, made absolute."""
    uri = uri or DEFAULT_URI
    db = _sqlite_path(uri)
    return f"sqlite:///{db.resolve()}" if db is not None and not db.is_absolute() else uri


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


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store (relative to the working directory when the
    URI is); None for a server."""
    return _sqlite_path(uri)


def runs_page(uri: str, experiment: str) -> str:
    """The UI address of an experiment's runs table (Model training pages, not GenAI), e.g.
    ``http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning``; the experiments list
    when the experiment cannot be looked up (no store yet, a server that does not answer)."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_URL
    exp_id = None
    try:
        if db := _sqlite_path(uri):
            if db.is_file():  # read-only lookup: no mlflow import, no store created
                with contextlib.closing(
                    sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
                ) as c:
                    row = c.execute(
                        "SELECT experiment_id FROM experiments WHERE name = ?", (experiment,)
                    ).fetchone()
                    exp_id = row[0] if row else None
        elif base != UI_URL:
            query = urllib.parse.urlencode({"experiment_name": experiment})
            url = f"{base}/api/2.0/mlflow/experiments/get-by-name?{query}"
            with urllib.request.urlopen(url, timeout=5) as answer:
                exp_id = json.load(answer)["experiment"]["experiment_id"]
    except (OSError, sqlite3.Error, ValueError, KeyError):
        exp_id = None
    page = f"#/experiments/{exp_id}" if exp_id is not None else "#/experiments"
    return f"{base}/{page}?{UI_QUERY}"


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


def client_for(uri: str):
    import mlflow  # deferred: ~1 s import, and a run with tracking off never pays it

    # absolute: MLflow caches a store per URI string, so a relative sqlite path would keep
    # pointing at the file of the working directory it was first opened from
    return mlflow.MlflowClient(tracking_uri=absolute_uri(uri))


def _artifact_home(uri: str) -> Path | None:
    """``<db folder>/mlartifacts``: artifacts beside the db, not in ./mlruns of the CWD."""
    db = _sqlite_path(uri)
    return (db.parent / "mlartifacts").resolve() if db is not None else None


def experiment_id(client, name: str, uri: str) -> str:
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
        client = client_for(uri)
        for name in experiment_names:
            experiment_id(client, name, uri)


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
