"""Snakemake in tests: the repository's workflow copied into a scratch directory and run there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pets_core.bench.workflow import copy_workflow  # noqa: F401 (the tests' copy, one definition)

REPO = Path(__file__).resolve().parents[2]
"""The repository root (tests/support/workflow.py -> ..)."""


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run Snakemake with this interpreter's environment first on PATH (the jobs call python)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run -> {rule: count}."""
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}
