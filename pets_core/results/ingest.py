"""Add or complete one finished run directory's MLflow run (CLI: pets_core.cli.ingest).

Idempotent: a run already in the store (same run identity, ``run.json``'s ``run_uid`` or the
identity derived from config.yaml for older run dirs, see :mod:`pets_core.results.identity`) is
completed if it lacks metrics or artifacts and otherwise left alone, so running it twice, on a
moved or copied results dir, or from two shells at once (the store's lock serialises them), adds
nothing.
"""

from __future__ import annotations

from pathlib import Path

from pets_core.results import store
from pets_core.results.identity import read_run_info
from pets_core.results.reader import (
    DamagedFile,
    check_metrics_against_logs,
    read_checkpoint,
    read_config,
)
from pets_core.results.rundir import RunDir
from pets_core.results.tracking import tracker_for

OLD_COMMAND = "unknown (run directory made before run.json); ingested"
"""The command tag of a run directory whose run.json does not name its creator."""


def ingest_run(run_dir: Path, uri: str, experiment: str | None = None) -> tuple[str | None, str]:
    """Add or complete one run directory's MLflow run and close it FINISHED (a run whose live
    tracking stopped mid-run included); returns (run_id, what happened). A damaged file, or a
    metrics.csv that disagrees with logs.mat, raises DamagedFile (nothing is written)."""
    run = RunDir(run_dir)
    cfg = read_config(run.path)
    info = read_run_info(run.path)
    done = run.done() or {}
    rows = _rows(run.path, cfg.exp_cfg.log_cfg.neval)
    messages: list[str] = []
    tracker = tracker_for(
        cfg,
        run.path,
        info,
        uri,
        experiment=experiment,
        device=done.get("device"),
        extra_tags=None if "command" in info else {"command": OLD_COMMAND},
        echo=messages.append,
    )
    # the whole find / log / finish under the store's lock: a second ingest of the same run
    # waits, then finds it complete (no doubled metric rows)
    with store.store_lock(uri):
        tracker.start(resume=False)
        if not tracker.active:
            return None, messages[0] if messages else "tracking disabled"
        before = (tracker.logged_through, tracker.finished)
        tracker.log_rows(rows)
        tracker.finish(run.artifacts())
    if not tracker.active:
        return None, messages[-1]
    if tracker.created:
        return tracker.run_id, "added"
    if before == (int(rows[-1]["iteration"]) if rows else 0, True):
        return tracker.run_id, "already present"
    return tracker.run_id, "completed"


def _rows(run_dir: Path, neval: int) -> list[dict[str, float]]:
    """metrics.csv's rows, checked against logs.mat; the checkpoint's when it holds the same
    iterations, since they also carry what metrics.csv has no column for (``train_mse`` of P /
    PE runs)."""
    rows = check_metrics_against_logs(run_dir, neval)
    try:
        saved = read_checkpoint(run_dir)
    except DamagedFile:  # a finished run needs no checkpoint: metrics.csv is the record
        return rows
    if saved is None:
        return rows
    ckpt_rows = saved.get("run", {}).get("rows", [])
    same = [int(r["iteration"]) for r in ckpt_rows] == [int(r["iteration"]) for r in rows]
    return [{**r, **c} for r, c in zip(rows, ckpt_rows, strict=True)] if same and rows else rows
