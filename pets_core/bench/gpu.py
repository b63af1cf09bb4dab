"""`python -m pets_core.bench gpu --out DIR`: the one check to run on a GPU box (about 8 minutes).

    python -m pets_core.bench gpu --out DIR [--wheels DIR] [--budget-s 450] [--device cuda]
        [--tiny] [--mlflow auto|off] [--work DIR] [--keep-work] [--only STAGE,...]

Stages, each a child process with its own time box (so a hung or failing stage is recorded with
its error and the rest still run), in this order:

1. ``install``: ``pip install --no-index --no-deps --target WORK/site`` of the wheels in
   ``--wheels`` (mujoco, gymnasium, ... for an image that lacks them; no network needed); the
   children get ``WORK/site`` and this checkout on ``PYTHONPATH``.
2. ``info``: Python, torch, CUDA device, and which of the run's packages import.
3. ``gpu-tests``: the test suite's ``gpu`` cases (skipped without CUDA), the CUDA paths (graphs
   included) against the eager and CPU ones.
4. ``plan-<env>`` for the four envs: ``bench plan`` at paper size, fp32, TF32, bf16 and
   bf16-hidden (seconds per action, agreement with fp32), eager.
5. ``train-<env>`` (cartpole, halfcheetah): ``bench train``, one epoch at N = 10k and 100k, eager
   and with the step's forward + backward as one CUDA graph.
6. ``graph-<env>``: ``bench plan --graph on``, the horizon rollout replayed as one CUDA graph
   (pets_core.graphs), fp32 and bf16.
7. ``experiment``: a paper-size half-cheetah run of 3 trials through ``pets_core.mbexp`` (the real
   loop: env, training, planning, logs, MLflow when it imports, else without).
8. ``concurrent``: 4 such runs (1 trial each) at once on the one device; their planning seconds
   per action against the solo run's first trial.

A stage's time box is its cap, shortened so that every later stage keeps its minimum within
``--budget-s``; a stage that no longer fits is skipped (and says so). Writes ``DIR/gpu.json``
(everything, plus a summary: half-cheetah ms per action, s per epoch, a projected 300-trial
half-cheetah seed in hours, the concurrency slowdown) and ``DIR/gpu.log`` (one line per stage);
run directories and stage outputs go to ``--work`` (a temporary folder unless given; removed at
the end unless ``--keep-work``). ``--tiny`` runs everything at toy sizes (tests, CPU).

Length (~500 lines): one procedure of eight time-boxed stages sharing one work folder, one
budget and one summary; the stages are short functions, split across files they would only
import each other.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pets_core.bench.cli import Parser, UsageError, int_at_least, run
from pets_core.envs import ENV_NAMES

PROG = "python -m pets_core.bench gpu"
REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_ENVS = ("cartpole", "halfcheetah")  # timed first: the cheapest and the costliest env
ENVS = TRAIN_ENVS + tuple(e for e in ENV_NAMES if e not in TRAIN_ENVS)
CONCURRENT_RUNS = 4
STAGES = (
    "info", "gpu-tests", *(f"plan-{e}" for e in ENVS), *(f"train-{e}" for e in TRAIN_ENVS),
    *(f"graph-{e}" for e in ENVS), "experiment", "concurrent",
)  # fmt: skip
"""The stages in their order (install comes first when --wheels is given)."""
PACKAGES = ("mujoco", "gymnasium", "mlflow", "einops", "scipy", "yaml", "imageio", "tqdm")
HALFCHEETAH_TRIALS, HALFCHEETAH_STEPS, EPOCHS = 300, 1000, 5  # config/envs, config/pets

# toy sizes for --tiny (CPU tests); the paper sizes are the configs' own
TINY_PLAN = ["--popsize", "20", "--elites", "4", "--particles", "5", "--horizon", "3",
             "--iters", "2", "--warmup", "1", "--repeats", "1"]  # fmt: skip
PAPER_PLAN = ["--warmup", "2", "--repeats", "3"]
TINY_RUN = [
    "-o", "exp_cfg.sim_cfg.task_hor", "15", "-o", "ctrl_cfg.opt_cfg.cfg.popsize", "20",
    "-o", "ctrl_cfg.opt_cfg.cfg.num_elites", "4", "-o", "ctrl_cfg.prop_cfg.npart", "5",
    "-o", "ctrl_cfg.opt_cfg.plan_hor", "4", "-o", "ctrl_cfg.prop_cfg.model_train_cfg.epochs", "1",
]  # fmt: skip


@dataclass
class Stage:
    name: str
    cmd: list[str]
    cap_s: float  # the most this stage may take
    min_s: float  # below this it is not started
    parse: str = "json"  # json: the last stdout line is the result; run: a run directory
    run_dirs: list[Path] = field(default_factory=list)
    parallel: int = 1  # copies of cmd at once (the concurrent stage), {i} in cmd is the copy


def _parse(argv: list[str]):
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--out", required=True, type=Path, help="gpu.json and gpu.log go here")
    p.add_argument("--wheels", type=Path, help="a folder of .whl files to install first")
    p.add_argument("--budget-s", type=int_at_least(30), default=450, help="whole check (s)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="toy sizes (tests on CPU)")
    p.add_argument("--mlflow", default="auto", choices=["auto", "off"])
    p.add_argument("--work", type=Path, help="run dirs and stage outputs (default: a temp dir)")
    p.add_argument("--keep-work", action="store_true", help="keep --work (default: removed)")
    p.add_argument("--threads", type=int_at_least(1), help="torch threads per stage")
    p.add_argument("--only", help="comma list of stages (default: all): " + ", ".join(STAGES))
    args = p.parse_args(argv)
    if args.only is not None:
        args.only = args.only.split(",")
        if bad := [name for name in args.only if name not in STAGES]:
            valid = ", ".join(STAGES)
            raise UsageError(f"argument --only: unknown stage {bad[0]!r}; valid: {valid}")
    if args.wheels is not None and not sorted(args.wheels.glob("*.whl")):
        raise UsageError(f"argument --wheels: no .whl files in {args.wheels}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"argument --out: {args.out} exists and is not a directory")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("argument --device: cuda requested but no GPU is visible; valid: cpu")
    return args


def _stages(args, work: Path, python: str, mlflow_uri: str, installed: list[str]) -> list[Stage]:
    """The check's stages in order; ``installed``: top-level modules the wheels brought."""
    dev = ["--device", args.device]
    threads = ["--threads", str(args.threads)] if args.threads else []
    plan_size = TINY_PLAN if args.tiny else PAPER_PLAN
    bench = [python, "-m", "pets_core.bench"]
    info = (
        "import json, importlib, platform, os, sys\n"
        "out = {'python': sys.version.split()[0], 'cpu_count': os.cpu_count(),\n"
        "       'machine': platform.machine()}\n"
        f"for name in {(*PACKAGES, *installed)!r}:\n"
        "    try:\n"
        "        out[name] = getattr(importlib.import_module(name), '__version__', 'yes')\n"
        "    except Exception as err:\n"
        "        out[name] = f'missing ({type(err).__name__}: {err})'\n"
        "import torch\n"
        "out['torch'] = torch.__version__\n"
        "out['cuda_available'] = torch.cuda.is_available()\n"
        "if torch.cuda.is_available():\n"
        "    p = torch.cuda.get_device_properties(0)\n"
        "    out |= {'gpu': p.name, 'gpu_memory_gib': round(p.total_memory / 2**30, 1),\n"
        "            'capability': f'{p.major}.{p.minor}', 'cuda': torch.version.cuda}\n"
        "print(json.dumps(out))\n"
    )
    stages = [Stage("info", [python, "-c", info], 30, 10)]
    # the suite's gpu cases (on CPU they skip: the stage itself still runs)
    tests = [
        "tests/planning/test_graphs.py",
        "tests/planning/test_planning.py",
        "tests/planning/test_planning_optimizers.py",
        "tests/models/test_models_training.py",
    ]
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *tests]
    stages.append(Stage("gpu-tests", cmd, 60, 20, parse="pytest"))
    for env in ENVS:
        cmd = [
            *bench,
            "plan",
            "--env",
            env,
            *dev,
            *threads,
            "--precision",
            "fp32,tf32,bf16,bf16-hidden",
        ]
        stages.append(Stage(f"plan-{env}", [*cmd, *plan_size], 50, 20))
    for env in TRAIN_ENVS:
        n = "64,96" if args.tiny else "10000,100000"
        repeats = "1" if args.tiny else "3"
        cmd = [*bench, "train", "--env", env, *dev, *threads, "--n", n, "--repeats", repeats,
               "--graph", "on"]  # fmt: skip
        stages.append(Stage(f"train-{env}", cmd, 60, 20))
    for env in ENVS:
        cmd = [*bench, "plan", "--env", env, *dev, *threads, "--precision", "fp32,tf32,bf16"]
        stages.append(Stage(f"graph-{env}", [*cmd, "--graph", "on", *plan_size], 40, 15))
    run_size = TINY_RUN if args.tiny else []
    mbexp = [python, "-m", "pets_core.mbexp", "-env", "halfcheetah", *dev, "--no-progress",
             "--mlflow-uri", mlflow_uri, "-o", "ctrl_cfg.graph", "always", *run_size]  # fmt: skip
    # the concurrent runs time s/action, which does not depend on the episode's length: a quarter
    # episode each (4 at paper size, one GPU saturated, cost as much as one whole episode)
    quarter = [] if args.tiny else ["-o", "exp_cfg.sim_cfg.task_hor", str(HALFCHEETAH_STEPS // 4)]
    # the concurrent runs share the cores: each gets its share unless --threads says otherwise
    share = args.threads or max(1, (os.cpu_count() or 1) // CONCURRENT_RUNS)
    solo_threads = ["--threads", str(args.threads)] if args.threads else []
    trials = "2" if args.tiny else "3"
    solo = work / "runs" / "solo"
    stages.append(
        Stage(
            "experiment",
            [
                *mbexp,
                *solo_threads,
                "-o",
                "exp_cfg.exp_cfg.ntrain_iters",
                trials,
                "--run-dir",
                str(solo),
            ],
            150,
            60,
            parse="run",
            run_dirs=[solo],
        )
    )
    dirs = [work / "runs" / f"concurrent{i}" for i in range(CONCURRENT_RUNS)]
    stages.append(
        Stage(
            "concurrent",
            [
                *mbexp,
                *quarter,
                "--threads",
                str(share),
                "-o",
                "exp_cfg.exp_cfg.ntrain_iters",
                "1",
                "--seed",
                "{i}",
                "--run-dir",
                str(work / "runs" / "concurrent{i}"),
            ],
            150,
            60,
            parse="run",
            run_dirs=dirs,
            parallel=CONCURRENT_RUNS,
        )
    )
    return stages


def _run_stage(stage: Stage, timeout_s: float, env: dict, logs: Path) -> dict:
    """Run the stage's process(es) for at most ``timeout_s``; the result or the error."""
    start = time.perf_counter()
    procs, outs = [], []
    for i in range(stage.parallel):
        cmd = [part.replace("{i}", str(i)) for part in stage.cmd]
        out = logs / f"{stage.name}-{i}.out"
        with open(out, "w") as stdout, open(logs / f"{stage.name}-{i}.err", "w") as stderr:
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
            )
        outs.append(out)
    timed_out = False
    for proc in procs:
        remaining = timeout_s - (time.perf_counter() - start)
        try:
            proc.wait(timeout=max(remaining, 0.1))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        for proc in procs:  # SIGTERM first: a run marks itself KILLED; then make sure
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    record: dict = {
        "seconds": round(time.perf_counter() - start, 1),
        "timeout_s": round(timeout_s, 1),
        "returncodes": [p.returncode for p in procs],
        "cmd": " ".join(stage.cmd),
    }
    failed = [i for i, p in enumerate(procs) if p.returncode != 0]
    if timed_out:
        record["status"] = "timeout"
    elif failed:
        record["status"] = "failed"
    else:
        record["status"] = "ok"
    if failed:  # pytest reports failures on stdout, everything else on stderr
        stream = "out" if stage.parse == "pytest" else "err"
        err = (logs / f"{stage.name}-{failed[0]}.{stream}").read_text(errors="replace").strip()
        record["error"] = err[-3000:] if err else f"(no std{stream})"
    try:
        record["result"] = _result(stage, outs)
    except Exception as err:  # a result that cannot be read is recorded, never fatal
        if record["status"] == "ok":
            record["status"] = "failed"
        record.setdefault("error", f"result unreadable: {type(err).__name__}: {err}")
    return record


def _result(stage: Stage, outs: list[Path]):
    if stage.parse == "json":
        lines = outs[0].read_text().strip().splitlines()
        return json.loads(lines[-1])
    if stage.parse == "pytest":
        return outs[0].read_text().strip().splitlines()[-1]
    return [_run_summary(d) for d in stage.run_dirs]  # what was completed, even if killed


def _run_summary(run_dir: Path) -> dict:
    """The iterations a run directory completed (metrics.csv), and whether it finished."""
    rows = []
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        with open(metrics) as f:
            rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    planned = [r["plan_s_per_action"] for r in rows if r.get("plan_s_per_action", 0) > 0]
    return {
        "run_dir": run_dir.name,
        "done": (run_dir / "done.json").exists(),
        "iterations": len(rows),
        "plan_s_per_action": planned,
        "wall_s": [r.get("wall_s") for r in rows],
        "returns": [r.get("return") for r in rows],
    }


def _summary(stages: dict) -> dict:
    """Headline figures from whatever stages completed (None where a stage gave nothing)."""

    def result(name):
        return stages.get(name, {}).get("result")

    out: dict = {"stages_ok": sorted(n for n, s in stages.items() if s["status"] == "ok")}
    out["stages_not_ok"] = sorted(n for n, s in stages.items() if s["status"] != "ok")
    for kind in ("plan", "graph"):
        for env in ENVS:
            r = result(f"{kind}-{env}")
            if r:
                out[f"{kind}_{env}_ms_per_action"] = {
                    p: round(1e3 * v["s_per_action"], 2) for p, v in r["precisions"].items()
                }
    train = result("train-halfcheetah")
    if train:
        out["train_halfcheetah_s_per_epoch"] = dict(
            zip(map(str, _as_list(train["n"])), _as_list(train["s_per_epoch"]), strict=True)
        )
    out["projected_halfcheetah_seed_hours"] = _projection(stages)
    solo, conc = result("experiment"), result("concurrent")
    if solo and conc and solo[0]["plan_s_per_action"]:
        base = solo[0]["plan_s_per_action"][0]  # its first planned trial (as the concurrent)
        each = [r["plan_s_per_action"][0] for r in conc if r["plan_s_per_action"]]
        out["concurrent_plan_s_per_action"] = [round(s, 4) for s in each]
        out["solo_plan_s_per_action"] = round(base, 4)
        if each:
            out["concurrent_slowdown"] = round(sum(each) / len(each) / base, 2)
    return out


def _as_list(x):
    return x if isinstance(x, list) else [x]


def _projection(stages: dict) -> dict | None:
    """A 300-trial half-cheetah seed: 300 x 1000 actions at the measured s/action, plus 5
    epochs after each trial at N = 1000 k (k = 1..300), s/epoch linear in N through the two
    measured sizes. ``plan_*`` pairs the eager planner with the eager trainer, ``graph_*`` the
    graphed ones (where measured)."""
    train = stages.get("train-halfcheetah", {}).get("result")
    if not train or len(_as_list(train["n"])) < 2:
        return None
    n0, n1 = _as_list(train["n"])[:2]

    def train_seconds(key: str) -> float | None:
        if key not in train:
            return None
        s0, s1 = _as_list(train[key])[:2]
        slope = (s1 - s0) / (n1 - n0)
        return sum(
            EPOCHS * max(s0 + slope * (HALFCHEETAH_STEPS * k - n0), 0.0)
            for k in range(1, HALFCHEETAH_TRIALS + 1)
        )

    trains = {"plan": train_seconds("s_per_epoch"), "graph": train_seconds("graph_s_per_epoch")}
    out = {"train_hours": round(trains["plan"] / 3600, 2)}
    if trains["graph"] is not None:
        out["train_graph_hours"] = round(trains["graph"] / 3600, 2)
    for kind in ("plan", "graph"):
        r = stages.get(f"{kind}-halfcheetah", {}).get("result")
        train_s = trains[kind] if trains[kind] is not None else trains["plan"]
        for precision, v in (r or {}).get("precisions", {}).items():
            plan_s = HALFCHEETAH_TRIALS * HALFCHEETAH_STEPS * v["s_per_action"]
            out[f"{kind}_{precision}_hours"] = round((plan_s + train_s) / 3600, 2)
    return out


def _install(wheels: Path, site: Path, python: str, timeout_s: float) -> dict:
    start = time.perf_counter()
    files = sorted(str(w) for w in wheels.glob("*.whl"))
    cmd = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--disable-pip-version-check", "--upgrade", "--target", str(site),
           *files]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        status = "ok" if proc.returncode == 0 else "failed"
        error = proc.stderr.strip()[-1500:]
    except subprocess.TimeoutExpired:
        status, error = "timeout", "pip install did not finish"
    record = {
        "status": status,
        "seconds": round(time.perf_counter() - start, 1),
        "wheels": [Path(f).name for f in files],
    }
    if status != "ok":
        record["error"] = error
    return record


def _top_level_modules(site: Path) -> list[str]:
    """The importable top-level names a ``pip install --target`` put into ``site``."""
    if not site.is_dir():
        return []
    names = {
        p.name.removesuffix(".py")
        for p in site.iterdir()
        if not p.name.endswith((".dist-info", ".libs", ".data"))
        and not p.name.startswith(("_", "."))
        and (p.is_dir() or p.suffix == ".py")
    }
    return sorted(names - {"bin"})


def _log_line(name: str, record: dict) -> str:
    line = f"{name:<20} {record['status']:<8} {record.get('seconds', 0):>7.1f} s"
    result = record.get("result")
    if isinstance(result, dict) and "precisions" in result:
        line += "  ms/action " + ", ".join(
            f"{p} {1e3 * v['s_per_action']:.2f}" for p, v in result["precisions"].items()
        )
    elif isinstance(result, dict) and "s_per_epoch" in result:
        line += f"  s/epoch {result['s_per_epoch']} at N {result['n']}"
    elif isinstance(result, list):
        line += "  " + "; ".join(
            f"{r['run_dir']}: {r['iterations']} it, s/action {r['plan_s_per_action']}"
            for r in result
        )
    elif isinstance(result, str):
        line += f"  {result}"
    if "error" in record:
        line += "  error: " + record["error"].strip().splitlines()[-1][:200]
    return line


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _main(argv or []))


def _main(argv: list[str]) -> int:
    args = _parse(argv)
    deadline = time.perf_counter() + args.budget_s
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"argument --out: cannot create {args.out}: {err.strerror}") from None
    work = args.work or Path(tempfile.mkdtemp(prefix="pets-gpu-check-"))
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    path = [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    report: dict = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "budget_s": args.budget_s,
        "tiny": args.tiny,
        "device": args.device,
        "loadavg_start": os.getloadavg(),
        "stages": {},
    }
    log_lines = [f"pets gpu check {report['started_utc']} device={args.device} tiny={args.tiny}"]

    def save() -> None:
        report["summary"] = _summary(report["stages"])
        _write_atomic(args.out / "gpu.json", json.dumps(report, indent=1) + "\n")
        _write_atomic(args.out / "gpu.log", "\n".join(log_lines) + "\n")

    try:
        if args.wheels is not None:
            site = work / "site"
            record = _install(args.wheels, site, python, min(90.0, deadline - time.perf_counter()))
            report["stages"]["install"] = record
            log_lines.append(_log_line("install", record))
            path.insert(0, str(site))
        env["PYTHONPATH"] = os.pathsep.join(path)
        child = dict(env, PYTHONPATH=env["PYTHONPATH"])
        probe = [python, "-c", "import mlflow"]
        has_mlflow = args.mlflow == "auto" and (
            subprocess.run(probe, env=child, capture_output=True).returncode == 0
        )
        mlflow_uri = f"sqlite:///{work / 'mlflow.db'}" if has_mlflow else "none"
        report["mlflow"] = mlflow_uri
        stages = _stages(args, work, python, mlflow_uri, _top_level_modules(work / "site"))
        assert tuple(s.name for s in stages) == STAGES
        stages = [s for s in stages if args.only is None or s.name in args.only]
        for i, stage in enumerate(stages):
            left = deadline - time.perf_counter()
            reserve = sum(s.min_s for s in stages[i + 1 :])
            timeout = min(stage.cap_s, left - reserve)
            if timeout < stage.min_s:
                record = {"status": "skipped", "error": f"out of time ({left:.0f} s left)"}
            else:
                record = _run_stage(stage, timeout, child, logs)
            report["stages"][stage.name] = record
            log_lines.append(_log_line(stage.name, record))
            print(log_lines[-1], flush=True)
            save()
        report["loadavg_end"] = os.getloadavg()
        report["seconds"] = round(args.budget_s - (deadline - time.perf_counter()), 1)
        summary = _summary(report["stages"])
        log_lines.append("summary " + json.dumps(summary))
        save()
    finally:
        if args.work is None and not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out / 'gpu.json'} and {args.out / 'gpu.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
