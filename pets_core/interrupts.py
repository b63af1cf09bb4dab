"""SIGINT / SIGTERM as an exception in the main thread, held back inside critical sections.

* :func:`interrupts_as_exceptions` (the runner's block in ``python -m pets_core.mbexp``): the
  first SIGINT or SIGTERM raises :class:`Interrupted` in the main thread; later ones are ignored,
  so the cleanup (the MLflow run ended KILLED) finishes.
* :func:`deferred` (a critical section: every MLflow call of the
  :class:`~pets_core.results.tracking.Tracker`): a signal arriving inside it is recorded and
  :class:`Interrupted` is raised when the outermost section exits, so it never cuts a store write
  in half, nor passes through SQLAlchemy's pool (which logs a full traceback,
  "Exception during reset or similar", for any exception crossing a connection check-in).
  Planning and training run outside any section and are interrupted at once.

Without :func:`interrupts_as_exceptions` (ingest, tests, another thread) :func:`deferred` changes
nothing: Python's own SIGINT handler still raises ``KeyboardInterrupt`` wherever it lands.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_depth = 0  # deferred() sections the main thread is in
_pending: int | None = None  # the signal that arrived inside one, raised when they end


class Interrupted(BaseException):
    """SIGINT / SIGTERM during a run: the MLflow run ends KILLED, the run dir stays resumable;
    the process exits 128 + ``signum`` (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.signal_name = signal.Signals(signum).name


def _handler(signum: int, _frame) -> None:
    global _pending
    for s in SIGNALS:  # a second signal while the first is handled is ignored
        signal.signal(s, signal.SIG_IGN)
    if _depth:
        _pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` (raised in the main thread, at once or
    when the :func:`deferred` section it arrived in ends) for the block."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending = None
    previous = {  # a signal the parent made us ignore (nohup, `cmd &` in a script) stays ignored
        s: signal.signal(s, _handler) for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _pending = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A critical section: a SIGINT / SIGTERM arriving inside it interrupts when it exits (the
    outermost one, if nested). Also a decorator. A no-op outside the main thread, where no signal
    handler runs."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)
