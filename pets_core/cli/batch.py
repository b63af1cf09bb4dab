"""`python -m pets_core.batch --configfile FILE --out DIR`: a pipeline config's training runs on one
box without Snakemake (a lent GPU machine: no network, no Snakemake, no MLflow), several at once,
within a deadline, packed for the trip back.

    python -m pets_core.batch --configfile config/fidelity.yaml --out DIR [--envs E,...]
        [--seeds N,...] [--device cuda] [--parallel 4] [--threads T] [--deadline-s 540]
        [--work DIR]

Each job is a ``pets_core.mbexp`` process with exactly the arguments the Snakefile's training
rules give it (pets_core.run.matrix): one run, or with the config's ``seeds_per_job: N`` up to N
seeds of one (env, variant) in lockstep (``--seeds``), tracking off (ingest the runs later with
``python -m pets_core.ingest``). Jobs run in the matrix's order, ``--parallel`` at a time; a job
whose run directories under ``--work`` all have done.json is skipped, an unfinished one resumes
from its checkpoints (the runner skips a group's finished seeds). At ``--deadline-s`` the jobs
still going get SIGTERM (each run keeps its completed trials in --work) and their runs are
reported as unfinished. Writes ``DIR/batch.json`` (per run: its job's status, wall seconds and
log, the run's trials done, planning s / action, returns), ``DIR/runs.tar.gz``: the finished
runs' reference files (logs.mat, metrics.csv, config.yaml, done.json) as
``{env}/{variant}/seed{N}/``, ready to unpack into results/reference/<name>/, and
``DIR/logs.tar.gz``: every job's log (``{env}-{variant}-seed{N}.log``, a group's
``{env}-{variant}-seeds1-2-3.log``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from pets_core.bench.cli import Parser, UsageError, int_at_least, int_list, run
from pets_core.config import ConfigError
from pets_core.config.bounded_yaml import load_yaml_file
from pets_core.results.rundir import DONE_JSON, METRICS_CSV, REFERENCE_FILES, job_label, run_path
from pets_core.run.matrix import Job, jobs, run_dir_arg, runner_args, train_jobs

PROG = "python -m pets_core.batch"


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    pos = int_at_least(1)
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--configfile", required=True, type=Path, help="a pipeline config (YAML)")
    p.add_argument("--out", required=True, type=Path, help="batch.json, runs/logs.tar.gz go here")
    p.add_argument("--envs", type=lambda s: s.split(","), help="a subset of the config's envs")
    p.add_argument("--seeds", type=int_list(0), help="seeds to run (default: the config's)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    p.add_argument("--parallel", type=pos, default=4, help="runs at once (default 4)")
    p.add_argument("--threads", type=pos, help="torch threads per job (default: cores / parallel)")
    p.add_argument("--deadline-s", type=pos, default=540, help="stop runs after this (s)")
    p.add_argument("--work", type=Path, default=Path("batch-work"), help="run directories")
    args = p.parse_args(argv)
    try:
        config = load_yaml_file(args.configfile)
    except ConfigError as err:
        raise UsageError(f"argument --configfile: {err}") from None
    if not isinstance(config, dict) or not {"envs", "experiments"} <= set(config):
        raise UsageError(f"argument --configfile: {args.configfile} has no envs and experiments")
    matrix = jobs(config)
    valid = sorted({e for e, _, _ in matrix})
    if args.envs is not None and (bad := [e for e in args.envs if e not in valid]):
        raise UsageError(
            f"argument --envs: {bad[0]} is not in {args.configfile}; valid: {', '.join(valid)}"
        )
    picked = [(e, v, s) for e, v, s in matrix if args.envs is None or e in args.envs]
    if args.seeds is not None:  # the given seeds of every (env, variant) picked: more seeds, say
        pairs = sorted({(e, v) for e, v, _ in picked})
        picked = [(e, v, s) for e, v in pairs for s in sorted(set(args.seeds))]
    try:
        args.jobs = train_jobs(config, picked)
    except ConfigError as err:
        raise UsageError(f"argument --configfile: {args.configfile}: {err}") from None
    args.config = config
    return args


def _progress(run_dir: Path) -> dict:
    """What a run directory holds: trials done, their planning s / action, returns."""
    rows = []
    if (run_dir / METRICS_CSV).exists():
        with open(run_dir / METRICS_CSV) as f:
            rows = list(csv.DictReader(f))
    return {
        "trials": len(rows),
        "plan_s_per_action": [
            round(float(r["plan_s_per_action"]), 4) for r in rows if r.get("plan_s_per_action")
        ],
        "returns": [round(float(r["return"]), 2) for r in rows],
    }


def _name(env: str, variant: str, seeds: Sequence[int]) -> str:
    """A job's name (its log) or, of one seed, a run's (batch.json): cartpole-PE-TSinf-CEM-seed3."""
    return f"{env}-{variant}-{job_label(seeds)}"


def _runs(args: argparse.Namespace, job: Job) -> dict[str, Path]:
    """A job's runs: name -> run directory under --work."""
    env, variant, seeds = job
    return {_name(env, variant, [s]): args.work / run_path(env, variant, s) for s in seeds}


def _run(args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + args.deadline_s
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.parallel)
    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pending = list(args.jobs)
    live: dict = {}  # job -> (process, start time, name, run directory)
    report: dict = {}
    while pending or live:
        while pending and len(live) < args.parallel and time.monotonic() < deadline:
            job = pending.pop(0)
            runs = _runs(args, job)
            if all((run_dir / DONE_JSON).exists() for run_dir in runs.values()):
                for name, run_dir in runs.items():
                    report[name] = {"status": "done before", **_progress(run_dir)}
                continue
            env, variant, seeds = job
            run_dir = run_dir_arg(str(args.work), env, variant, seeds)
            cmd = [sys.executable, "-m", "pets_core.mbexp", *runner_args(args.config, *job),
                   "--run-dir", run_dir, "--device", args.device, "--threads", str(threads),
                   "--mlflow-uri", "none", "--no-progress"]  # fmt: skip
            log_name = f"{_name(*job)}.log"
            with open(logs / log_name, "a") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            live[job] = (proc, time.monotonic(), runs, log_name)
        if time.monotonic() >= deadline:
            for proc, *_ in live.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # the runner keeps its completed trials
            for proc, *_ in live.values():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for job, (proc, start, runs, log_name) in list(live.items()):
            if proc.poll() is None:
                continue
            del live[job]
            stopped = proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)
            for name, run_dir in runs.items():
                done = proc.returncode == 0 and (run_dir / DONE_JSON).exists()
                status = "done" if done else ("unfinished" if stopped else "failed")
                report[name] = {
                    "status": status,
                    "returncode": proc.returncode,
                    "wall_s": round(time.monotonic() - start, 1),  # the job's: its seeds together
                    "threads": threads,
                    "log": log_name,
                    **_progress(run_dir),
                }
                print(f"{name}: {status} ({report[name]['trials']} trials, "
                      f"{report[name]['wall_s']} s)", flush=True)  # fmt: skip
        if time.monotonic() >= deadline and pending:
            for job in pending:
                for name in _runs(args, job):
                    report[name] = {"status": "not started"}
            pending = []
        time.sleep(0.2)
    return report


def _pack(args: argparse.Namespace) -> list[str]:
    """The finished runs' reference files -> DIR/runs.tar.gz, every job's log -> DIR/logs.tar.gz
    (each written atomically); the names of the runs packed."""
    packed = []
    runs_tmp, logs_tmp = args.out / ".runs.tar.gz.tmp", args.out / ".logs.tar.gz.tmp"
    with tarfile.open(runs_tmp, "w:gz") as runs, tarfile.open(logs_tmp, "w:gz") as logs:
        for job in args.jobs:
            for name, run_dir in _runs(args, job).items():
                if (run_dir / DONE_JSON).exists():
                    for file in REFERENCE_FILES:
                        runs.add(run_dir / file, arcname=f"{run_dir.relative_to(args.work)}/{file}")
                    packed.append(name)
            log = args.work / "logs" / f"{_name(*job)}.log"
            if log.exists():
                logs.add(log, arcname=log.name)
    os.replace(runs_tmp, args.out / "runs.tar.gz")
    os.replace(logs_tmp, args.out / "logs.tar.gz")
    return packed


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, lambda: _main(sys.argv[1:] if argv is None else argv))


def _main(argv: Sequence[str]) -> int:
    args = _parse(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"argument --out: cannot create {args.out}: {err.strerror}") from None
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report = _run(args)
    packed = _pack(args)
    summary = {
        "started_utc": started,
        "configfile": str(args.configfile),
        "device": args.device,
        "parallel": args.parallel,
        "deadline_s": args.deadline_s,
        "packed": packed,
        "jobs": report,
    }
    tmp = args.out / ".batch.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, args.out / "batch.json")
    print(f"wrote batch.json, runs.tar.gz ({len(packed)} finished runs), logs.tar.gz to {args.out}")
    return 1 if any(j["status"] == "failed" for j in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
