"""`python -m pets_core.batch --configfile FILE --out DIR`: a pipeline config's training runs on one
box without Snakemake (a lent GPU machine: no network, no Snakemake, no MLflow), several at once,
within a deadline, packed for the trip back.

    python -m pets_core.batch --configfile config/fidelity.yaml --out DIR [--envs E,...]
        [--seeds N,...] [--device cuda] [--parallel 4] [--threads T] [--deadline-s 540]
        [--work DIR]

Each job is a run of ``pets_core.mbexp`` with exactly the arguments the Snakefile's ``train`` rule
gives it (pets_core.run.matrix), tracking off (ingest the runs later with ``python -m
pets_core.ingest``). Jobs run in the matrix's order, ``--parallel`` at a time; a job whose run
directory under ``--work`` already has done.json is skipped, an unfinished one resumes from its
checkpoint. At ``--deadline-s`` the runs still going get SIGTERM (each keeps its completed trials
in --work) and are reported as unfinished. Writes ``DIR/batch.json`` (per job: status, wall
seconds, trials done, planning s / action, returns), ``DIR/runs.tar.gz``: the finished runs'
reference files (logs.mat, metrics.csv, config.yaml, done.json) as ``{env}/{variant}/seed{N}/``,
ready to unpack into results/reference/<name>/, and ``DIR/logs.tar.gz``: every job's log.
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
from pets_core.results.rundir import DONE_JSON, METRICS_CSV, REFERENCE_FILES, run_path
from pets_core.run.matrix import jobs, runner_args

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
    p.add_argument("--threads", type=pos, help="torch threads per run (default: cores / parallel)")
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
    if args.seeds is None:
        args.jobs = picked
    else:  # the given seeds of every (env, variant) picked: more seeds than the config's, say
        pairs = sorted({(e, v) for e, v, _ in picked})
        args.jobs = [(e, v, s) for e, v in pairs for s in sorted(set(args.seeds))]
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


def _place(args: argparse.Namespace, env: str, variant: str, seed: int) -> tuple[str, Path]:
    """A job's name (logs, batch.json) and its run directory under --work."""
    return f"{env}-{variant}-seed{seed}", args.work / run_path(env, variant, seed)


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
            name, run_dir = _place(args, *job)
            if (run_dir / DONE_JSON).exists():
                report[name] = {"status": "done before", **_progress(run_dir)}
                continue
            cmd = [sys.executable, "-m", "pets_core.mbexp", *runner_args(args.config, *job),
                   "--run-dir", str(run_dir), "--device", args.device, "--threads", str(threads),
                   "--mlflow-uri", "none", "--no-progress"]  # fmt: skip
            with open(logs / f"{name}.log", "a") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            live[job] = (proc, time.monotonic(), name, run_dir)
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
        for job, (proc, start, name, run_dir) in list(live.items()):
            if proc.poll() is None:
                continue
            del live[job]
            done = proc.returncode == 0 and (run_dir / DONE_JSON).exists()
            stopped = proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)
            status = "done" if done else ("unfinished" if stopped else "failed")
            report[name] = {
                "status": status,
                "returncode": proc.returncode,
                "wall_s": round(time.monotonic() - start, 1),
                "threads": threads,
                **_progress(run_dir),
            }
            print(f"{name}: {status} ({report[name]['trials']} trials, "
                  f"{report[name]['wall_s']} s)", flush=True)  # fmt: skip
        if time.monotonic() >= deadline and pending:
            for job in pending:
                report[_place(args, *job)[0]] = {"status": "not started"}
            pending = []
        time.sleep(0.2)
    return report


def _pack(args: argparse.Namespace) -> list[str]:
    """The finished runs' reference files -> DIR/runs.tar.gz, every job's log -> DIR/logs.tar.gz
    (each written atomically); the names of the runs packed."""
    packed = []
    runs_tmp, logs_tmp = args.out / ".runs.tar.gz.tmp", args.out / ".logs.tar.gz.tmp"
    with tarfile.open(runs_tmp, "w:gz") as runs, tarfile.open(logs_tmp, "w:gz") as logs:
        for env, variant, seed in args.jobs:
            name, run_dir = _place(args, env, variant, seed)
            if (run_dir / DONE_JSON).exists():
                for file in REFERENCE_FILES:
                    runs.add(run_dir / file, arcname=f"{run_path(env, variant, seed)}/{file}")
                packed.append(name)
            log = args.work / "logs" / f"{name}.log"
            if log.exists():
                logs.add(log, arcname=f"{name}.log")
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
