"""The matmul limit of `bench plan`: the best rate of the planner's layer shapes, per kernel.

``matmul_rates`` times ``(E, rows, in) x (E, in, out)`` three ways (``torch.bmm``, oneDNN per
member, oneDNN per member and row block on the planner's CPU lanes); ``matmul_precision`` sets
torch's float32 matmul precision for a bench precision (tf32).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from itertools import pairwise

import torch


def _best_seconds(fn, reps: int) -> float:
    fn()  # warm-up (allocations, oneDNN primitive cache)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_rates(
    E: int,
    rows: int,
    dims: list[tuple[int, int]],
    device,
    reps: int = 3,
    dtype: torch.dtype | Sequence[torch.dtype] = torch.float32,
) -> dict:
    """Best GFLOP/s in ``dtype`` (fp32 unless given; a sequence: each layer's, as the planner's
    mixed precisions run them) over the planner's layer shapes ``(E, rows, in) x (E, in, out)``,
    three ways: ``torch.bmm`` (one call per layer), oneDNN per member with one OpenMP team, and
    oneDNN per member and row block on the single-threaded lanes the planner uses. Under
    ``matmul_precision("tf32")`` the fp32 kernels may use TF32."""
    from pets_core.planning.lanes import num_lanes, run_chains

    flops = sum(2 * E * rows * d_in * d_out for d_in, d_out in dims)
    dtypes = [dtype] * len(dims) if isinstance(dtype, torch.dtype) else list(dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    shapes = [
        (torch.randn(E, rows, d_in, generator=gen, device=device).to(dt),
         (torch.randn(E, d_in, d_out, generator=gen, device=device) / d_in**0.5).to(dt),
         torch.empty(E, rows, d_out, device=device, dtype=dt))
        for (d_in, d_out), dt in zip(dims, dtypes, strict=True)
    ]  # fmt: skip

    def bmm() -> None:
        for x, w, out in shapes:
            torch.bmm(x, w, out=out)
        _sync(device)

    rates = {"bmm": flops / _best_seconds(bmm, reps) / 1e9}
    if torch.device(device).type == "cpu" and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        linear = torch.ops.mkldnn._linear_pointwise
        packed = [(x, [wi.T.contiguous() for wi in w]) for x, w, _ in shapes]

        def onednn() -> None:
            for x, w_t in packed:
                for e in range(E):
                    linear(x[e], w_t[e], None, "none", [], "")

        blocks = num_lanes()
        bounds = [rows * i // blocks for i in range(blocks + 1)]

        def job(x, w_t, e, lo, hi):
            return lambda: linear(x[e, lo:hi], w_t[e], None, "none", [], "")

        def onednn_lanes() -> None:  # one join per layer (the planner joins once per step)
            for x, w_t in packed:
                run_chains(
                    [job(x, w_t, e, lo, hi) for e in range(E) for lo, hi in pairwise(bounds)]
                )

        rates["onednn"] = flops / _best_seconds(onednn, reps) / 1e9
        rates["onednn_lanes"] = flops / _best_seconds(onednn_lanes, reps) / 1e9
    return rates


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@contextmanager
def matmul_precision(precision: str):
    """``tf32``: float32 matmuls at torch's "high" precision (TF32 tensor cores on CUDA; on a CPU
    without them the same fp32 kernels); anything else at "highest" (plain fp32)."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)
