"""`python -m pets_core.ingest DIR... [--mlflow-uri URI]`: add finished run directories to MLflow.

Idempotent (:mod:`pets_core.results.ingest`): a run already in the store is completed if it lacks
metrics or artifacts and otherwise left alone, so running it twice, on a moved or copied results
dir, or from two shells at once, adds nothing. Folders that hold a store's artifacts
(``mlartifacts``, ``mlruns``) are never searched for runs. Use it for runs whose live tracking was
skipped, or for run directories made on another machine. It names the store it opened on stderr,
and never creates the default store (``sqlite:///results/mlflow.db``) outside a project directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pets_core.results import store
from pets_core.results.ingest import ingest_run
from pets_core.results.reader import DamagedFile
from pets_core.results.rundir import DONE_JSON, find_run_dirs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pets_core.ingest", description=__doc__)
    parser.add_argument(
        "dirs", nargs="+", type=Path, help="run directories or folders holding them"
    )
    parser.add_argument(
        "--mlflow-uri", default=None, help=f"default $MLFLOW_TRACKING_URI or {store.DEFAULT_URI}"
    )
    parser.add_argument("--mlflow-experiment", default=None, help="default pets-<env>")
    args = parser.parse_args(argv)
    uri = store.resolve_uri(args.mlflow_uri)
    if uri is None:
        print(
            "ingest: error: MLflow is disabled (--mlflow-uri none); nothing to do", file=sys.stderr
        )
        return 2
    if (refusal := store_refusal(uri, explicit=args.mlflow_uri is not None)) is not None:
        print(f"ingest: error: {refusal}", file=sys.stderr)
        return 2
    db = store.sqlite_file(uri)
    where = f" ({'new, ' if db and not db.exists() else ''}{db.resolve()})" if db else ""
    print(f"ingest: MLflow store {uri}{where}", file=sys.stderr)
    run_dirs = find_run_dirs(args.dirs, complete_only=True)
    if not run_dirs:
        print(
            f"ingest: no finished run directories (with {DONE_JSON}) under "
            f"{', '.join(map(str, args.dirs))}"
        )
        return 0
    failures = []
    for run_dir in run_dirs:  # a bad run is reported, and the next one ingested
        try:
            run_id, what = ingest_run(run_dir, uri, args.mlflow_experiment)
        except DamagedFile as err:
            run_id, what = None, str(err)
        except OSError as err:
            run_id, what = None, f"cannot read {err.filename or run_dir}: {err.strerror}"
        if run_id is None:
            failures.append(f"{run_dir}: {what}")
        print(f"{run_dir}: {what}" + (f" (run {run_id})" if run_id else ""))
    if failures:
        print(
            f"ingest: {len(failures)} of {len(run_dirs)} run(s) not ingested:\n  "
            + "\n  ".join(failures),
            file=sys.stderr,
        )
    return 1 if failures else 0


PROJECT_MARKERS = ("Snakefile", "results")
"""A working directory holding one of these is a project directory (the repository's root, or
where runs already write results/): the default store may be created there."""


def store_refusal(uri: str, *, explicit: bool) -> str | None:
    """Why ingest will not create ``uri``'s sqlite store, or None: the store named by default
    (no --mlflow-uri, no $MLFLOW_TRACKING_URI) is never created outside a project directory, so
    that ingest run from elsewhere never leaves a stray results/mlflow.db there."""
    db = store.sqlite_file(uri)
    if db is None or db.exists() or explicit or "MLFLOW_TRACKING_URI" in os.environ:
        return None
    cwd = Path.cwd()
    if any((cwd / marker).exists() for marker in PROJECT_MARKERS):
        return None
    return (
        f"no MLflow store at {db} and {cwd} is not a project directory (no Snakefile, no "
        "results/); run from the project directory, or name the store with --mlflow-uri "
        f"sqlite:///PATH/mlflow.db"
    )


if __name__ == "__main__":
    sys.exit(main())
