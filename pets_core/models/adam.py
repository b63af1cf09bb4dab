"""TensorFlow's Adam (``tf.train.AdamOptimizer``) on one flat parameter vector.

TF's update is ``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`` ("epsilon hat").
PyTorch's fused kernel computes ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps')``;
the two are the same function when ``eps' = eps / sqrt(1 - b2^t)``, so one ``_fused_adam_`` call per
step (a single pass over p, g, m, v) gives TF's maths on CPU and CUDA alike.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8  # TF defaults (spec sec. 2.1)


class FlatAdam:
    """Adam moments shaped like the flat parameter vector, and the step count."""

    def __init__(self, params: Tensor, learning_rate: float) -> None:
        self.learning_rate = float(learning_rate)
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.step_count = 0
        # The fused kernel reads the step from a tensor (float32, on the params' device).
        self._step_tensor = torch.zeros((), dtype=torch.float32, device=params.device)

    def step(self, params: Tensor, grads: Tensor) -> None:
        """One in-place update of ``params`` from ``grads`` (no host sync)."""
        self.step_count += 1
        t = self.step_count
        self._step_tensor.fill_(t)
        torch._fused_adam_(
            [params],
            [grads],
            [self.exp_avg],
            [self.exp_avg_sq],
            [],
            [self._step_tensor],
            lr=self.learning_rate,
            beta1=BETA1,
            beta2=BETA2,
            weight_decay=0.0,  # weight decay is in the loss (lambda/2 ||W||^2), not AdamW
            eps=EPSILON / math.sqrt(1.0 - BETA2**t),
            amsgrad=False,
            maximize=False,
        )

    def state_dict(self) -> dict[str, Tensor | int | float]:
        return {
            "step": self.step_count,
            "exp_avg": self.exp_avg.clone(),
            "exp_avg_sq": self.exp_avg_sq.clone(),
            "learning_rate": self.learning_rate,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["exp_avg"].shape != self.exp_avg.shape:
            raise ValueError(
                f"Adam state has {tuple(state['exp_avg'].shape)} entries, "
                f"model has {tuple(self.exp_avg.shape)}"
            )
        self.step_count = int(state["step"])
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.learning_rate = float(state["learning_rate"])


def tf_adam_reference(
    params: Tensor, grads: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, t: int, lr: float
) -> None:
    """TF's Adam written out op by op (the definition ``FlatAdam`` is tested against)."""
    exp_avg.mul_(BETA1).add_(grads, alpha=1 - BETA1)
    exp_avg_sq.mul_(BETA2).add_(grads.square(), alpha=1 - BETA2)
    lr_t = lr * math.sqrt(1 - BETA2**t) / (1 - BETA1**t)
    params.sub_(lr_t * exp_avg / (exp_avg_sq.sqrt() + EPSILON))
