"""TensorFlow's Adam (``tf.train.AdamOptimizer``) on one flat parameter vector.

TF's update is ``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`` ("epsilon hat").
PyTorch's fused kernel computes ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps')``;
the two are the same function when ``eps' = eps / sqrt(1 - b2^t)``, so the fused kernel (a single
pass over p, g, m, v) gives TF's maths on CPU and CUDA alike. The L2 weight decay of the loss
(gradient ``lambda W``) is added inside the same kernel, one call per distinct lambda.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8  # TF defaults (§settings-table)


class FlatAdam:
    """Adam over one flat vector; moments shaped like it; weight decay per group (L2 form).

    ``decay_groups`` lists ``(decay, [(start, stop), ...])``: the slices of the flat vector whose
    gradient gets ``decay * param`` added (the gradient of ``decay/2 ||W||^2``) inside the kernel.
    Slices not listed are not updated, so list every slice (decay 0 for biases and bounds).
    """

    def __init__(
        self,
        params: Tensor,
        grads: Tensor,
        learning_rate: float,
        decay_groups: list[tuple[float, list[tuple[int, int]]]],
    ) -> None:
        self.learning_rate = float(learning_rate)
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.step_count = 0
        # The fused kernel reads the step from a tensor (float32, on the params' device).
        self._step_tensor = torch.zeros((), dtype=torch.float32, device=params.device)
        self._groups = []
        for decay, slices in decay_groups:
            lists = tuple(
                [t[a:b] for a, b in slices] for t in (params, grads, self.exp_avg, self.exp_avg_sq)
            )
            self._groups.append((float(decay), *lists, [self._step_tensor] * len(slices)))

    def step(self) -> None:
        """One in-place update of the params from the grads (no host sync)."""
        self.step_count += 1
        self._step_tensor.fill_(self.step_count)
        _fused_step(self._groups, self.step_count, self.learning_rate)

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


class JointAdam:
    """One step of several ``FlatAdam`` (a cohort's seeds) with one fused call per weight decay.

    The fused kernel updates each tensor of its lists on its own, so every seed's parameters and
    moments come out exactly as from its own ``step()``. All must share the learning rate, the
    step count and the decay groups (the same model shape).
    """

    def __init__(self, adams: list[FlatAdam]) -> None:
        first = adams[0]
        if any(
            a.learning_rate != first.learning_rate
            or a.step_count != first.step_count
            or [g[0] for g in a._groups] != [g[0] for g in first._groups]
            for a in adams
        ):
            raise ValueError("JointAdam needs equal learning rates, step counts and decays")
        self.adams = adams
        self._groups = [  # per decay: every seed's slices, list by list
            (group[0][0], *([t for g in group for t in g[k]] for k in range(1, 6)))
            for group in zip(*(a._groups for a in adams), strict=True)
        ]

    def step(self) -> None:
        for adam in self.adams:
            adam.step_count += 1
            adam._step_tensor.fill_(adam.step_count)
        first = self.adams[0]
        _fused_step(self._groups, first.step_count, first.learning_rate)


def _fused_step(groups: list[tuple], t: int, learning_rate: float) -> None:
    """Step ``t`` over ``groups`` of ``(decay, params, grads, exp_avg, exp_avg_sq, steps)``."""
    eps = EPSILON / math.sqrt(1.0 - BETA2**t)  # TF's epsilon-hat, see the module docstring
    for decay, params, grads, exp_avg, exp_avg_sq, steps in groups:
        torch._fused_adam_(
            params,
            grads,
            exp_avg,
            exp_avg_sq,
            [],
            steps,
            lr=learning_rate,
            beta1=BETA1,
            beta2=BETA2,
            weight_decay=decay,  # grad += decay * param (L2 in the loss, not AdamW)
            eps=eps,
            amsgrad=False,
            maximize=False,
        )


def tf_adam_reference(
    params: Tensor, grads: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, t: int, lr: float
) -> None:
    """TF's Adam written out op by op, on the full gradient (decay included by the caller)."""
    exp_avg.mul_(BETA1).add_(grads, alpha=1 - BETA1)
    exp_avg_sq.mul_(BETA2).add_(grads.square(), alpha=1 - BETA2)
    lr_t = lr * math.sqrt(1 - BETA2**t) / (1 - BETA1**t)
    params.sub_(lr_t * exp_avg / (exp_avg_sq.sqrt() + EPSILON))
