"""`python -m pets_core.mbexp`: the original's ``scripts/mbexp.py`` command line (spec sec. 6.3).

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
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pets_core import config as config_mod
from pets_core import tracking
from pets_core.config import ConfigError
from pets_core.device import DeviceError, resolve_device
from pets_core.logs import DONE_JSON, write_text

PROG = "python -m pets_core.mbexp"


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run one PETS experiment (Chua et al. 2018).")
    p.add_argument("-env", required=True, help="cartpole | reacher | pusher | halfcheetah")
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
    p.add_argument("--seed", type=int, default=0, help="seeds env, torch and numpy (default 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (cuda absent -> error)")
    p.add_argument("--run-dir", type=Path, default=None, help="write here; resumes if interrupted")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument(
        "--mlflow-uri",
        default=None,
        help=f"tracking store (default $MLFLOW_TRACKING_URI or {tracking.DEFAULT_URI}; none = off)",
    )
    p.add_argument("--mlflow-experiment", default=None, help="default pets-<env>")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


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
    saved = run_dir / "config.yaml"
    if saved.exists() and (run_dir / "checkpoint.pt").exists():
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
    run_dir: Path | None = None
    created = False
    try:
        args = parser.parse_args(argv)
        cfg = config_mod.load_config(args.env, args.ca, args.o, seed=args.seed)
        device = resolve_device(args.device)
        if args.threads is not None:
            if args.threads < 1:
                raise UsageError(f"--threads must be >= 1 (got {args.threads})")
            import torch

            torch.set_num_threads(args.threads)
        if args.run_dir is not None and (Path(args.run_dir) / DONE_JSON).exists():
            print(f"{args.run_dir} is already complete ({DONE_JSON} present); nothing to do")
            return 0
        run_dir, created = prepare_run_dir(args, cfg)
        try:
            write_text(run_dir / "config.txt", config_mod.to_text(cfg))
            write_text(run_dir / "config.yaml", config_mod.to_yaml(cfg))
        except OSError as err:
            raise UsageError(f"cannot write to {run_dir}: {err.strerror}") from None
    except (UsageError, ConfigError, DeviceError) as err:
        if created and run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f"mbexp: error: {err}", file=sys.stderr)
        return 2

    from pets_core.experiment import run_experiment

    tracker = tracking.Tracker(
        tracking.resolve_uri(args.mlflow_uri),
        experiment=args.mlflow_experiment or tracking.experiment_name(cfg.env),
        run_name=tracking.run_name(cfg.env, cfg.variant, cfg.seed),
        run_dir=run_dir,
        tags={"env": cfg.env, "variant": cfg.variant, "seed": cfg.seed, "device": device.type},
        params=config_mod.flatten(cfg),
    ).start()
    print(f"run dir: {run_dir} ({cfg.env} {cfg.variant} seed {cfg.seed} on {device})")
    try:
        run_experiment(cfg, run_dir, device=device, tracker=tracker, progress=not args.no_progress)
    except Exception:
        if tracker.active:
            tracker.finish([], status="FAILED")
        raise
    if tracker.log_ms:
        ms = sum(tracker.log_ms) / len(tracker.log_ms)
        print(f"MLflow: run {tracker.run_id} in {tracker.uri} ({ms:.1f} ms per iteration batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
