"""One GPU per run on a multi-GPU box, without CUDA_VISIBLE_DEVICES by hand (torch-free).

With several visible GPUs a run claims the GPU that the fewest live runs on this machine hold
(lowest index on ties), so concurrent jobs (`snakemake --resources gpu=N`) spread one per GPU and
share evenly once there are more jobs than GPUs. A run holds an flock on a slot file until it exits
(a killed run frees its slot); the pick happens under one machine-wide lock, so jobs starting at the
same moment never pick the same GPU. Slots are keyed by the physical ids in CUDA_VISIBLE_DEVICES
when a scheduler (SLURM) set it, so jobs with different allocations never count each other.
Slot directory: $PETS_GPU_LOCK_DIR, else <tmp>/pets-gpu-slots-<uid> (one per machine and user).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

GPU_LOCK_DIR_ENV = "PETS_GPU_LOCK_DIR"
_HELD_SLOTS: list = []  # open slot files: each flock lasts as long as this process


def visible_gpu_ids(count: int) -> list[str]:
    """Physical ids of the `count` visible GPUs: CUDA_VISIBLE_DEVICES entries, else 0..count-1."""
    listed = [x.strip() for x in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if x.strip()]
    return listed[:count] if len(listed) >= count else [str(i) for i in range(count)]


def claim_gpu(count: int, lock_dir: Path | None = None) -> int:
    """Index (0..count-1) of the visible GPU the fewest live runs on this machine hold; this
    process holds a slot on it until it exits. One GPU (or none): 0, nothing to claim."""
    if count <= 1:
        return 0
    ids = visible_gpu_ids(count)
    lock_dir = Path(
        lock_dir
        or os.environ.get(GPU_LOCK_DIR_ENV)
        or Path(tempfile.gettempdir()) / f"pets-gpu-slots-{os.getuid()}"
    )
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "assign.lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # released when the with-block closes it
        load = dict.fromkeys(ids, 0)
        for slot in lock_dir.glob("*.slot"):
            gpu = slot.name.rsplit(".", 3)[0]  # <gpu id>.<pid>.<n>.slot
            with open(slot, "a") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a live run holds it
                    if gpu in load:
                        load[gpu] += 1
                    continue
                slot.unlink()  # its run is gone
        index = min(range(count), key=lambda i: (load[ids[i]], i))
        name = f"{ids[index]}.{os.getpid()}.{len(_HELD_SLOTS)}.slot"
        slot_file = open(lock_dir / name, "a")  # held (and locked) for the life of the run
        fcntl.flock(slot_file, fcntl.LOCK_EX)
        _HELD_SLOTS.append(slot_file)
    return index
