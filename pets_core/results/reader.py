"""Every run-directory file read back, in one place: a damaged file is one line, never a traceback.

Readers of run.json, config.yaml, done.json, checkpoint.pt, metrics.csv and logs.mat (the runner
resuming, ingest, the closing summaries) call these functions. Each checks what it reads (types,
keys, shapes, the checkpoint's checksum) and raises :class:`DamagedFile`, whose message names the
file, what is wrong and the fix (:data:`FIXES`), e.g. ``results/x/checkpoint.pt is damaged (its
checksum does not match its contents); delete it to restart the run, or restore it``.

:func:`check_metrics_against_logs` is the cross-check ingest runs before calling a run FINISHED:
metrics.csv must hold one row per iteration of logs.mat, with the same returns.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pets_core.results.rundir import (
    CHECKPOINT_PT,
    CONFIG_YAML,
    DONE_JSON,
    LOGS_MAT,
    METRICS_CSV,
    RUN_JSON,
)

FIXES = {
    CHECKPOINT_PT: "delete it to restart the run, or restore it",
    CONFIG_YAML: "restore it (config.txt holds the same settings), or delete the run directory "
    "and run the experiment again",
    RUN_JSON: "restore it (it holds the run's identity, by which MLflow finds the run)",
    DONE_JSON: "delete it: the same mbexp command then finishes the run from checkpoint.pt and "
    "writes it again",
    METRICS_CSV: "restore it, or delete the run directory and run the experiment again",
    LOGS_MAT: "restore it, or delete the run directory and run the experiment again",
}
"""What a user does about each damaged file."""

LOGS_KEYS = ("observations", "actions", "rewards", "returns")


class DamagedFile(ValueError):
    """A run-directory file that cannot be read or fails its checks; the message is one line."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path} is damaged ({reason}); {FIXES[self.path.name]}")


def read_json(path: Path, required: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """A JSON object with at least the ``required`` keys of the given types."""
    try:
        data = json.loads(Path(path).read_bytes().decode())
    except FileNotFoundError:
        raise DamagedFile(path, "missing") from None
    except OSError as err:
        raise DamagedFile(path, f"unreadable: {err.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedFile(path, f"not JSON: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise DamagedFile(path, f"a JSON {type(data).__name__}, not an object")
    for key, kind in required.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise DamagedFile(path, f"no valid {key!r}")
    return data


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """run.json (the run's identity)."""
    return read_json(Path(run_dir) / RUN_JSON, {"run_uid": str})


def read_done(run_dir: Path) -> dict[str, Any] | None:
    """done.json (None: the run is not complete)."""
    path = Path(run_dir) / DONE_JSON
    if not path.exists():
        return None
    done = read_json(path, {"iterations": int})
    if done["iterations"] < 0:
        raise DamagedFile(path, f"iterations {done['iterations']}")
    return done


def read_config(run_dir: Path):  # -> config.PetsConfig (imported here: config imports results)
    """config.yaml -> the validated PetsConfig."""
    from pets_core.config import ConfigError, from_yaml

    path = Path(run_dir) / CONFIG_YAML
    try:
        return from_yaml(path)
    except ConfigError as err:
        raise DamagedFile(path, str(err).removeprefix(f"{path}: ")) from None


def read_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """checkpoint.pt's state (None: there is none), its checksum verified when it has one."""
    from pets_core.results.checkpoint import ChecksumMismatch, load_checkpoint

    path = Path(run_dir) / CHECKPOINT_PT
    try:
        return load_checkpoint(run_dir)
    except ChecksumMismatch:
        raise DamagedFile(path, "its checksum does not match its contents") from None
    except Exception as err:  # torch's loader raises many kinds; its text is not for users
        if isinstance(err, OSError) and err.filename is not None:  # open / read, not torch
            raise DamagedFile(path, f"unreadable: {err.strerror}") from None
        raise DamagedFile(path, "not a readable checkpoint: truncated or not one") from None


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """metrics.csv's rows (iteration 1, 2, ... in order; empty cells are nan)."""
    from pets_core.results.metrics import COLUMNS

    path = Path(run_dir) / METRICS_CSV
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
                raise DamagedFile(path, f"its header is not {','.join(COLUMNS)}")
            rows = []
            for row in reader:
                if None in row or None in row.values():  # a row cut short, or too long
                    raise DamagedFile(path, f"row {reader.line_num - 1} is not {len(COLUMNS)} cells")
                rows.append({k: float(v) if v != "" else math.nan for k, v in row.items()})
    except FileNotFoundError:
        raise DamagedFile(path, "missing") from None
    except OSError as err:
        raise DamagedFile(path, f"unreadable: {err.strerror}") from None
    except (UnicodeDecodeError, csv.Error, ValueError, TypeError, AttributeError) as err:
        if isinstance(err, DamagedFile):
            raise
        raise DamagedFile(path, f"not a metrics table: {str(err).splitlines()[0]}") from None
    if [r["iteration"] for r in rows] != list(range(1, len(rows) + 1)):
        raise DamagedFile(path, "its iterations are not 1, 2, ... in order")
    return rows


def read_logs(run_dir: Path) -> dict[str, np.ndarray]:
    """logs.mat's four arrays: observations [n, T+1, O], actions [n, T, A], rewards [n, T],
    returns [1, iters * neval]."""
    import scipy.io

    path = Path(run_dir) / LOGS_MAT
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DamagedFile(path, "missing") from None
    except OSError as err:
        raise DamagedFile(path, f"unreadable: {err.strerror}") from None
    try:
        mat = scipy.io.loadmat(io.BytesIO(raw))
    except Exception:  # scipy raises ValueError, TypeError, OSError, MatReadError, zlib.error ...
        raise DamagedFile(path, "not a readable .mat file: truncated or not one") from None
    if missing := [k for k in LOGS_KEYS if k not in mat]:
        raise DamagedFile(path, f"no {', '.join(missing)}")
    logs = {k: np.asarray(mat[k]) for k in LOGS_KEYS}
    obs, act, rew, ret = (logs[k] for k in LOGS_KEYS)
    n, horizon = rew.shape if rew.ndim == 2 else (-1, -1)
    if (
        obs.ndim != 3
        or act.ndim != 3
        or obs.shape[:2] != (n, horizon + 1)
        or act.shape[:2] != (n, horizon)
        or ret.shape[0] != 1
    ):
        raise DamagedFile(
            path,
            f"inconsistent shapes: observations {obs.shape}, actions {act.shape}, "
            f"rewards {rew.shape}, returns {ret.shape}",
        )
    return logs


def check_metrics_against_logs(run_dir: Path, neval: int) -> list[dict[str, float]]:
    """metrics.csv's rows, after checking them against logs.mat (the record): one row per
    iteration, each row's return the mean of that iteration's ``neval`` returns, and as many
    iterations as done.json says when it exists."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    returns = read_logs(run_dir)["returns"].reshape(-1)  # [iters * neval]
    if returns.size % neval:
        raise DamagedFile(run_dir / LOGS_MAT, f"{returns.size} returns, not a multiple of {neval}")
    means = returns.reshape(-1, neval).mean(axis=1)  # [iters]
    where = run_dir / METRICS_CSV
    if len(rows) != len(means):
        raise DamagedFile(where, f"{len(rows)} iterations, logs.mat has {len(means)}")
    got = np.array([r["return"] for r in rows])
    if bad := np.flatnonzero(~np.isclose(got, means, rtol=1e-12, atol=0.0)).tolist():
        i = bad[0]
        raise DamagedFile(
            where, f"iteration {i + 1} return {got[i]!r}, logs.mat has {float(means[i])!r}"
        )
    done = read_done(run_dir)
    if done is not None and done["iterations"] != len(rows):
        raise DamagedFile(
            run_dir / DONE_JSON, f"iterations {done['iterations']}, logs.mat has {len(rows)}"
        )
    return rows
