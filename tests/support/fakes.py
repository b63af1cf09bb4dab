"""Fakes shared by the planning tests: an ensemble and a task whose outputs encode their inputs,
and a small MPC around them.

``FakeEnsemble`` follows the models contract (``predict(x[E, M, I])``, ``predict_moments(x[M,
I])``, ``model_type``, ``ensemble_size``) but exposes no weights (no ``mlp_weights``), so the
planner calls the contract API, never the fast layout.
"""

from types import SimpleNamespace

import numpy as np
import torch

from pets_core.models import make_model
from pets_core.planning import MPC, CEMOptimizer, PropagationSpec, tile_bounds


class FakeEnsemble:
    """Member e predicts ``mean_fn(x, e)`` with variance ``var``; records every call."""

    def __init__(self, E, in_dim, out_dim, *, probabilistic, mean_fn=None, var=0.0, device="cpu"):
        self.ensemble_size, self.in_dim, self.out_dim = E, in_dim, out_dim
        self.is_probabilistic = probabilistic
        self.mean_fn = mean_fn or (lambda x, e: e.expand(*x.shape[:-1], out_dim))
        self.var, self.device, self.calls = var, device, []

    @property
    def model_type(self) -> str:
        return ("P" if self.is_probabilistic else "D") + ("E" if self.ensemble_size > 1 else "")

    def predict(self, x):  # (E, M, I) -> (E, M, T)
        self.calls.append("predict")
        assert x.ndim == 3 and x.shape[0] == self.ensemble_size and x.shape[2] == self.in_dim
        e = torch.arange(self.ensemble_size, device=x.device, dtype=x.dtype).view(-1, 1, 1)
        mean = self.mean_fn(x, e)
        return mean, torch.full_like(mean, self.var if self.is_probabilistic else 0.0)

    def predict_moments(self, x):  # (M, I) -> (M, T)
        self.calls.append("predict_moments")
        assert x.ndim == 2 and x.shape[1] == self.in_dim
        mean = self.mean_fn(x, torch.zeros((), device=x.device))
        return mean, torch.full_like(mean, self.var)


def fake_task(O=1, A=1, ac_cost=None):
    """Identity preprocessing, next = obs + prediction, cost = first obs dim of the next obs."""
    return SimpleNamespace(
        name="fake",
        obs_dim=O,
        act_dim=A,
        in_dim=O + A,
        out_dim=O,
        obs_preproc=lambda obs: obs,
        obs_postproc=lambda obs, pred: obs + pred,
        obs_cost=lambda next_obs, goal: next_obs[..., 0],
        ac_cost=ac_cost or (lambda action: torch.zeros(action.shape[:-1], device=action.device)),
    )


def spec_for(model, prop: str, P: int, ign_var: bool = False) -> PropagationSpec:
    return PropagationSpec.for_model(model, prop, P, ign_var)


def fake_mpc(
    optimizer=None, *, H=4, A=2, per=1, P=10, prop="TSinf", seed=0, low=-1.0, high=1.0, **kw
):
    """An MPC over ``fake_task(O=3, A)`` and a PE FakeEnsemble (member e adds ``a_0 + 0.1 e``);
    CEM (N 30, K 5, 2 iterations) unless ``optimizer`` is given; ``propagation_of`` builds the
    spec for another model."""
    task = fake_task(O=3, A=A)
    model = kw.pop("model", None) or FakeEnsemble(
        5, 3 + A, 3, probabilistic=True, var=0.1, mean_fn=lambda x, e: x[..., 3:4] + 0.1 * e
    )
    spec_model = kw.pop("propagation_of", model)  # the model the spec is built for
    if optimizer is None:
        lower, upper = tile_bounds(np.full(A, low), np.full(A, high), H, "cpu")
        optimizer = CEMOptimizer(
            popsize=30, num_elites=5, max_iters=2, epsilon=1e-3, alpha=0.1, lower=lower, upper=upper
        )
    return MPC(
        model=model,
        task=task,
        optimizer=optimizer,
        plan_hor=H,
        per=per,
        propagation=spec_for(spec_model, prop, P),
        action_low=np.full(A, low),
        action_high=np.full(A, high),
        device="cpu",
        seed=seed,
        **kw,
    )


def small_model(model_type, task, device="cpu", seed=0):
    """A real 2 x 32 ensemble (5 members for DE / PE) for ``task``, with a fitted-looking
    normaliser (random mean, std in [0.5, 1.5)), so a fast path that skipped it would differ."""
    model = make_model(
        model_type,
        in_dim=task.in_dim,
        out_dim=task.out_dim,
        hidden_dims=[32, 32],
        weight_decays=[0.0, 0.0, 0.0],
        num_nets=1 if model_type in ("D", "P") else 5,
        device=device,
        seed=seed,
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.normalizer.mean.copy_(torch.randn(task.in_dim, generator=gen))
        model.normalizer.std.copy_(torch.rand(task.in_dim, generator=gen) + 0.5)
    return model
