"""`python -m pets_core.ingest DIR... [--mlflow-uri URI]`: add finished run directories to MLflow.

Idempotent: a run already in the store (same run identity, ``run.json``'s ``run_uid`` or the
identity derived from config.yaml for older run dirs, see :mod:`pets_core.logs`) is completed if
it lacks metrics or artifacts and otherwise left alone, so running it twice, on a moved or copied
results dir, or from two shells at once (the store's lock serialises them), adds nothing. Folders
that hold a store's artifacts (``mlartifacts``, ``mlruns``) are never searched for runs. Use it
for runs whose live tracking was skipped, or for run directories made on another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from pets_core import config as config_mod
from pets_core import tracking
from pets_core.checkpoint import load_checkpoint
from pets_core.logs import DONE_JSON, read_run_info
from pets_core.metrics import METRICS_CSV, read_metrics_csv

SKIPPED_FOLDERS = ("mlartifacts", "mlruns")
"""MLflow artifact stores: they hold uploaded copies of run dirs (done.json included)."""


def find_run_dirs(roots: Sequence[Path]) -> Iterator[Path]:
    """Directories holding done.json (the completion marker), searched recursively, sorted,
    skipping hidden folders and artifact stores."""
    for root in roots:
        root = Path(root)
        if (root / DONE_JSON).exists():
            yield root
            continue
        found = []
        for parent, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith("."))
            if DONE_JSON in files:
                found.append(Path(parent))
        yield from sorted(found)


def ingest_run(run_dir: Path, uri: str, experiment: str | None = None) -> tuple[str | None, str]:
    """Add or complete one run directory's MLflow run; returns (run_id, what happened)."""
    run_dir = Path(run_dir)
    cfg = config_mod.from_yaml(run_dir / "config.yaml")
    info = read_run_info(run_dir)
    done = json.loads((run_dir / DONE_JSON).read_text())
    rows = _rows(run_dir)
    messages: list[str] = []
    tags = {"env": cfg.env, "variant": cfg.variant, "seed": cfg.seed, **_provenance(info)}
    if done.get("device"):
        tags["device"] = done["device"]
    tracker = tracking.Tracker(
        uri,
        experiment=experiment or tracking.experiment_name(cfg.env),
        run_name=tracking.run_name(cfg.variant, cfg.seed),
        run_dir=run_dir,
        run_uid=info["run_uid"],
        tags=tags,
        params=config_mod.flatten(cfg),
        description=tracking.describe_differences(cfg, run_dir),
        echo=messages.append,
    )
    # the whole find / log / finish under the store's lock: a second ingest of the same run
    # waits, then finds it complete (no doubled metric rows)
    with tracking.store_lock(uri):
        tracker.start(resume=False)
        if not tracker.active:
            return None, messages[0] if messages else "tracking disabled"
        before = (tracker.logged_through, tracker.finished)
        tracker.log_rows(rows)
        tracker.finish(tracking.run_artifacts(run_dir))
    if not tracker.active:
        return None, messages[-1]
    if tracker.created:
        return tracker.run_id, "added"
    if before == (int(rows[-1]["iteration"]) if rows else 0, True):
        return tracker.run_id, "already present"
    return tracker.run_id, "completed"


def _rows(run_dir: Path) -> list[dict[str, float]]:
    """metrics.csv's rows; the checkpoint's when it holds the same iterations, since they also
    carry what metrics.csv has no column for (``train_mse`` of P / PE runs)."""
    rows = read_metrics_csv(run_dir) if (run_dir / METRICS_CSV).exists() else []
    try:
        saved = load_checkpoint(run_dir)
    except Exception:  # an unreadable checkpoint: metrics.csv is the record
        return rows
    if saved is None:
        return rows
    ckpt_rows = saved.get("run", {}).get("rows", [])
    same = [int(r["iteration"]) for r in ckpt_rows] == [int(r["iteration"]) for r in rows]
    return [{**r, **c} for r, c in zip(rows, ckpt_rows, strict=True)] if same and rows else rows


def _provenance(info: dict) -> dict[str, str]:
    """The creator's command and commit from run.json; older run dirs only name the source."""
    tags = tracking.provenance_tags(info)
    if "command" not in info:
        tags["command"] = "unknown (run directory made before run.json); ingested"
    return tags


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pets_core.ingest", description=__doc__)
    parser.add_argument(
        "dirs", nargs="+", type=Path, help="run directories or folders holding them"
    )
    parser.add_argument(
        "--mlflow-uri", default=None, help=f"default $MLFLOW_TRACKING_URI or {tracking.DEFAULT_URI}"
    )
    parser.add_argument("--mlflow-experiment", default=None, help="default pets-<env>")
    args = parser.parse_args(argv)
    uri = tracking.resolve_uri(args.mlflow_uri)
    if uri is None:
        print(
            "ingest: error: MLflow is disabled (--mlflow-uri none); nothing to do", file=sys.stderr
        )
        return 2
    run_dirs = list(find_run_dirs(args.dirs))
    if not run_dirs:
        print(
            f"ingest: no finished run directories (with {DONE_JSON}) under "
            f"{', '.join(map(str, args.dirs))}"
        )
        return 0
    failed = 0
    for run_dir in run_dirs:
        try:
            run_id, what = ingest_run(run_dir, uri, args.mlflow_experiment)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            run_id, what = None, f"unreadable run directory ({type(err).__name__}: {err})"
        failed += run_id is None
        print(f"{run_dir}: {what}" + (f" (run {run_id})" if run_id else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
