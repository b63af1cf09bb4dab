"""`python -m pets_core.bench workflow`: the wall time of a pipeline's main job at several
``seeds_per_job``, measured in the same run on this machine (JSON lines).

    python -m pets_core.bench workflow [--configfile config/quick.yaml] [--seeds-per-job 1,3]
        [--cores 2] [--work DIR]

For each ``seeds_per_job`` the repository's workflow (Snakefile, workflow/, config/) is copied
into a fresh folder under ``--work`` and ``snakemake --cores C --configfile FILE --config
seeds_per_job=N`` runs there to the end, as a user's main job: training, MLflow (a store of the
folder's own), tables, figures, report. One line per N:
wall seconds, the jobs' count, and the speedup against the first N; then one line naming the
machine (CPU model, cores, load average before and after). The runs' returns are compared too:
a cohort seed's ``logs.mat`` equals its single run's on one machine (``same_returns``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pets_core.bench.cli import Parser, UsageError, int_at_least, int_list, run

PROG = "python -m pets_core.bench workflow"
REPO = Path(__file__).resolve().parents[2]
"""The checkout this package runs from (the workflow's files live beside it)."""
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "environment.yml")
"""What a copy of the workflow needs (results/ stays empty)."""


def copy_workflow(dest: Path) -> Path:
    """A fresh working directory holding the repository's workflow and configs."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    return dest


def _returns(folder: Path) -> dict[str, list[float]]:
    """Every run's returns (logs.mat) under ``folder`` (results/), by its path; MLflow's
    artifact copies left out."""
    import scipy.io

    out = {}
    for mat in sorted(folder.glob("*/runs/*/*/*/logs.mat")):  # results/<name>/runs/<env>/...
        out[str(mat.parent.relative_to(folder))] = scipy.io.loadmat(mat)["returns"].ravel().tolist()
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--configfile", type=Path, default=Path("config/quick.yaml"))
    p.add_argument("--seeds-per-job", type=int_list(1), default=[1, 3])
    p.add_argument("--cores", type=int_at_least(1), default=2)
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--timeout-s", type=int_at_least(1), default=3600)

    def go() -> int:
        args = p.parse_args(argv)
        config = args.configfile if args.configfile.is_absolute() else REPO / args.configfile
        if not config.is_file():
            raise UsageError(f"--configfile {args.configfile}: no such file")
        if not (REPO / "Snakefile").is_file():
            raise UsageError(f"no Snakefile beside the package ({REPO}): run from a checkout")
        work = Path(tempfile.mkdtemp(prefix="bench-workflow-", dir=args.work))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        load_before = os.getloadavg()
        first, returns0 = None, None
        for n in args.seeds_per_job:
            folder = work / f"seeds_per_job{n}"
            copy_workflow(folder)
            cmd = [
                sys.executable,
                "-m",
                "snakemake",
                "--cores",
                str(args.cores),
                "--configfile",
                str(folder / config.relative_to(REPO)),
                "--config",
                f"seeds_per_job={n}",
            ]
            t0 = time.perf_counter()
            done = subprocess.run(
                cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=args.timeout_s
            )
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
                raise UsageError(f"snakemake at seeds_per_job {n} failed: {' | '.join(tail)}")
            returns = _returns(folder / "results")
            first = first or wall
            returns0 = returns0 if returns0 is not None else returns
            line = {
                "bench": "workflow",
                "configfile": str(args.configfile),
                "seeds_per_job": n,
                "cores": args.cores,
                "wall_s": round(wall, 2),
                "runs": len(returns),
                "speedup_vs_first": round(first / wall, 3),
                "same_returns": returns == returns0,
            }
            print(json.dumps(line), flush=True)
        print(
            json.dumps(
                {
                    "bench": "workflow",
                    "machine": _cpu_model(),
                    "cpu_count": os.cpu_count(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                    "work": str(work),
                }
            ),
            flush=True,
        )
        return 0

    return run(PROG, go)
