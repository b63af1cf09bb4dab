"""metrics.csv: one row per MPC iteration, rewritten atomically (the source of truth for curves)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from pets_core.logs import write_text

METRICS_CSV = "metrics.csv"
COLUMNS = (
    "iteration",
    "env_steps",
    "return",
    "best_so_far",
    "train_loss",
    "holdout_mse",
    "plan_s_per_action",
    "wall_s",
)
"""train_loss / holdout_mse: of the training that produced the model acting in this iteration."""


def write_metrics_csv(run_dir: Path, rows: Sequence[Mapping[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
    write_text(Path(run_dir) / METRICS_CSV, buf.getvalue())


def read_metrics_csv(run_dir: Path) -> list[dict[str, float]]:
    with open(Path(run_dir) / METRICS_CSV, newline="") as f:
        return [
            {k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
