"""Run-directory files written atomically (temp file in the same folder, then os.replace).

``logs.mat`` holds exactly the original's keys and shapes (spec sec. 6.2), with n = logged episodes
(initial random + nrollouts_per_iter per iteration), T = task_hor:

* observations [n, T + 1, O] (includes the reset observation)
* actions      [n, T, A]     (noise-free, as chosen by the controller)
* rewards      [n, T]
* returns      [1, iters * neval] (MPC episodes only, iteration-major)

``run.json`` is the run's identity, written once when the run directory is created and never
changed (a resumed run keeps it; a moved or copied run directory carries it): ``run_uid`` (a
random UUID), env, variant, seed, created (UTC), the command and the git commit that made it.
MLflow finds a run again by ``run_uid`` alone. A run directory made before run.json existed has
the derived identity ``cfg-<sha256(config.yaml bytes)[:32]>`` (:func:`derived_run_uid`): its
config.yaml holds env, variant, seed and every setting, so the same run always gets the same id
wherever it is copied; two such runs with byte-identical config.yaml (same seed and settings)
are one identity, which on CPU they are (bit-identical logs.mat).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.io

LOGS_MAT = "logs.mat"
PREDICTIONS_MAT = "predictions.mat"
DONE_JSON = "done.json"
RUN_JSON = "run.json"
CONFIG_YAML = "config.yaml"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what a plain open() would give (mkstemp makes 0600)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and rename it over ``path``.

    Readers see either the old complete file or the new complete file, never a partial one.
    """
    path = Path(path)
    # keep the real extension last: writers such as imageio pick the format from it
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_mat(path: Path, arrays: Mapping[str, Any]) -> None:
    atomic_write(path, lambda f: scipy.io.savemat(f, dict(arrays)))


def write_logs_mat(
    run_dir: Path,
    observations: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    rewards: Sequence[np.ndarray],
    returns: Sequence[float],
) -> None:
    """Overwrite logs.mat with every logged episode so far (original ``MBExperiment`` format)."""
    write_mat(
        Path(run_dir) / LOGS_MAT,
        {
            "observations": np.stack(observations),  # [n, T + 1, O]
            "actions": np.stack(actions),  # [n, T, A]
            "rewards": np.stack(rewards),  # [n, T]
            "returns": np.asarray(returns, dtype=np.float64).reshape(1, -1),  # [1, iters * neval]
        },
    )


def read_logs_mat(path: Path) -> dict[str, np.ndarray]:
    data = scipy.io.loadmat(path)
    return {k: data[k] for k in ("observations", "actions", "rewards", "returns")}


def write_predictions_mat(iter_dir: Path, log: Mapping[str, np.ndarray]) -> None:
    """train_iter<i>/predictions.mat (spec sec. 5.4).

    {means, vars} [calls, H + 1, O] (log_traj_preds) or {predictions} [calls, H + 1, P, O]
    (log_particles); nothing when neither is on.
    """
    if log:
        Path(iter_dir).mkdir(parents=True, exist_ok=True)
        write_mat(Path(iter_dir) / PREDICTIONS_MAT, log)


# ----------------------------------------------------------------------------- run identity
def derived_run_uid(run_dir: Path) -> str:
    """The identity of a run directory without run.json: from its config.yaml's bytes."""
    digest = hashlib.sha256((Path(run_dir) / CONFIG_YAML).read_bytes()).hexdigest()
    return f"cfg-{digest[:32]}"


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json's content; for a run directory made before run.json, ``{"run_uid": derived}``."""
    path = Path(run_dir) / RUN_JSON
    if path.exists():
        info = json.loads(path.read_text())
        if not isinstance(info, dict) or not isinstance(info.get("run_uid"), str):
            raise ValueError(f"{path} has no run_uid")
        return info
    return {"run_uid": derived_run_uid(run_dir)}


def ensure_run_info(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """run.json, written once: the existing one, else a new identity with ``fields``.

    Call before config.yaml is (re)written: a directory that already holds a run (config.yaml +
    checkpoint.pt) but no run.json keeps its derived identity, so MLflow finds its run again.
    """
    run_dir = Path(run_dir)
    if (run_dir / RUN_JSON).exists():
        return read_run_info(run_dir)
    if (run_dir / CONFIG_YAML).exists() and (run_dir / "checkpoint.pt").exists():
        run_uid = derived_run_uid(run_dir)
    else:
        run_uid = uuid.uuid4().hex
    info = {
        "run_uid": run_uid,
        **fields,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{RUN_JSON}.", suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write((json.dumps(info, indent=2) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        with contextlib.suppress(FileExistsError):  # never replaces an existing identity
            os.link(tmp, run_dir / RUN_JSON)
    finally:
        os.unlink(tmp)
    return read_run_info(run_dir)
