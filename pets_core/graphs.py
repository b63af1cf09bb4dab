"""Static-buffer calls, captured as one CUDA graph on CUDA: launch-free planning and training steps.

On CUDA the planner's horizon rollout (``planning.rollout._rollout``) and the trainer's
forward + backward (``models.backprop.EnsembleGradient``) are many small kernels: at paper size
about a thousand launches per CEM iteration and ~40 per training step, and the GPU waits on the
launching CPU thread. ``StaticGraph`` runs such a function on fixed input buffers and, on CUDA,
captures it once with ``torch.cuda.CUDAGraph``: each call copies its inputs into the buffers and
replays the graph (one launch, no host synchronisation inside). The replay runs the captured
kernels on the new inputs, so its results equal the eager function's on the same device.

Randomness stays outside the graphs: callers draw it eagerly from their own generators, in the
same order as the eager path, and pass it in as inputs. A graph reads the tensors its function
captured (weights, buffers) at their addresses: in-place updates (Adam on the flat parameters) are
seen by the next replay; rebuilt tensors (a new planning layout after ``train()``) need a new graph.

Elsewhere than CUDA there is nothing to capture: the same static-buffer function runs as it is
(``StaticGraph.captured`` is False), which is what the CPU tests exercise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

WARMUP_CALLS = 2
"""Eager runs on a side stream before capture (cuBLAS handles and workspaces, allocator pools)."""


class StaticGraph:
    """``out = fn(**buffers)`` on fixed buffers, CUDA-graphed on CUDA.

    ``inputs`` are example tensors (or None) by name; their shapes, dtypes and device are fixed
    from then on. ``fn`` must not synchronise with the host (capture would fail) and must return
    a tensor, or None when it only writes into tensors it owns. The returned tensor is the static
    output: the next call overwrites it.
    """

    def __init__(self, fn: Callable[..., Tensor | None], inputs: dict[str, Tensor | None]) -> None:
        self._fn = fn
        self.buffers = {k: None if v is None else v.clone() for k, v in inputs.items()}
        devices = {v.device for v in self.buffers.values() if v is not None}
        if len(devices) != 1:
            raise ValueError(f"inputs must be on one device, got {sorted(map(str, devices))}")
        (self.device,) = devices
        self.captured = self.device.type == "cuda"
        self.out: Tensor | None = None
        if self.captured:
            self._capture()

    def _body(self) -> None:
        self.out = self._fn(**self.buffers)

    def _capture(self) -> None:
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self._body()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()

    def __call__(self, **inputs: Tensor | None) -> Tensor | None:
        for key, value in inputs.items():
            if self.buffers[key] is not None:
                self.buffers[key].copy_(value)
        if self.captured:
            self.graph.replay()
        else:
            self._body()
        return self.out
