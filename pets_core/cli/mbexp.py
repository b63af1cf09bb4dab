"""`python -m pets_core.mbexp`: the original's ``scripts/mbexp.py`` command line (§cli).

    python -m pets_core.mbexp -env halfcheetah -ca model-type PE -ca prop-type TSinf \\
        -o exp_cfg.exp_cfg.ntrain_iters 5 [-logdir log] [--seed 0] [--device auto|cpu|cuda] \\
        [--run-dir DIR] [--threads N] [--mlflow-uri URI] [--mlflow-experiment NAME]

Without --run-dir the run goes to <logdir>/<YYYY-MM-DD--HH:MM:SS>/ (a suffix -1, -2, ... if that
already exists, so two runs started in the same second never collide). With --run-dir an
interrupted run resumes after its last complete iteration and a finished one (done.json) is left
alone. Bad input exits 2 with one line naming the culprit and the valid choices.
"""

from __future__ import annotations

import argparse
import os
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
from pets_core.results.rundir import (
    CONFIG_TXT,
    CONFIG_YAML,
    LOGS_MAT,
    METRICS_CSV,
    MODEL_PT,
    RunDir,
)
from pets_core.results.tracking import Tracker, tracker_for
from pets_core.run.device import DeviceError, resolve_device
from pets_core.run.progress import PLAIN_EVERY_S
from pets_core.seeding import MAX_SEED

PROG = "python -m pets_core.mbexp"


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
        "--seed", type=int, default=0, help=f"0..{MAX_SEED}; seeds every random stream (default 0)"
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


def prepare_run_dir(args: argparse.Namespace, cfg: config_mod.PetsConfig) -> tuple[Path, bool]:
    """(run_dir, created_now). Raises UsageError for an unwritable place or a mismatched config."""
    try:
        if args.run_dir is None:
            return new_run_dir(Path(args.logdir)), True
        run_dir = Path(args.run_dir)
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        where = args.run_dir or args.logdir
        raise UsageError(f"cannot create a run directory in {where}: {err.strerror}") from None
    saved = run_dir / CONFIG_YAML
    if RunDir(run_dir).is_resumable:
        try:
            diff = config_mod.first_difference(config_mod.from_yaml(saved), cfg)
        except ConfigError as err:
            diff = f"unreadable config.yaml ({err})"
        if diff is not None:
            raise UsageError(
                f"--run-dir {run_dir} holds a run with a different config ({diff}); "
                "use another --run-dir or the same arguments to resume it"
            )
    return run_dir, created


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv_list = list(sys.argv[1:] if argv is None else argv)
    run_dir: Path | None = None
    created = False
    try:
        args = parser.parse_args(argv_list)
        if not 0 <= args.seed <= MAX_SEED:
            raise UsageError(f"--seed must be in 0..{MAX_SEED} (got {args.seed})")
        cfg = config_mod.load_config(args.env, args.ca, args.o, seed=args.seed)
        device = resolve_device(args.device)
        if not args.progress_every >= 0:
            raise UsageError(f"--progress-every must be >= 0 seconds (got {args.progress_every})")
        status = open_status_fd(args.status_fd)
        if args.threads is not None:
            if args.threads < 1:
                raise UsageError(f"--threads must be >= 1 (got {args.threads})")
            import torch

            torch.set_num_threads(args.threads)
        if args.run_dir is not None and RunDir(args.run_dir).is_complete:
            print(f"{args.run_dir} is already complete (done.json present); nothing to do")
            return 0
        run_dir, created = prepare_run_dir(args, cfg)
        try:
            run_info = ensure_run_info(  # before config.yaml: an older run keeps its identity
                run_dir,
                env=cfg.env,
                variant=cfg.variant,
                seed=cfg.seed,
                command=naming.command_line("pets_core.mbexp", argv_list),
                git_commit=naming.git_commit(),
            )
            write_text(run_dir / CONFIG_TXT, config_mod.to_text(cfg))
            write_text(run_dir / CONFIG_YAML, config_mod.to_yaml(cfg))
        except OSError as err:
            raise UsageError(f"cannot write to {run_dir}: {err.strerror}") from None
    except (UsageError, ConfigError, DeviceError) as err:
        if created and run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f"mbexp: error: {err}", file=sys.stderr)
        return 2

    tracker = tracker_for(
        cfg,
        run_dir,
        run_info,
        store.resolve_uri(args.mlflow_uri),
        experiment=args.mlflow_experiment,
        device=str(device),
        system_metrics=True,
    )
    print(f"run dir: {run_dir} ({cfg.env} {cfg.variant} seed {cfg.seed} on {device})")
    with interrupts_as_exceptions():
        try:
            from pets_core.run.loop import run_experiment  # torch, mujoco: seconds

            tracker.start()
            run_experiment(
                cfg,
                run_dir,
                device=device,
                tracker=tracker,
                progress=not args.no_progress,
                progress_every_s=args.progress_every,
                status=status,
            )
        except Interrupted as stop:
            tracker.finish([], status="KILLED")
            resume = (
                argv_list if args.run_dir is not None else [*argv_list, "--run-dir", str(run_dir)]
            )
            print(
                f"mbexp: interrupted by {stop.signal_name}; {run_dir} keeps every complete "
                f"iteration. Resume with: {naming.command_line('pets_core.mbexp', resume)}",
                file=sys.stderr,
            )
            return 128 + stop.signum
        except BaseException:
            tracker.finish([], status="FAILED")
            raise
    print("\n".join(closing_summary(cfg, run_dir, tracker)), flush=True)
    return 0


def closing_summary(cfg: config_mod.PetsConfig, run_dir: Path, tracker: Tracker) -> list[str]:
    """Where the results are and how to browse them (printed after a run completes)."""
    where = run_dir.resolve()
    files = [n for n in (METRICS_CSV, LOGS_MAT, CONFIG_YAML, MODEL_PT) if (where / n).exists()]
    videos = [p.relative_to(where).as_posix() for p in RunDir(where).videos()]
    if videos:
        files.append(videos[0] if len(videos) == 1 else f"{len(videos)} videos train_iter*/*.mp4")
    lines = [f"results: {where}  ({', '.join(files)})"]
    if tracker.uri is not None and tracker.run_id is not None:
        lines.append(
            f"MLflow:  run {naming.run_name(cfg.variant, cfg.seed)} ({tracker.run_id}) "
            f"in experiment {tracker.experiment}"
        )
        lines.append(f"browse:  {tracker.browse_hint()}")
    else:
        lines.append(
            "MLflow:  not logged; add it later with "
            f"python -m pets_core.ingest {where} --mlflow-uri {tracker.uri or store.DEFAULT_URI}"
        )
    lines.append(f"video:   python -m pets_core.render -env {cfg.env} -model-dir {where}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
