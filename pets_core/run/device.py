"""Device resolution (one GPU per run on a multi-GPU box: pets_core.run.gpu_slots) and global
fallback seeds."""

from __future__ import annotations

import random

import numpy as np
import torch

from pets_core.run.gpu_slots import claim_gpu


class DeviceError(RuntimeError):
    """An explicitly requested device is not available."""


def resolve_device(requested: str = "auto") -> torch.device:
    """'auto' picks CUDA when visible; an explicit 'cuda' that is not visible is an error.

    'auto' and 'cuda' claim the least-used visible GPU (pets_core.run.gpu_slots); 'cuda:N'
    is kept."""
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        requested = "cuda"
    if requested not in ("cpu", "cuda") and not requested.startswith("cuda:"):
        raise DeviceError(f"unknown device {requested!r}; valid: auto, cpu, cuda")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {requested} asked for CUDA but no GPU is visible; use auto or cpu"
        )
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", claim_gpu(torch.cuda.device_count()))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # a bare torch.cuda call also lands on this run's GPU
    return device


def seed_everything(seed: int) -> None:
    """Global fallback seeds; the run's randomness flows through explicit generators."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- for third-party code that uses the global RNG
    torch.manual_seed(seed)  # seeds every CUDA device too
    torch.backends.cudnn.benchmark = False


def global_rng_state() -> dict:
    """Python, numpy-global and torch-global RNG states (checkpointed for resume)."""
    np_state = np.random.get_state()  # noqa: NPY002
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy(), *rest))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
