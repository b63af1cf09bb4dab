"""Captured rollouts: a CEM iteration's whole horizon rollout replayed as one CUDA graph.

Shapes: N candidates, H horizon, A action dim, O obs dim, P particles, E members, T target dim.

Eager on CUDA, one rollout (``propagation._rollout``) launches a few dozen small kernels per
horizon step (input assembly, per layer a ``baddbmm`` and a swish, the head, sampling, obs_postproc
and the cost): at paper size that is about a thousand launches per CEM iteration, and the GPU waits
on the launching CPU thread. ``StaticRollout`` runs the same function on fixed input buffers
(``obs (O,)``, ``action_seqs (N, H, A)``, ``goal``, the call's random draws) and, on CUDA, captures
it once with ``torch.cuda.CUDAGraph``; each call then copies its inputs into the buffers and
replays the graph: one launch for the horizon loop, no host synchronisation inside it. The random
draws stay outside the graph, drawn by ``propagation._draw`` from the caller's generator in the same
order as the eager path, so a graphed call consumes the same random numbers and gives the eager
path's costs (the same kernels on the same inputs). Sampling the candidates (CEM) and the elite
update stay on the device between replays.

A graph is bound to its predictor (the model's weights at capture time) and to the shapes; it is
captured again when either changes (after every ``train()``, once per plan shape). Elsewhere than
CUDA there is nothing to capture: the same static-buffer function runs as it is, which is what the
CPU tests exercise (``StaticRollout.captured`` is False there).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

WARMUP_CALLS = 2
"""Eager runs on a side stream before capture (cuBLAS handles and workspaces, allocator pools)."""

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class StaticRollout:
    """``costs (N,) = rollout(obs, action_seqs, goal, draws)`` on fixed buffers, CUDA-graphed.

    ``rollout`` is called with the static buffers ``(obs, action_seqs, goal, draws)`` and must
    return the costs; it must not synchronise with the host (capture would fail).
    """

    def __init__(self, rollout, obs: Tensor, action_seqs: Tensor, goal, draws: dict) -> None:
        self._rollout = rollout
        self.obs = obs.clone()  # (O,)
        self.action_seqs = action_seqs.clone()  # (N, H, A)
        self.goal = None if goal is None else goal.clone()
        self.draws = {k: v.clone() for k, v in draws.items()}
        self.device = action_seqs.device
        self.captured = self.device.type == "cuda"
        self.costs: Tensor | None = None  # (N,), written by every replay
        if self.captured:
            self._capture()

    def _body(self) -> None:
        self.costs = self._rollout(self.obs, self.action_seqs, self.goal, self.draws)

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

    def __call__(self, obs: Tensor, action_seqs: Tensor, goal, draws: dict) -> Tensor:
        self.obs.copy_(obs)
        self.action_seqs.copy_(action_seqs)
        if self.goal is not None:
            self.goal.copy_(goal)
        for key, value in draws.items():
            self.draws[key].copy_(value)
        if self.captured:
            self.graph.replay()
        else:
            self._body()
        return self.costs.clone()  # the next replay overwrites the buffer


def static_rollout(model, key: tuple, rollout, obs, action_seqs, goal, draws) -> StaticRollout:
    """The model's StaticRollout for ``key`` (predictor identity and shapes), built (and on CUDA
    captured) on first use or when the key changed; one per model, the old graph is freed."""
    cached = _CACHE.get(model)
    if cached is None or cached[0] != key:
        _CACHE.pop(model, None)  # release the old graph's memory pool before capturing anew
        cached = (key, StaticRollout(rollout, obs, action_seqs, goal, draws))
        _CACHE[model] = cached
    return cached[1]
