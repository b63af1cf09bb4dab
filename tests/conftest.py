"""Shared test setup: headless rendering, CPU-only by default, GPU cases skipped without CUDA."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco's GL context
os.environ.setdefault("PYTHONHASHSEED", "0")

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA; none is visible")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not keywords: a folder may be "gpu"
            item.add_marker(skip_gpu)
