"""`python -m pets_core.ingest DIR... [--mlflow-uri URI]`: add finished run directories to MLflow.

Idempotent: a run directory already in the store (same ``run_dir`` tag) is completed if it lacks
metrics or artifacts, and otherwise left alone, so running it twice adds nothing. Use it for runs
whose live tracking was skipped, or for run directories made on another machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from pets_core import config as config_mod
from pets_core import tracking
from pets_core.logs import DONE_JSON
from pets_core.metrics import METRICS_CSV, read_metrics_csv


def find_run_dirs(roots: Sequence[Path]) -> Iterator[Path]:
    """Directories holding done.json (the completion marker), searched recursively."""
    for root in roots:
        root = Path(root)
        if (root / DONE_JSON).exists():
            yield root
            continue
        yield from sorted(p.parent for p in root.rglob(DONE_JSON))


def ingest_run(run_dir: Path, uri: str, experiment: str | None = None) -> tuple[str | None, str]:
    """Add or complete one run directory's MLflow run; returns (run_id, what happened)."""
    run_dir = Path(run_dir)
    cfg = config_mod.from_yaml(run_dir / "config.yaml")
    rows = read_metrics_csv(run_dir) if (run_dir / METRICS_CSV).exists() else []
    messages: list[str] = []
    tracker = tracking.Tracker(
        uri,
        experiment=experiment or tracking.experiment_name(cfg.env),
        run_name=tracking.run_name(cfg.env, cfg.variant, cfg.seed),
        run_dir=run_dir,
        tags={"env": cfg.env, "variant": cfg.variant, "seed": cfg.seed},
        params=config_mod.flatten(cfg),
        echo=messages.append,
    ).start()
    if not tracker.active:
        return None, messages[0] if messages else "tracking disabled"
    before = (tracker.logged_through, tracker.finished)
    tracker.log_rows(rows)
    tracker.finish(sorted(p for p in run_dir.iterdir() if p.is_file() and _is_artifact(p)))
    if not tracker.active:
        return None, messages[-1]
    if tracker.created:
        return tracker.run_id, "added"
    if before == (int(rows[-1]["iteration"]) if rows else 0, True):
        return tracker.run_id, "already present"
    return tracker.run_id, "completed"


def _is_artifact(path: Path) -> bool:
    return path.name in ("logs.mat", "config.yaml", "config.txt", "metrics.csv", "done.json") or (
        path.name.startswith("model.")
    )


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
