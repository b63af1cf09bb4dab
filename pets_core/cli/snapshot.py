"""`python -m pets_core.snapshot SRC DST`: an unfinished run, small enough to commit.

    python -m pets_core.snapshot results/runs/pusher/PE-TSinf-CEM/seed4 snapshots/pusher-seed4

Copies what resuming needs (run.json, config.yaml, config.txt, logs.mat, metrics.csv) and writes a
*slim* checkpoint.pt: the run's state, RNGs and logged episodes without the model weights and Adam
moments, which are most of the file (pets_core.run.checkpoint). ``python -m pets_core.mbexp ...
--run-dir DST`` then resumes it: the model's training is replayed on the logged episodes, equal to
the one that ran bit for bit on the machine that made it (done.json's ``replays`` says whether).

For long runs that span sessions on machines that are not kept. SRC is only read; DST is new, or an
older snapshot of the same run (its run.json names the same run_uid), updated file by file
atomically. Bad input exits 2 with one line.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from pets_core.results.checkpoint import save_checkpoint
from pets_core.results.files import atomic_path
from pets_core.results.identity import read_run_info
from pets_core.results.reader import DamagedFile, read_checkpoint
from pets_core.results.rundir import (
    CHECKPOINT_PT,
    CONFIG_TXT,
    CONFIG_YAML,
    DONE_JSON,
    LOGS_MAT,
    METRICS_CSV,
    RUN_JSON,
)
from pets_core.run.checkpoint import slim

PROG = "python -m pets_core.snapshot"
COPIED = (RUN_JSON, CONFIG_YAML, CONFIG_TXT, LOGS_MAT, METRICS_CSV)
"""What a resume reads besides checkpoint.pt (logs.mat / metrics.csv exist from iteration 1)."""


class SnapshotError(Exception):
    """Bad input: one line, exit status 2."""


def snapshot(src: Path, dst: Path) -> dict[str, int]:
    """Write the slim snapshot of run directory ``src`` into ``dst``; returns bytes per file."""
    if not (src / CHECKPOINT_PT).is_file():
        raise SnapshotError(f"{src}: no {CHECKPOINT_PT}, so nothing to resume from")
    if (src / DONE_JSON).exists():
        raise SnapshotError(
            f"{src} is finished ({DONE_JSON}); keep its logs.mat, metrics.csv, "
            f"config.yaml and {DONE_JSON} instead"
        )
    for name in (RUN_JSON, CONFIG_YAML):
        if not (src / name).is_file():
            raise SnapshotError(
                f"{src}: no {name}; not a run directory of python -m pets_core.mbexp"
            )
    uid = read_run_info(src)["run_uid"]
    if dst.exists() and any(dst.iterdir()):
        other = read_run_info(dst)["run_uid"] if (dst / RUN_JSON).is_file() else None
        if other != uid:
            raise SnapshotError(
                f"{dst} holds something else (run_uid {other}, not {uid}); "
                "choose an empty or new directory"
            )
    try:
        ckpt = read_checkpoint(src)
    except DamagedFile as err:
        raise SnapshotError(str(err)) from None
    dst.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name in COPIED:
        if (src / name).is_file():
            with atomic_path(dst / name) as tmp:
                shutil.copyfile(src / name, tmp)
            sizes[name] = (dst / name).stat().st_size
    save_checkpoint(dst, slim(ckpt))  # with its checksum, atomically
    sizes[CHECKPOINT_PT] = (dst / CHECKPOINT_PT).stat().st_size
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or any(a.startswith("-") for a in args):
        print(f"usage: {PROG} SRC_RUN_DIR DST_DIR", file=sys.stderr)
        return 2
    src, dst = map(Path, args)
    try:
        sizes = snapshot(src, dst)
    except SnapshotError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    iteration = read_checkpoint(dst)["run"]["iteration"]
    total = sum(sizes.values())
    print(
        f"{dst}: iteration {iteration}, {total / 1e6:.2f} MB "
        f"(checkpoint.pt {sizes[CHECKPOINT_PT] / 1e6:.2f} MB, slim)"
    )
    return 0
