"""checkpoint.pt's file format: nested dicts of tensors, numpy arrays and plain values.

What a checkpoint holds (the loop's state, models, RNGs) is :mod:`pets_core.run.checkpoint`.

Written atomically after every iteration (temp file + os.replace), so a kill at any moment leaves
either the previous or the new checkpoint. numpy arrays are stored as tagged tensors so the file
loads with ``torch.load(weights_only=True)`` (no arbitrary pickles).

The file is ``{"sha256": hex digest, "payload": uint8 tensor}``, where the payload is the state
serialised by ``torch.save``: torch does not check its archive's CRCs, so without the digest a
flipped byte would resume into a different run. :func:`load_checkpoint` verifies it
(:class:`ChecksumMismatch`); files written before it existed (the state itself, no digest) still
load. A full disk fails in ``write`` with an ``OSError`` (ENOSPC) before the old file is touched.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pets_core.results.files import atomic_write
from pets_core.results.rundir import CHECKPOINT_PT

_ND = "__ndarray__"
_SHA, _PAYLOAD = "sha256", "payload"


def pack(obj: Any) -> Any:
    """np.ndarray -> {"__ndarray__": tensor}, recursively through dicts, lists and tuples."""
    if isinstance(obj, np.ndarray):
        return {_ND: torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, dict):
        return {k: pack(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(pack(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def unpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_ND}:
            return obj[_ND].numpy()
        return {k: unpack(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(unpack(v) for v in obj)
    return obj


class ChecksumMismatch(ValueError):
    """checkpoint.pt's payload is not what was written (pets_core.results.reader names it)."""


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(pack(state), buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    framed = io.BytesIO()
    torch.save({_SHA: digest, _PAYLOAD: torch.frombuffer(bytearray(payload), dtype=torch.uint8)},
               framed)  # fmt: skip
    atomic_write(Path(run_dir) / CHECKPOINT_PT, lambda f: f.write(framed.getbuffer()))


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The saved state, or None without a checkpoint.pt. Read users' errors through
    :func:`pets_core.results.reader.read_checkpoint`, which names the file and the fix."""
    path = Path(run_dir) / CHECKPOINT_PT
    if not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(saved, dict) and set(saved) == {_SHA, _PAYLOAD}:
        payload = saved[_PAYLOAD].numpy().tobytes()
        if hashlib.sha256(payload).hexdigest() != saved[_SHA]:
            raise ChecksumMismatch(path)
        saved = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    return unpack(saved)
