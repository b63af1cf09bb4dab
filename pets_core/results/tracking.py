"""The MLflow run of one run directory (the files stay the source of truth; MLflow is a view).

* One MLflow run per run identity (``run.json``'s ``run_uid``, :mod:`pets_core.results.identity`),
  found again through its ``run_uid`` tag: a resumed run, a re-run, a moved or copied results dir
  and ``python -m pets_core.ingest`` all land on the same MLflow run, so nothing is duplicated.
* :func:`tracker_for` is the one way to build a :class:`Tracker` for a run (the runner and ingest
  both use it): name, tags, params and description from the config and run.json
  (:mod:`pets_core.results.naming`); the store and its lock are :mod:`pets_core.results.store`.
* Params = the flattened resolved config; metrics = one ``log_batch`` per iteration (per-value
  ``log_metric`` costs 7-17 ms on sqlite); system metrics (``system/*``: CPU, memory, disk,
  network; GPU when ``pynvml`` is installed) from MLflow's own monitor every
  :data:`SYSTEM_METRICS_INTERVAL_S` s.
* If the store cannot be reached (at the start or mid-run) the run goes on, says once on stderr
  (:func:`pets_core.notices.notice`) that tracking was skipped, and
  ``python -m pets_core.ingest <run_dir>`` adds it later, or completes and closes the run that
  stopped.
* :meth:`Tracker.start`, :meth:`Tracker.log_rows` and :meth:`Tracker.finish` are critical sections
  (:func:`pets_core.interrupts.deferred`): a Ctrl-C or SIGTERM arriving during an MLflow call
  interrupts the run once the call has returned, never half-way through a store write.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pets_core import config as config_mod
from pets_core.interrupts import deferred
from pets_core.notices import notice
from pets_core.results import naming
from pets_core.results.naming import mlflow_metrics, param_str
from pets_core.results.store import (
    UI_QUERY,
    UI_URL,
    absolute_uri,
    client_for,
    experiment_id,
    find_run,
    store_lock,
    unreachable_reason,
)

SYSTEM_METRICS_INTERVAL_S = 5.0
"""Sampling interval of MLflow's system-metrics monitor: a one-minute run gets ~12 samples."""

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
        echo: Callable[[str], None] = notice,
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
        self.params = {k: param_str(v) for k, v in params.items()}
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
        self.stopped_reason: str | None = None
        """Why tracking was skipped (None: it was not)."""
        self.log_ms: list[float] = []
        self._monitor = None

    @property
    def active(self) -> bool:
        return self.client is not None

    def skip(self, reason: str) -> None:
        self.stopped_reason = reason
        if self.uri is not None:
            ingest = naming.command_line(
                "pets_core.ingest", [self.run_dir, "--mlflow-uri", absolute_uri(self.uri)]
            )
            self.echo(
                f"MLflow tracking skipped: {reason}. The run directory is the record; "
                f"add it to MLflow later with: {ingest}"
            )
        self.client = None

    @deferred()
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
                client = client_for(self.uri)
                exp_id = experiment_id(client, self.experiment, self.uri)
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
                tracking_uri=absolute_uri(self.uri),
            )
            self._monitor.start()
        except Exception as err:  # psutil missing, ...: the run goes on without them
            self.echo(f"MLflow system metrics off: {type(err).__name__}: {err}")
            self._monitor = None

    def _stop_system_metrics(self) -> None:
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None

    @deferred()
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

    @deferred()
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


def tracker_for(
    cfg: config_mod.PetsConfig,
    run_dir: Path,
    run_info: Mapping[str, Any],
    uri: str | None,
    *,
    experiment: str | None = None,
    device: str | None = None,
    system_metrics: bool = False,
    extra_tags: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = notice,
) -> Tracker:
    """The Tracker of one run directory: experiment ``pets-<env>`` unless ``experiment``; run
    name, tags (env, variant, seed, settings fingerprint, device, run.json's ``tags`` and
    provenance), params (the flattened
    config) and description (settings that differ from the paper's); ``extra_tags`` last.
    Not started."""
    settings = config_mod.fingerprint(cfg)
    tags: dict[str, Any] = {"env": cfg.env, "variant": cfg.variant, "seed": cfg.seed}
    tags["settings_fingerprint"] = settings
    if device:
        tags["device"] = device
    return Tracker(
        uri,
        experiment=experiment or naming.experiment_name(cfg.env),
        run_name=naming.run_name(cfg.variant, cfg.seed, settings),
        run_dir=run_dir,
        run_uid=run_info["run_uid"],
        tags={
            **tags,
            **dict(run_info.get("tags") or {}),
            **naming.provenance_tags(run_info),
            **(extra_tags or {}),
        },
        params=config_mod.flatten(cfg),
        description=naming.describe_differences(cfg, run_dir),
        system_metrics=system_metrics,
        echo=echo,
    )
