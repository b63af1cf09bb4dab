"""CPU lanes: run independent matmul chains on worker threads, each with ONE OpenMP thread.

The planner's forward is E independent member MLPs per step. Run as one OpenMP team they need a
fork/join barrier per layer and member (25 per step for halfcheetah); on a shared 2-core machine a
barrier waits whenever the partner thread is descheduled, and planning slowed down 5-10x under
load. Here each of ``torch.get_num_threads()`` worker threads runs whole chains (a member's layers
on a block of rows) single-threaded: no barriers inside a step, one join per step. The results
equal the single-team loop's (row blocks of a matmul are independent; bit-identical with
torch 2.13's oneDNN here). Torch ops
release the GIL while they compute.

``omp_set_num_threads`` is a per-thread setting in libgomp, so setting it to 1 in a worker does
not touch the main thread's team (used for everything else). If torch's OpenMP runtime cannot be
found, ``run_chains`` falls back to the plain loop.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import torch

_PREFIX = "pets-lane"


@cache
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime torch loaded (libgomp / libiomp), found in this process's maps."""
    try:
        with open(f"/proc/{os.getpid()}/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.omp_set_num_threads  # noqa: B018 -- the symbol must exist
            return lib
        except (OSError, AttributeError):
            continue
    return None


@cache
def _pool(num_lanes: int) -> ThreadPoolExecutor | None:
    omp = _openmp()
    if omp is None:
        return None
    return ThreadPoolExecutor(
        num_lanes, thread_name_prefix=_PREFIX, initializer=omp.omp_set_num_threads,
        initargs=(1,),
    )  # fmt: skip


def in_lane() -> bool:
    return threading.current_thread().name.startswith(_PREFIX)


def num_lanes() -> int:
    """Lanes ``run_chains`` uses: torch's intra-op thread count (1 = no workers; 1 in a lane)."""
    return 1 if in_lane() else torch.get_num_threads()


def run_chains(jobs: Sequence[Callable[[], None]]) -> None:
    """Run independent jobs (each writes its own output) on the lanes; wait for all. Inside a
    lane (nested) the jobs run inline."""
    lanes = num_lanes()
    pool = _pool(lanes) if lanes > 1 and len(jobs) > 1 else None
    if pool is None:
        for job in jobs:
            job()
        return
    for future in [pool.submit(job) for job in jobs]:
        future.result()
