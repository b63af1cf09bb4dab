"""Input standardisation applied inside the model (§training step 2).

Statistics are computed in float64 (mbrl-lib #99: the float32 path is unstable on near-constant
inputs) and stored as float32 buffers, exactly as the original stores them in float32 TF variables.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

STD_FLOOR = 1e-12  # a std below this (e.g. the constant goal dims of reacher/pusher) becomes 1


class Normalizer(nn.Module):
    """``(x - mean) / std`` per input dim; identity (mean 0, std 1) until the first ``fit``."""

    mean: Tensor  # (I,)
    std: Tensor  # (I,)

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, inputs: np.ndarray) -> None:
        """Re-fit on ``inputs (N, I)``: population std (ddof 0), std < 1e-12 replaced by 1."""
        data = np.asarray(inputs, dtype=np.float64)
        mean = data.mean(axis=0)
        std = data.std(axis=0)
        std[std < STD_FLOOR] = 1.0
        self.mean.copy_(torch.from_numpy(mean))  # cast to float32 happens here, once
        self.std.copy_(torch.from_numpy(std))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std
