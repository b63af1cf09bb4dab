"""One GPU per run on a multi-GPU box (pets_core.run.gpu_slots), with a fake device count on
CPU: real concurrent processes and real flocks; only the GPU count is pretended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from pets_core.run import device as device_mod
from pets_core.run import gpu_slots

REPO = Path(__file__).resolve().parents[2]
# A run: claim a GPU out of `count`, print its index, hold it until stdin closes.
HOLDER = (
    "import sys; from pets_core.run.gpu_slots import claim_gpu; "
    "print(claim_gpu(int(sys.argv[1]), sys.argv[2]), flush=True); sys.stdin.read()"
)


@pytest.fixture(autouse=True)
def _release_in_process_slots():
    yield
    while gpu_slots._HELD_SLOTS:
        gpu_slots._HELD_SLOTS.pop().close()


def start_runs(n: int, count: int, lock_dir: Path) -> list[subprocess.Popen]:
    """n runs started at the same moment (they race for the assignment lock)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-c", HOLDER, str(count), str(lock_dir)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    return [subprocess.Popen(command, cwd=REPO, env=env, **pipes) for _ in range(n)]


def claimed(runs: list[subprocess.Popen]) -> list[int]:
    return [int(run.stdout.readline()) for run in runs]


def stop(runs: list[subprocess.Popen]) -> None:
    for run in runs:
        if run.poll() is None:
            run.stdin.close()
            run.wait(timeout=30)


def balanced(n: int, count: int) -> list[int]:
    """Oracle: n runs on `count` GPUs as evenly as possible, sorted loads."""
    return sorted([n // count + (i < n % count) for i in range(count)])


@pytest.mark.parametrize(("n", "count"), [(4, 4), (3, 8), (7, 3), (8, 2)])
def test_concurrent_runs_get_their_own_gpu_then_an_even_share(
    tmp_path: Path, n: int, count: int
) -> None:
    runs = start_runs(n, count, tmp_path)
    try:
        got = claimed(runs)
    finally:
        stop(runs)
    loads = Counter(got)
    assert all(0 <= i < count for i in got)
    assert sorted(loads[i] for i in range(count)) == balanced(n, count), got
    if n <= count:
        assert len(set(got)) == n  # every run on a GPU of its own


def test_a_killed_or_finished_run_frees_its_gpu(tmp_path: Path) -> None:
    first = start_runs(3, 3, tmp_path)
    try:
        got = claimed(first)
        assert sorted(got) == [0, 1, 2]
        victim = first[got.index(1)]
        os.kill(victim.pid, signal.SIGKILL)  # no cleanup: the kernel drops its flock
        victim.wait(timeout=30)
        late = start_runs(1, 3, tmp_path)
        assert claimed(late) == [1]
        stop([first[got.index(2)]])  # a run that ends normally
        later = start_runs(1, 3, tmp_path)
        assert claimed(later) == [2]
        stop(later + late)
    finally:
        stop(first)
    fresh = start_runs(1, 3, tmp_path)
    assert claimed(fresh) == [0]  # all gone: back to GPU 0, and the stale slot files removed
    assert [p.name.split(".")[0] for p in tmp_path.glob("*.slot")] == ["0"]
    stop(fresh)


def test_slots_are_keyed_by_the_physical_ids_a_scheduler_gave(tmp_path: Path, monkeypatch) -> None:
    """Two jobs with different SLURM allocations (GPUs 5,7 and 2,3) never count each other."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert gpu_slots.visible_gpu_ids(2) == ["5", "7"]
    assert [gpu_slots.claim_gpu(2, tmp_path) for _ in range(3)] == [0, 1, 0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu_slots.claim_gpu(2, tmp_path) == 0  # GPU 2 is free, whatever 5 and 7 carry
    assert Counter(p.name.split(".")[0] for p in tmp_path.glob("*.slot")) == {
        "5": 2, "7": 1, "2": 1
    }  # fmt: skip
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_slots.visible_gpu_ids(3) == ["0", "1", "2"]


@pytest.fixture
def four_fake_gpus(tmp_path: Path, monkeypatch):
    """torch reports 4 GPUs; set_device records instead of touching CUDA."""
    selected = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", selected.append)
    monkeypatch.setenv(gpu_slots.GPU_LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return selected


def test_auto_and_cuda_claim_distinct_gpus_explicit_index_is_kept(four_fake_gpus: list) -> None:
    """Before: device auto put every run on cuda:0. Each call here holds its slot (one process
    standing in for several runs)."""
    got = [device_mod.resolve_device(r) for r in ("auto", "cuda", "auto", "auto", "auto")]
    assert [str(d) for d in got] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]
    assert str(device_mod.resolve_device("cuda:2")) == "cuda:2"  # as given, no slot taken
    assert [str(d) for d in four_fake_gpus] == [str(d) for d in got] + ["cuda:2"]
    assert str(device_mod.resolve_device("cpu")) == "cpu"


def test_one_visible_gpu_takes_no_lock(tmp_path: Path) -> None:
    assert gpu_slots.claim_gpu(1, tmp_path) == 0
    assert gpu_slots.claim_gpu(0, tmp_path) == 0
    assert list(tmp_path.iterdir()) == []
