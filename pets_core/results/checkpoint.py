"""checkpoint.pt's file format: nested dicts of tensors, numpy arrays and plain values.

What a checkpoint holds (the loop's state, models, RNGs) is :mod:`pets_core.run.checkpoint`.

Written atomically after every iteration (temp file + os.replace), so a kill at any moment leaves
either the previous or the new checkpoint. numpy arrays are stored as tagged tensors so the file
loads with ``torch.load(weights_only=True)`` (no arbitrary pickles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pets_core.results.files import atomic_path
from pets_core.results.rundir import CHECKPOINT_PT

_ND = "__ndarray__"


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


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    with atomic_path(Path(run_dir) / CHECKPOINT_PT) as tmp:
        torch.save(pack(state), tmp)


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / CHECKPOINT_PT
    if not path.exists():
        return None
    return unpack(torch.load(path, map_location="cpu", weights_only=True))
