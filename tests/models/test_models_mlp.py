"""The one ensemble MLP (pets_core.models.mlp): every caller's layout computes the same network.

The oracle is the original's network written out in float64 numpy (§network: swish hidden layers, a
linear head; §loss: lv = min + softplus(max - softplus(max - raw) - min); §predict: moment
matching), independent of the torch code under test.
"""

import numpy as np
import pytest
import torch

from pets_core.models import ModelTrainer, make_model
from pets_core.models.backprop import with_ones_column
from pets_core.models.mlp import gaussian_head, moment_match
from pets_core.planning.forward import FastPredictor

E, I, T, A = 3, 6, 4, 2  # members, input dim, target dim, action dim (the last A inputs)


def _model(model_type="PE", seed=0):
    model = make_model(
        model_type, in_dim=I, out_dim=T, hidden_dims=[16, 8], weight_decays=[0.0] * 3,
        num_nets=E, seed=seed,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial normaliser, biases and bounds, so each must be applied
        model.normalizer.mean.copy_(torch.randn(I, generator=gen))
        model.normalizer.std.copy_(torch.rand(I, generator=gen) + 0.5)
        for b in model.biases:
            b.normal_(generator=gen)
        if model.is_probabilistic:
            model.max_logvar.uniform_(-1.0, 1.0, generator=gen)
            model.min_logvar.uniform_(-6.0, -2.0, generator=gen)
    return model


def _oracle(model, x):
    """float64 numpy: member e on rows x[e] -> mean, logvar (None for D/DE)."""
    sp = lambda v: np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0)  # noqa: E731
    h = (x.double().numpy() - model.normalizer.mean.double().numpy()) / (
        model.normalizer.std.double().numpy()
    )
    layers = [(w.detach().double().numpy(), b.detach().double().numpy()) for w, b in
              zip(model.weights, model.biases, strict=True)]  # fmt: skip
    for i, (w, b) in enumerate(layers):
        h = np.einsum("emi,eio->emo", h, w) + b
        if i < len(layers) - 1:
            h = h / (1 + np.exp(-h))  # swish
    if not model.is_probabilistic:
        return h, None
    hi = model.max_logvar.detach().double().numpy()
    lo = model.min_logvar.detach().double().numpy()
    lv = hi - sp(hi - h[..., T:])
    return h[..., :T], lo + sp(lv - lo)


@pytest.mark.parametrize("model_type", ["D", "P", "DE", "PE"])
def test_autograd_forward_and_predict_equal_the_spec_network(model_type):
    model = _model(model_type)
    Em = model.ensemble_size
    x = torch.randn(Em, 7, I, generator=torch.Generator().manual_seed(2))
    mean, logvar = model(x)
    o_mean, o_logvar = _oracle(model, x)
    np.testing.assert_allclose(mean.detach().numpy(), o_mean, rtol=1e-5, atol=1e-5)
    p_mean, p_var = model.predict(x)
    assert torch.equal(p_mean, mean.detach())  # the same kernels: bit-identical
    if o_logvar is None:
        assert logvar is None and torch.equal(p_var, torch.zeros(Em, 7, T))
    else:
        np.testing.assert_allclose(logvar.detach().numpy(), o_logvar, rtol=1e-5, atol=1e-5)
        assert torch.equal(p_var, logvar.detach().exp())


@pytest.mark.parametrize("model_type", ["DE", "PE"])
def test_trainer_and_planner_layouts_compute_the_same_network(model_type):
    """predict == the planner's bmm layout (bit-identical: same kernels, same order); the
    trainer's folded-bias bmm and the planner's oneDNN layout sum in another order: 1e-5."""
    model = _model(model_type)
    N, R = 5, 2  # candidates x rows: the planner's (E, N, R, F) obs features
    gen = torch.Generator().manual_seed(3)
    obs_in = torch.randn(E, N, R, I - A, generator=gen)
    actions = torch.rand(N, 1, A, generator=gen) * 2 - 1  # (N, H=1, A)
    x = torch.cat([obs_in, actions[:, 0, None].expand(E, N, R, A)], dim=-1).view(E, N * R, I)
    mean, var = model.predict(x)
    std = var.sqrt().view(E, N, R, T)
    for backend, exact in (("bmm", True), ("onednn", False)):
        fast = FastPredictor(model, A, backend=backend)
        fast.prepare(actions)
        f_mean, f_std = fast.members(obs_in, 0, need_std=True)
        if exact:
            assert torch.equal(f_mean, mean.view(E, N, R, T))
        else:
            torch.testing.assert_close(f_mean, mean.view(E, N, R, T), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(f_std, std, rtol=1e-5, atol=1e-6)
    trainer = ModelTrainer(model, 1e-3)
    with torch.no_grad():
        out = trainer.gradient.forward(with_ones_column(model.normalizer(x)))  # (E, NR, T | 2T)
    t_mean, t_logvar = gaussian_head(
        out, T, *((model.max_logvar, model.min_logvar) if model.is_probabilistic else (None, None))
    )
    torch.testing.assert_close(t_mean, mean, rtol=1e-5, atol=1e-5)
    if model.is_probabilistic:
        torch.testing.assert_close(t_logvar.exp(), var, rtol=1e-5, atol=1e-6)


def test_moment_matching_by_hand():
    member_mean = torch.tensor([[[1.0]], [[3.0]]])  # (E=2, M=1, T=1)
    member_var = torch.tensor([[[0.5]], [[1.5]]])
    mean, var = moment_match(member_mean, member_var)  # var: mean 1.0 + variance of means 1.0
    assert (mean.item(), var.item()) == (2.0, 2.0)
    assert moment_match(member_mean, None)[1].item() == 1.0  # D members: the means' variance
    assert moment_match(member_mean, member_var, need_var=False)[1] is None


def test_predict_moments_equals_the_oracles_moments():
    model = _model("PE")
    x = torch.randn(9, I, generator=torch.Generator().manual_seed(4))
    mean, var = model.predict_moments(x)
    o_mean, o_logvar = _oracle(model, x.expand(E, -1, -1))
    np.testing.assert_allclose(mean.numpy(), o_mean.mean(0), rtol=1e-5, atol=1e-5)
    o_var = np.exp(o_logvar).mean(0) + o_mean.var(0)  # population variance of the means
    np.testing.assert_allclose(var.numpy(), o_var, rtol=1e-5, atol=1e-6)


def test_the_planner_reads_a_detached_snapshot_not_the_fields():
    model = _model("PE")
    net = model.mlp_weights()
    assert [tuple(w.shape) for w, _ in net.layers] == [(E, I, 16), (E, 16, 8), (E, 8, 2 * T)]
    assert net.max_logvar.shape == (T,) and not net.max_logvar.requires_grad
    assert all(not w.requires_grad for w, _ in net.layers)
    assert (net.ensemble_size, net.in_dim, net.out_dim, net.is_probabilistic) == (E, I, T, True)
    assert _model("DE").mlp_weights().max_logvar is None
