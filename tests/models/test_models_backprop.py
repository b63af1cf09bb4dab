"""The fast training path (hand-written gradient + fused TF-Adam) equals autograd (float64)."""

import numpy as np
import pytest
import torch

from pets_core.models import ModelTrainer, make_model
from pets_core.models.adam import FlatAdam, tf_adam_reference
from pets_core.models.backprop import EnsembleGradient, copy_model_to_flat, flat_size, flat_views
from pets_core.models.loss import training_loss
from pets_core.models.training import _decay_groups

MODEL_TYPES = ["D", "P", "DE", "PE"]
# float64 end to end: the two paths differ only in summation order, ~1e-15 relative.
TIGHT = {"atol": 1e-12, "rtol": 1e-10}


def _model(model_type: str, seed: int = 0):
    model = make_model(
        model_type,
        in_dim=5,
        out_dim=3,
        hidden_dims=[7, 6],
        weight_decays=[0.1, 0.2, 0.3],  # large, so a wrong decay term would show
        num_nets=3,
        seed=seed,
    ).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # move off the symmetric init so every term matters
        for b in model.biases:
            b.copy_(torch.randn(b.shape, generator=g, dtype=torch.float64))
        model.normalizer.mean.copy_(torch.randn(5, generator=g, dtype=torch.float64))
        model.normalizer.std.uniform_(0.5, 2.0, generator=g)
        if model.is_probabilistic:
            model.max_logvar.uniform_(-0.5, 1.0, generator=g)
            model.min_logvar.uniform_(-3.0, -1.5, generator=g)
    return model


def _autograd_flat_grad(model, x, y):
    model.zero_grad()
    training_loss(model, x, y).backward()
    flat = torch.zeros(flat_size(model), dtype=torch.float64)
    grads = flat_views(model, flat)
    for dst_w, dst_b, w, b in zip(
        grads.weights, grads.biases, model.weights, model.biases, strict=True
    ):
        dst_w.copy_(w.grad)
        dst_b.copy_(b.grad)
    if model.is_probabilistic:
        grads.max_logvar.copy_(model.max_logvar.grad)
        grads.min_logvar.copy_(model.min_logvar.grad)
    return flat


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("batch", [32, 5])
def test_hand_written_gradient_equals_autograd(model_type, batch):
    model = _model(model_type)
    E = model.ensemble_size
    g = torch.Generator().manual_seed(3)
    x = 3 * torch.randn(E, batch, 5, generator=g, dtype=torch.float64)
    y = torch.randn(E, batch, 3, generator=g, dtype=torch.float64)
    expected = _autograd_flat_grad(model, x, y)

    params = torch.zeros(flat_size(model), dtype=torch.float64)
    copy_model_to_flat(model, params)
    grads = torch.full_like(params, float("nan"))  # every entry must be written
    x_aug = torch.cat([model.normalizer(x), torch.ones(E, batch, 1, dtype=torch.float64)], -1)
    EnsembleGradient(model, params, grads)(x_aug, y)
    # add the weight-decay gradient lambda W, which the trainer applies inside Adam
    for decay, slices in _decay_groups(model):
        for a, b in slices:
            grads[a:b] += decay * params[a:b]
    torch.testing.assert_close(grads, expected, **TIGHT)


def test_fused_tf_adam_equals_reference_adam():
    g = torch.Generator().manual_seed(0)
    params = torch.randn(50, generator=g, dtype=torch.float64)
    grads = torch.zeros_like(params)
    adam = FlatAdam(params, grads, 1e-2, [(0.5, [(0, 20)]), (0.0, [(20, 35), (35, 50)])])
    ref, m, v = params.clone(), torch.zeros_like(params), torch.zeros_like(params)
    decay = torch.cat([torch.full((20,), 0.5), torch.zeros(30)]).double()
    for t in range(1, 8):
        grads.copy_(torch.randn(50, generator=g, dtype=torch.float64) * 10.0 ** (-t))
        full = grads + decay * ref
        adam.step()
        tf_adam_reference(ref, full, m, v, t, 1e-2)
    torch.testing.assert_close(params, ref, **TIGHT)


def _reference_train(model, inputs, targets, *, epochs, batch_size, lr, rng, adam):
    """§training with autograd and TF-Adam op by op, same rng call sequence as the trainer.

    ``adam``: a dict carrying the Adam moments and step count across calls.
    """
    permutation = rng.permutation(inputs.shape[0])
    inputs, targets = inputs[permutation], targets[permutation]
    model.normalizer.fit(inputs)
    N, E = inputs.shape[0], model.ensemble_size
    idxs = rng.integers(N, size=(E, N))
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    params = model.trainable_parameters()
    state = adam.setdefault("moments", [(torch.zeros_like(p), torch.zeros_like(p)) for p in params])
    steps = 0
    for _ in range(epochs):
        for b0 in range(0, N, batch_size):
            cols = torch.from_numpy(idxs[:, b0 : b0 + batch_size])
            model.zero_grad()
            training_loss(model, x[cols], y[cols]).backward()
            adam["t"] = adam.get("t", 0) + 1
            steps += 1
            with torch.no_grad():
                for p, (m, v) in zip(params, state, strict=True):
                    tf_adam_reference(p, p.grad, m, v, adam["t"], lr)
        idxs = rng.permuted(idxs, axis=1)
    return steps


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_trainer_equals_autograd_reference_over_two_calls(model_type):
    data_rng = np.random.default_rng(0)
    inputs = data_rng.normal(size=(70, 5)) * [1, 2, 3, 4, 5]  # 70 = 32 + 32 + 6: a short batch
    targets = np.tanh(inputs[:, :3]) + 0.1 * data_rng.normal(size=(70, 3))
    fast, ref = _model(model_type), _model(model_type)
    trainer = ModelTrainer(fast, learning_rate=1e-2)
    rng_fast, rng_ref = np.random.default_rng(7), np.random.default_rng(7)
    adam = {}
    for _ in range(2):  # Adam state and weights carry over between calls
        stats = trainer.train(inputs, targets, epochs=2, batch_size=32, rng=rng_fast)
        steps = _reference_train(
            ref, inputs, targets, epochs=2, batch_size=32, lr=1e-2, rng=rng_ref, adam=adam
        )
        assert stats.steps == steps == 6
    for name, p in fast.state_dict().items():
        torch.testing.assert_close(p, ref.state_dict()[name], **TIGHT)
