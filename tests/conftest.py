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


def pytest_report_header(config):
    """Where the suite ran: floats are bit-identical only within one CPU family, so a failure on a
    new host says which CPU and instruction sets it had."""
    return f"cpu: {cpu_description()}"


def cpu_description() -> str:
    """'<model name>; <SIMD flags>' from /proc/cpuinfo, else what platform knows."""
    import platform
    import re
    from pathlib import Path

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
    simd = sorted(
        f
        for f in (flags.group(1).split() if flags else [])
        if re.fullmatch(r"avx\w*|amx\w*|fma|f16c|sse4_2|asimd\w*|sve\w*", f)
    )
    name = model.group(1).strip() if model else platform.machine()
    return f"{name}, {os.cpu_count()} cores; {' '.join(simd) or 'no SIMD flags listed'}"
