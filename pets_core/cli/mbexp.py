"""`python -m pets_core.mbexp`: the original's ``scripts/mbexp.py`` command line (§cli).

    python -m pets_core.mbexp -env halfcheetah -ca model-type PE -ca prop-type TSinf \\
        -o exp_cfg.exp_cfg.ntrain_iters 5 [-logdir log] [--seed 0 | --seeds 1,2,3] \\
        [--device auto|cpu|cuda] [--run-dir DIR] [--threads N] [--mlflow-uri URI] \\
        [--mlflow-experiment NAME] [--tag KEY VALUE]

Without --run-dir the run goes to <logdir>/<YYYY-MM-DD--HH:MM:SS>/ (a suffix -1, -2, ... if that
already exists, so two runs started in the same second never collide). With --run-dir an
interrupted run resumes after its last complete iteration; a finished one (done.json) of the same
settings (pets_core.config.fingerprint) is left alone, or extended from its checkpoint when asked
for more trials; a run of other settings is refused naming the first that differs. Bad input
exits 2 with one line naming the culprit and the valid choices.

``--seeds 1,2,3`` runs several seeds of the same settings in one process, in lockstep (a cohort,
pets_core.run.loop): each seed's run directory, files and MLflow run are exactly its single run's.
``--run-dir`` then names each seed's directory with ``{seed}`` (``runs/seed{seed}``); without it
the seeds go to ``<logdir>/<timestamp>/seed<N>/``. Each seed is checked as above; finished ones
are left alone, and seeds resumed from different iterations catch up before they go on together.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from pets_core import config as config_mod
from pets_core.config import ConfigError
from pets_core.envs import ENV_NAMES
from pets_core.interrupts import Interrupted, interrupts_as_exceptions
from pets_core.results import naming, store
from pets_core.results.files import write_text
from pets_core.results.identity import ensure_run_info
from pets_core.results.metrics import read_metrics_csv
from pets_core.results.reader import DamagedFile, read_config
from pets_core.results.rundir import (
    CHECKPOINT_PT,
    CONFIG_TXT,
    CONFIG_YAML,
    DONE_JSON,
    LOGS_MAT,
    METRICS_CSV,
    MODEL_PT,
    RunDir,
)
from pets_core.results.runlock import RunDirBusy, hold_run_dir
from pets_core.results.tracking import Tracker, tracker_for
from pets_core.run.checkpoint import ReplayError
from pets_core.run.device import DeviceError, resolve_device
from pets_core.run.failures import Diverged
from pets_core.run.progress import PLAIN_EVERY_S
from pets_core.seeding import MAX_SEED

PROG = "python -m pets_core.mbexp"
TAG_KEY = re.compile(r"[A-Za-z0-9_.-]+")


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run one PETS experiment (Chua et al. 2018).")
    p.add_argument("-env", required=True, help=" | ".join(ENV_NAMES))
    p.add_argument(
        "-ca",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="controller argument: model-type {D,P,DE,PE}, prop-type {E,DS,TS1,TSinf,MM}, "
        "opt-type {CEM,Random,iCEM,MPPI}",
    )
    p.add_argument(
        "-o",
        nargs=2,
        action="append",
        default=[],
        metavar=("DOTTED.PATH", "VALUE"),
        help="override a config leaf, e.g. -o exp_cfg.exp_cfg.ntrain_iters 5 (command-line order)",
    )
    p.add_argument("-logdir", default="log", help="parent of the timestamped run dir (default log)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"0..{MAX_SEED}; seeds every random stream (default 0)",
    )
    p.add_argument(
        "--seeds",
        default=None,
        metavar="N,N,...",
        help="several seeds in lockstep in one process (a cohort); --run-dir then holds {seed}",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (cuda absent -> error)")
    p.add_argument("--run-dir", type=Path, default=None, help="write here; resumes if interrupted")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument(
        "--mlflow-uri",
        default=None,
        help=f"tracking store (default $MLFLOW_TRACKING_URI or {store.DEFAULT_URI}; none = off)",
    )
    p.add_argument("--mlflow-experiment", default=None, help="default pets-<env>")
    p.add_argument(
        "--tag",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="an MLflow tag of the run, kept in run.json (the workflow adds config <its name>)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no live progress (the summary line of each iteration is still printed)",
    )
    p.add_argument(
        "--progress-every",
        type=float,
        default=PLAIN_EVERY_S,
        metavar="SECONDS",
        help=f"progress line interval when stderr is not a terminal (default {PLAIN_EVERY_S:g})",
    )
    p.add_argument(
        "--status-fd",
        type=int,
        default=None,
        metavar="FD",
        help="also write each iteration as one line naming the run to this open file descriptor "
        "(the workflow passes its terminal's)",
    )
    return p


def open_status_fd(fd: int | None) -> IO[str] | None:
    """--status-fd as a line-buffered text stream (the caller's descriptor stays open)."""
    if fd is None:
        return None
    try:
        os.fstat(fd)
        return os.fdopen(fd, "w", buffering=1, closefd=False)
    except (OSError, ValueError):
        raise UsageError(f"--status-fd {fd} is not an open file descriptor") from None


def new_run_dir(logdir: Path) -> Path:
    """<logdir>/<timestamp>/, created atomically; -1, -2, ... if a run took it this second."""
    logdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d--%H:%M:%S")
    for n in range(10_000):
        candidate = logdir / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise UsageError(f"could not create a fresh run directory under {logdir}")


def prepare_run_dir(run_dir: Path) -> bool:
    """Create ``run_dir`` (and parents); True if it did not exist. UsageError if unwritable."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create a run directory in {run_dir}: {err.strerror}") from None
    return created


def check_existing_run(run_dir: Path, cfg: config_mod.PetsConfig) -> str | None:
    """What ``run_dir`` holds for ``cfg``: None (no run yet), "resume" (an unfinished run of the
    same settings: resumed, and run on to ``cfg``'s trial count), "extend" (a finished run of the
    same settings with fewer trials and its checkpoint.pt: continued to ``cfg``'s count, as if it
    had been asked for them from the start) or "complete" (a finished run of these settings and
    length: nothing to do).

    Raises UsageError naming the first differing setting (config.fingerprint) or seed for a run
    of other settings, finished or not, and naming ``exp_cfg.exp_cfg.ntrain_iters`` for a run
    that holds more trials than asked or cannot be extended (no checkpoint.pt).
    """
    run = RunDir(run_dir)
    if not (run.is_complete or run.is_resumable):
        return None
    finished = "a finished run" if run.is_complete else "a run"
    try:
        saved = read_config(run_dir)  # a damaged one: DamagedFile, naming it and the fix
        diff = config_mod.settings_difference(saved, cfg)
        if diff is None and saved.seed != cfg.seed:
            diff = f"seed: {saved.seed!r} != {cfg.seed!r}"
    except ConfigError as err:
        diff = f"unreadable config.yaml ({err})"
    except FileNotFoundError:
        diff = "no config.yaml"
    if diff is not None:
        advice = "use another --run-dir" + (
            "" if run.is_complete else " or the same arguments to resume it"
        )
        raise UsageError(
            f"--run-dir {run_dir} holds {finished} with a different config ({diff}); {advice}"
        )
    asked = cfg.exp_cfg.exp_cfg.ntrain_iters
    planned = saved.exp_cfg.exp_cfg.ntrain_iters  # a done.json without "iterations": as planned
    have = int(run.done().get("iterations", planned)) if run.is_complete else _metrics_rows(run)
    length = f"{LENGTH_KEY}: {have} != {asked}"
    if run.is_complete and asked == have:
        return "complete"
    if asked < have:
        raise UsageError(
            f"--run-dir {run_dir} holds {finished} of {have} trials, more than asked ({length}); "
            f"its first {asked} are those of a {asked}-trial run: read them there, or use "
            "another --run-dir"
        )
    if not run.is_complete:
        return "resume"
    if not (run / CHECKPOINT_PT).is_file():
        raise UsageError(
            f"--run-dir {run_dir} holds a finished run of {have} trials and no {CHECKPOINT_PT} "
            f"to extend it from ({length}); use another --run-dir"
        )
    return "extend"


LENGTH_KEY = "exp_cfg.exp_cfg.ntrain_iters"


def _metrics_rows(run: RunDir) -> int:
    """Iterations an unfinished run has logged (metrics.csv is written just before the
    checkpoint of the same iteration, so the checkpoint holds these or one fewer)."""
    return len(read_metrics_csv(run.path)) if (run / METRICS_CSV).is_file() else 0


def parse_seeds(args: argparse.Namespace) -> list[int]:
    """--seed N or --seeds N,N,...: the run's seeds, each checked (default: seed 0)."""
    if args.seed is not None and args.seeds is not None:
        raise UsageError("--seed and --seeds: give one of them")
    if args.seeds is None:
        seeds = [0 if args.seed is None else args.seed]
    else:
        try:
            seeds = [int(part) for part in args.seeds.split(",")]
        except ValueError:
            raise UsageError(
                f"--seeds must be a comma-separated list of integers, e.g. 1,2,3 (got "
                f"{args.seeds!r})"
            ) from None
        if repeated := sorted({s for s in seeds if seeds.count(s) > 1}):
            raise UsageError(f"--seeds repeats seed {repeated[0]} (got {args.seeds})")
    if bad := [s for s in seeds if not 0 <= s <= MAX_SEED]:
        flag = "--seeds" if args.seeds is not None else "--seed"
        raise UsageError(f"{flag} must be in 0..{MAX_SEED} (got {bad[0]})")
    return seeds


SEED_FIELD = "{seed}"
"""Where --run-dir puts each seed of a cohort: ``runs/seed{seed}``."""


def seed_run_dirs(args: argparse.Namespace, seeds: list[int]) -> list[Path] | None:
    """Each seed's --run-dir (None without --run-dir: fresh directories under -logdir)."""
    if args.run_dir is None:
        return None
    template = str(args.run_dir)
    if len(seeds) > 1 and SEED_FIELD not in template:
        raise UsageError(
            f"--run-dir {template}: several --seeds need {SEED_FIELD} in it, where each seed's "
            f"directory differs (e.g. {template.rstrip('/')}/seed{SEED_FIELD})"
        )
    return [Path(template.replace(SEED_FIELD, str(seed))) for seed in seeds]


def main(argv: Sequence[str] | None = None) -> int:
    argv_list = list(sys.argv[1:] if argv is None else argv)
    with contextlib.ExitStack() as held:  # the run directories' locks, once taken
        return _main(argv_list, held)


def _main(argv_list: list[str], held: contextlib.ExitStack) -> int:
    parser = build_parser()
    created: list[Path] = []  # directories made by this call (removed again on bad input)
    runs: list[tuple[config_mod.PetsConfig, Path, dict]] = []  # (config, run dir, run.json)
    try:
        args = parser.parse_args(argv_list)
        seeds = parse_seeds(args)
        configs = [config_mod.load_config(args.env, args.ca, args.o, seed=s) for s in seeds]
        device = resolve_device(args.device)
        if bad := [k for k, _ in args.tag if not TAG_KEY.fullmatch(k)]:
            raise UsageError(f"--tag key {bad[0]!r}: letters, digits, _ . - only")
        if not args.progress_every >= 0:
            raise UsageError(f"--progress-every must be >= 0 seconds (got {args.progress_every})")
        status = open_status_fd(args.status_fd)
        if args.threads is not None:
            if args.threads < 1:
                raise UsageError(f"--threads must be >= 1 (got {args.threads})")
            import torch

            torch.set_num_threads(args.threads)
        dirs = seed_run_dirs(args, seeds)
        if dirs is not None:  # every seed checked before any is touched
            found = [check_existing_run(d, cfg) for d, cfg in zip(dirs, configs, strict=True)]
            for d, f in zip(dirs, found, strict=True):
                if f == "complete":
                    print(f"{d} is already complete (done.json present); nothing to do")
            todo = [k for k, f in enumerate(found) if f != "complete"]
            configs, dirs = [configs[k] for k in todo], [dirs[k] for k in todo]
            if not configs:
                return 0
        else:
            try:
                parent = new_run_dir(Path(args.logdir))
            except OSError as err:
                raise UsageError(
                    f"cannot create a run directory in {args.logdir}: {err.strerror}"
                ) from None
            created.append(parent)
            dirs = [parent] if len(seeds) == 1 else [parent / f"seed{s}" for s in seeds]
        for cfg, run_dir in zip(configs, dirs, strict=True):
            made = prepare_run_dir(run_dir)
            if made:
                created.append(run_dir)
            held.enter_context(hold_run_dir(run_dir))  # before anything is written: one writer
            if args.run_dir is not None:  # again under the lock: it may have changed meanwhile
                found_now = check_existing_run(run_dir, cfg)
                if found_now == "complete":
                    print(f"{run_dir} is already complete (done.json present); nothing to do")
                    continue
                if found_now == "extend":
                    have = RunDir(run_dir).done().get("iterations")
                    asked = cfg.exp_cfg.exp_cfg.ntrain_iters
                    print(f"extending {run_dir} from {have} to {asked} trials")
            runs.append((cfg, run_dir, {}))
        if not runs:
            return 0
        for k, (cfg, run_dir, _) in enumerate(runs):
            if (run_dir / DONE_JSON).exists():  # a finished run being extended: unfinished again
                (run_dir / DONE_JSON).unlink()
            try:
                run_info = ensure_run_info(  # before config.yaml: an older run keeps its identity
                    run_dir,
                    env=cfg.env,
                    variant=cfg.variant,
                    seed=cfg.seed,
                    settings_fingerprint=config_mod.fingerprint(cfg),
                    **({"tags": dict(args.tag)} if args.tag else {}),
                    command=naming.command_line("pets_core.mbexp", argv_list),
                    git_commit=naming.git_commit(),
                )
                write_text(run_dir / CONFIG_TXT, config_mod.to_text(cfg))
                write_text(run_dir / CONFIG_YAML, config_mod.to_yaml(cfg))
            except OSError as err:
                raise UsageError(f"cannot write to {run_dir}: {err.strerror}") from None
            runs[k] = (cfg, run_dir, run_info)
    except RunDirBusy as err:  # another process's run: leave its directory alone
        print(f"mbexp: error: {err}", file=sys.stderr)
        return 2
    except (UsageError, ConfigError, DeviceError, DamagedFile) as err:
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        print(f"mbexp: error: {err}", file=sys.stderr)
        return 2

    trackers = [
        tracker_for(
            cfg,
            run_dir,
            run_info,
            store.resolve_uri(args.mlflow_uri),
            experiment=args.mlflow_experiment,
            device=str(device),
            system_metrics=True,
        )
        for cfg, run_dir, run_info in runs
    ]
    for cfg, run_dir, _ in runs:
        print(f"run dir: {run_dir} ({cfg.env} {cfg.variant} seed {cfg.seed} on {device})")
    if args.run_dir is not None:
        resume = argv_list
    else:  # the fresh directory (a cohort: its seed<N> folders) becomes --run-dir
        where = runs[0][1] if len(seeds) == 1 else runs[0][1].parent / f"seed{SEED_FIELD}"
        resume = [*argv_list, "--run-dir", str(where)]
    resume_cmd = naming.command_line("pets_core.mbexp", resume)
    where_all = ", ".join(str(run_dir) for _, run_dir, _ in runs)

    def finish_unfinished(status: str) -> None:
        for tracker in trackers:
            tracker.finish([], status=status)

    with interrupts_as_exceptions():
        try:
            from pets_core.run.loop import run_cohort  # torch, mujoco: seconds
            from pets_core.run.seed_run import SeedRun

            for tracker in trackers:
                tracker.start()
            seed_runs = [
                SeedRun.open(cfg, run_dir, device=device, tracker=tracker)
                for (cfg, run_dir, _), tracker in zip(runs, trackers, strict=True)
            ]
            run_cohort(
                seed_runs,
                progress=not args.no_progress,
                progress_every_s=args.progress_every,
                status=status,
            )
        except Interrupted as stop:
            finish_unfinished("KILLED")
            print(
                f"mbexp: interrupted by {stop.signal_name}; {where_all} keeps every complete "
                f"iteration. Resume with: {resume_cmd}",
                file=sys.stderr,
            )
            return 128 + stop.signum
        except ReplayError as err:  # a slim checkpoint (python -m pets_core.snapshot)
            finish_unfinished("FAILED")
            print(f"mbexp: {where_all}: cannot resume its slim checkpoint: {err}", file=sys.stderr)
            return 1
        except (Diverged, DamagedFile) as err:
            finish_unfinished("FAILED")
            print(f"mbexp: error: {err}", file=sys.stderr)
            return 1
        except OSError as err:
            finish_unfinished("FAILED")
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            print(  # every write is atomic: the failed one left its file as it was
                f"mbexp: error: {err.strerror} writing {err.filename or where_all}; every file "
                "written before it (checkpoint.pt included) is intact. Free space, then "
                f"resume with: {resume_cmd}",
                file=sys.stderr,
            )
            return 1
        except BaseException:
            finish_unfinished("FAILED")
            raise
    for (cfg, run_dir, _), tracker in zip(runs, trackers, strict=True):
        print("\n".join(closing_summary(cfg, run_dir, tracker)), flush=True)
    return 0


def closing_summary(cfg: config_mod.PetsConfig, run_dir: Path, tracker: Tracker) -> list[str]:
    """Where the results are and how to browse them (printed after a run completes); every
    command is shell-quoted, so it pastes as printed."""
    where = run_dir.resolve()
    files = [n for n in (METRICS_CSV, LOGS_MAT, CONFIG_YAML, MODEL_PT) if (where / n).exists()]
    videos = [p.relative_to(where).as_posix() for p in RunDir(where).videos()]
    if videos:
        files.append(videos[0] if len(videos) == 1 else f"{len(videos)} videos train_iter*/*.mp4")
    lines = [f"results: {shlex.quote(str(where))}  ({', '.join(files)})"]
    ingest = naming.command_line(
        "pets_core.ingest", [str(where), "--mlflow-uri", store.absolute_uri(tracker.uri)]
    )
    if tracker.uri is not None and tracker.run_id is not None and tracker.active:
        lines.append(
            f"MLflow:  run {tracker.run_name} ({tracker.run_id}) in experiment {tracker.experiment}"
        )
        lines.append(f"browse:  {tracker.browse_hint()}")
    elif tracker.run_id is not None:  # started, then the store went away mid-run
        lines.append(
            f"MLflow:  tracking stopped after iteration {tracker.logged_through} "
            f"({tracker.stopped_reason}); run {tracker.run_id} lacks the rest. Fill it in with: "
            f"{ingest}"
        )
    else:
        lines.append(f"MLflow:  not logged; add it later with {ingest}")
    render = ["-env", cfg.env, "-model-dir", str(where)]
    lines.append(f"video:   {naming.command_line('pets_core.render', render)}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
