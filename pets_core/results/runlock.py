"""One writer per run directory: an exclusive lock on ``<run_dir>/.lock``, held for the whole run.

Two writers on one directory would delete each other's temp files and interleave checkpoints, so
the runner takes the lock before it writes anything; a second runner on the same ``--run-dir``
refuses at once with :class:`RunDirBusy` (``... is in use by pid 1234 on host gpu-3 ...``). The
lock is ``flock`` on an open file, so the kernel releases it when its holder exits, however it
exits (kill -9 included): there are no stale locks to clean up. The file keeps the last holder's
``pid host`` for the message; its presence means nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from pets_core.results.rundir import LOCK


class RunDirBusy(Exception):
    """Another process holds the run directory's lock; the message names its pid and host."""


@contextlib.contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock (non-blocking) while the block runs; RunDirBusy if taken."""
    path = Path(run_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 256, 0).decode(errors="replace").split()
            pid, host = (holder + ["?", "?"])[:2]
            raise RunDirBusy(
                f"{run_dir} is in use by another run (pid {pid} on host {host}); wait for it "
                "to finish or stop it, or use another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
