"""run.json: the run's identity, written once when the run directory is created, never changed.

A resumed run keeps it; a moved or copied run directory carries it: ``run_uid`` (a random UUID),
env, variant, seed, created (UTC), the command and the git commit that made it. MLflow finds a
run again by ``run_uid`` alone. A run directory made before run.json existed has the derived
identity ``cfg-<sha256(config.yaml bytes)[:32]>`` (:func:`derived_run_uid`): its config.yaml holds
env, variant, seed and every setting, so the same run always gets the same id wherever it is
copied; two such runs with byte-identical config.yaml (same seed and settings) are one identity,
which on CPU they are (bit-identical logs.mat).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pets_core.results.files import FILE_MODE
from pets_core.results.reader import read_run_json
from pets_core.results.rundir import CHECKPOINT_PT, CONFIG_YAML, RUN_JSON

def derived_run_uid(run_dir: Path) -> str:
    """The identity of a run directory without run.json: from its config.yaml's bytes."""
    digest = hashlib.sha256((Path(run_dir) / CONFIG_YAML).read_bytes()).hexdigest()
    return f"cfg-{digest[:32]}"


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json's content; for a run directory made before run.json, ``{"run_uid": derived}``."""
    if (Path(run_dir) / RUN_JSON).exists():
        return read_run_json(run_dir)  # a damaged one: DamagedFile, naming it and the fix
    return {"run_uid": derived_run_uid(run_dir)}


def ensure_run_info(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """run.json, written once: the existing one, else a new identity with ``fields``.

    Call before config.yaml is (re)written: a directory that already holds a run (config.yaml +
    checkpoint.pt) but no run.json keeps its derived identity, so MLflow finds its run again.
    """
    run_dir = Path(run_dir)
    if (run_dir / RUN_JSON).exists():
        return read_run_info(run_dir)
    if (run_dir / CONFIG_YAML).exists() and (run_dir / CHECKPOINT_PT).exists():
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
        os.chmod(tmp, FILE_MODE)
        with contextlib.suppress(FileExistsError):  # never replaces an existing identity
            os.link(tmp, run_dir / RUN_JSON)
    finally:
        os.unlink(tmp)
    return read_run_info(run_dir)
