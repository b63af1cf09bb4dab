"""Notices a user must see (a partial run left out, tracking skipped): logging to stderr.

Not Python warnings: ``PYTHONWARNINGS=ignore`` (or a library's filter) would hide them, and a
warning is shown once per call site. The ``pets_core`` logger writes ``message`` lines to whatever
``sys.stderr`` is when it is called (so pytest's capsys and Snakemake's log redirection see them)
and does not propagate to the root logger (no duplicates where an application configures one).

    notice("partial run results/x: 3 of 5 planned iterations; left out")

A caller that wants the lines elsewhere too adds a handler to :data:`LOGGER`; :func:`silenced`
holds them back for a block (a second pass over runs that another step reports).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

LOGGER = logging.getLogger("pets_core")


class _CurrentStderr(logging.StreamHandler):
    """A StreamHandler on the sys.stderr of the moment, not the one at import."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


if not any(isinstance(h, _CurrentStderr) for h in LOGGER.handlers):
    LOGGER.addHandler(_CurrentStderr())
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


def notice(message: str) -> None:
    """One line the user must see, on stderr (and any handler added to LOGGER)."""
    LOGGER.warning(message)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """No notices inside the block."""
    was = LOGGER.disabled
    LOGGER.disabled = True
    try:
        yield
    finally:
        LOGGER.disabled = was
