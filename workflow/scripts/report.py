"""Snakemake's own HTML report of this workflow, made by the main command (rule all).

Snakemake makes reports only in a run of its own (``--report``); this rule starts that run on the
`figures` target with the resolved config of the current one, once every table and figure exists.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

log = open(snakemake.log[0], "w", buffering=1)
with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=Path(snakemake.log[0]).parent) as cfg:
    yaml.safe_dump(dict(snakemake.config), cfg)
    cfg.flush()
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--report",
        snakemake.output.report,
        "--configfile",
        cfg.name,
        "--nolock",
        "figures",
    ]
    print(" ".join(command), file=log)
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
if result.returncode:
    sys.exit(f"snakemake --report failed (exit {result.returncode}); see {snakemake.log[0]}")
