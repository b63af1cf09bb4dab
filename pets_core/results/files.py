"""Files written atomically (temp file in the same folder, fsync, then os.replace).

Every file of a run directory goes through here, so a reader (or a kill at any moment) sees either
the old complete file or the new complete file, never a partial one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import scipy.io


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what a plain open() would give (mkstemp makes 0600)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and rename it over ``path``.

    Readers see either the old complete file or the new complete file, never a partial one.
    """
    path = Path(path)
    # keep the real extension last: writers such as imageio pick the format from it
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # a failed write names no file
            err.filename = str(path)
        raise


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_mat(path: Path, arrays: Mapping[str, Any]) -> None:
    atomic_write(path, lambda f: scipy.io.savemat(f, dict(arrays)))


