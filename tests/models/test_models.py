"""The dynamics network, its loss, prediction API, normaliser and files (§model)."""

import math

import numpy as np
import pytest
import scipy.io
import torch

from pets_core.models import (
    EnsembleModel,
    Normalizer,
    export_original,
    load_model,
    load_original,
    make_model,
    save_model,
)
from pets_core.models.loss import gaussian_nll, half_mse, training_loss

CARTPOLE = {"in_dim": 6, "out_dim": 4, "hidden_dims": [500, 500, 500]}
CARTPOLE_DECAYS = [1e-4, 2.5e-4, 2.5e-4, 5e-4]


def _small(model_type="PE", seed=0, **kw):
    args = {"in_dim": 3, "out_dim": 2, "hidden_dims": [8, 8], "weight_decays": [1e-3, 2e-3, 3e-3]}
    args.update(kw)
    return make_model(model_type, num_nets=3, seed=seed, **args)


# ---------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("model_type", "E", "probabilistic"),
    [("D", 1, False), ("P", 1, True), ("DE", 5, False), ("PE", 5, True)],
)
def test_make_model_variants(model_type, E, probabilistic):
    model = make_model(model_type, **CARTPOLE, weight_decays=CARTPOLE_DECAYS, seed=0)
    assert (model.ensemble_size, model.is_probabilistic) == (E, probabilistic)
    assert model.model_type == model_type
    head = 8 if probabilistic else 4
    assert [tuple(w.shape) for w in model.weights] == [
        (E, 6, 500),
        (E, 500, 500),
        (E, 500, 500),
        (E, 500, head),
    ]
    assert all(w.dtype == torch.float32 for w in model.parameters())


def test_init_truncated_normal_zero_biases_and_logvar_bounds():
    model = make_model("PE", **CARTPOLE, weight_decays=CARTPOLE_DECAYS, seed=0)
    for w in model.weights:
        std = 1 / (2 * math.sqrt(w.shape[1]))
        assert w.abs().max() <= 2 * std  # re-drawn beyond 2 std
        # a normal truncated at +-2 sd has sd 0.8796 sd; 10% slack for the 6 x 500 layer's sampling
        assert abs(w.std().item() / (0.8796 * std) - 1) < 0.1
    assert all(torch.count_nonzero(b) == 0 for b in model.biases)
    assert torch.equal(model.max_logvar, torch.full((1, 4), 0.5))
    assert torch.equal(model.min_logvar, torch.full((1, 4), -10.0))


def test_weight_decay_count_is_checked():
    with pytest.raises(ValueError, match="one weight decay per layer"):
        make_model("PE", **CARTPOLE, weight_decays=[1e-4], seed=0)


def test_unknown_model_type_names_the_valid_ones():
    with pytest.raises(ValueError, match="D, P, DE, PE"):
        make_model("GP", **CARTPOLE, weight_decays=CARTPOLE_DECAYS, seed=0)


# ---------------------------------------------------------------------- loss


def test_gaussian_nll_closed_form_on_fixed_numbers():
    mean = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])  # (E=2, B=1, T=2)
    logvar = torch.tensor([[[0.0, math.log(2.0)]], [[1.0, -1.0]]])
    target = torch.tensor([[[0.0, 0.0]], [[1.0, 1.0]]])
    # member 0: ((1 * 1 + 0) + (4 / 2 + ln 2)) / 2; member 1: ((e^-1 + 1) + (e + -1)) / 2
    expected = torch.tensor([(3 + math.log(2)) / 2, (math.exp(-1) + math.exp(1)) / 2])
    torch.testing.assert_close(gaussian_nll(mean, logvar, target), expected)


def test_half_mse_closed_form():
    mean = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])  # (1, 2, 2)
    target = torch.zeros(1, 2, 2)
    torch.testing.assert_close(half_mse(mean, target), torch.tensor([(1 + 9) / 4 / 2]))


def _constant_model(probabilistic: bool) -> EnsembleModel:
    """1 -> 1 hidden -> 1 output, every weight c, so the loss can be written by hand."""
    model = EnsembleModel(
        in_dim=1,
        out_dim=1,
        hidden_dims=[1],
        weight_decays=[0.5, 0.25],
        ensemble_size=2,
        is_probabilistic=probabilistic,
    )
    with torch.no_grad():
        model.weights[0].fill_(2.0)  # (2, 1, 1)
        model.biases[0].fill_(0.0)
        model.weights[1].fill_(1.0)  # (2, 1, 1 or 2)
        model.biases[1].copy_(torch.tensor([0.0, 0.1])[: model.weights[1].shape[2]].view(1, 1, -1))
    return model


def test_training_loss_closed_form_probabilistic():
    model = _constant_model(True)
    x = torch.ones(2, 1, 1)
    y = torch.zeros(2, 1, 1)
    h = 2.0 / (1 + math.exp(-2.0))  # swish(2)
    mu, raw = h, h + 0.1
    lv = 0.5 - math.log1p(math.exp(0.5 - raw))  # max - softplus(max - raw)
    lv = -10 + math.log1p(math.exp(lv + 10))  # min + softplus(lv - min)
    member = mu**2 * math.exp(-lv) + lv
    decay = 0.5 * 0.5 * (2 * 2.0**2) + 0.25 * 0.5 * (2 * 2 * 1.0**2)  # sum over both members
    bounds = 0.01 * 0.5 - 0.01 * -10.0
    expected = 2 * member + decay + bounds
    assert training_loss(model, x, y).item() == pytest.approx(expected, rel=1e-6)


def test_training_loss_closed_form_deterministic():
    model = _constant_model(False)
    x, y = torch.ones(2, 1, 1), torch.full((2, 1, 1), 1.0)
    h = 2.0 / (1 + math.exp(-2.0))
    expected = 2 * (h - 1) ** 2 / 2 + 0.5 * 0.5 * 8 + 0.25 * 0.5 * 2
    assert training_loss(model, x, y).item() == pytest.approx(expected, rel=1e-6)


def test_logvar_bounds_hold_and_receive_gradients():
    model = _small("PE")
    with torch.no_grad():
        model.biases[-1][..., 2:] = torch.tensor([1e3, -1e3])  # raw log-variances far outside
    _mean, logvar = model(torch.randn(3, 4, 3))
    # soft bounds: the upper one can be passed by at most softplus(min - max) = log1p(e^-10.5)
    assert (logvar[..., 0] <= 0.5 + math.log1p(math.exp(-10.5)) + 1e-6).all()
    assert (logvar[..., 1] >= -10.0).all()
    torch.testing.assert_close(
        logvar[..., 0], torch.full_like(logvar[..., 0], 0.5), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(logvar[..., 1], torch.full_like(logvar[..., 1], -10.0))
    training_loss(model, torch.randn(3, 4, 3), torch.randn(3, 4, 2)).backward()
    # the data term pulls each bound; the 0.01 penalty alone would give exactly +-0.01
    assert model.max_logvar.grad[0, 0].abs() > 0.01 + 1e-4
    assert model.min_logvar.grad[0, 1].abs() > 0.01 + 1e-4


# ---------------------------------------------------------------------- prediction


def _fixed_output_model(model_type: str, means, raw_logvars=None) -> EnsembleModel:
    """Zero weights: member e outputs its head bias, whatever the input."""
    E = len(means)
    model = make_model(
        model_type,
        in_dim=2,
        out_dim=1,
        hidden_dims=[4],
        weight_decays=[0, 0],
        num_nets=max(E, 2),
        seed=0,
    )
    with torch.no_grad():
        for w in model.weights:
            w.zero_()
        bias = [means] if raw_logvars is None else [means, raw_logvars]
        model.biases[-1].copy_(torch.tensor(bias, dtype=torch.float32).T.reshape(E, 1, -1))
    return model


def test_predict_moments_probabilistic_ensemble():
    means, raw = [1.0, 2.0, 3.0, 6.0, 8.0], [-1.0, 0.0, 0.2, -3.0, -2.0]
    model = _fixed_output_model("PE", means, raw)
    lv = torch.tensor(raw)
    lv = 0.5 - torch.nn.functional.softplus(0.5 - lv)
    lv = -10 + torch.nn.functional.softplus(lv + 10)
    mean, var = model.predict_moments(torch.randn(7, 2))
    m = torch.tensor(means)
    torch.testing.assert_close(mean, torch.full((7, 1), m.mean().item()))
    expected_var = lv.exp().mean() + ((m - m.mean()) ** 2).mean()  # population variance
    torch.testing.assert_close(var, torch.full((7, 1), expected_var.item()))


def test_predict_moments_deterministic_ensemble_is_variance_of_means_only():
    model = _fixed_output_model("DE", [1.0, 3.0])
    mean, var = model.predict_moments(torch.randn(4, 2))
    torch.testing.assert_close(mean, torch.full((4, 1), 2.0))
    torch.testing.assert_close(var, torch.full((4, 1), 1.0))  # ((1-2)^2 + (3-2)^2) / 2


def test_predict_moments_single_deterministic_network_has_zero_variance():
    model = _small("D")
    mean, var = model.predict_moments(torch.randn(5, 3))
    assert mean.shape == var.shape == (5, 2)
    assert torch.count_nonzero(var) == 0


def test_predict_applies_member_e_to_rows_e():
    model = _small("PE")
    x = torch.randn(3, 5, 3)
    mean, var = model.predict(x)
    for e in range(3):  # member e alone, on its own rows, through the autograd path
        mean_e, logvar_e = model(x[e : e + 1].expand(3, 5, 3))
        torch.testing.assert_close(mean[e], mean_e[e])
        torch.testing.assert_close(var[e], logvar_e[e].exp())


def test_predict_zero_variance_for_deterministic_members():
    model = _small("DE")
    _, var = model.predict(torch.randn(3, 4, 3))
    assert torch.count_nonzero(var) == 0


def test_predict_shape_mismatch_names_the_shapes():
    model = _small("PE")
    with pytest.raises(ValueError, match=r"\(E=3, M, I=3\).*\(2, 4, 3\)"):
        model.predict(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"\(M, 3\).*\(4, 5\)"):
        model.predict_moments(torch.randn(4, 5))


# ---------------------------------------------------------------------- normaliser


def test_normalizer_population_std_and_floor():
    data = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0]])
    norm = Normalizer(2)
    norm.fit(data)
    assert norm.mean.tolist() == [2.5, 5.0]
    assert norm.std[0].item() == pytest.approx(math.sqrt(1.25))  # ddof 0
    assert norm.std[1].item() == 1.0  # constant column: std 0 < 1e-12 -> 1
    out = norm(torch.tensor([[2.5, 5.0]]))
    assert out.tolist() == [[0.0, 0.0]]


def test_normalizer_statistics_computed_in_float64():
    rng = np.random.default_rng(0)
    data = 1e4 + 1e-2 * rng.standard_normal((1000, 1))  # float32 accumulation loses this
    norm = Normalizer(1)
    norm.fit(data.astype(np.float32))
    expected = np.float32(data.astype(np.float32).astype(np.float64).std())
    assert norm.std.item() == expected


# ---------------------------------------------------------------------- files


def _trained_looking(model_type="PE"):
    model = _small(model_type, seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        model.normalizer.fit(np.random.default_rng(0).normal(size=(50, 3)))
    return model


@pytest.mark.parametrize("model_type", ["D", "P", "DE", "PE"])
def test_save_load_round_trip_is_bit_exact(tmp_path, model_type):
    model = _trained_looking(model_type)
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt", "cpu")
    assert loaded.config() == model.config()
    for (k, a), (k2, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(a, b), k
    x = torch.randn(model.ensemble_size, 6, 3)
    assert all(torch.equal(a, b) for a, b in zip(model.predict(x), loaded.predict(x), strict=True))


def test_load_model_never_unpickles_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "pets_core.models/1", "x": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_model(path)


@pytest.mark.parametrize("model_type", ["D", "PE"])
def test_export_original_round_trip_is_bit_exact(tmp_path, model_type):
    model = _trained_looking(model_type)
    export_original(model, tmp_path)
    loaded = load_original(tmp_path)
    assert loaded.model_type == model.model_type
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_export_original_layout(tmp_path):
    model = make_model("PE", **CARTPOLE, weight_decays=CARTPOLE_DECAYS, seed=0)
    export_original(model, tmp_path)
    lines = (tmp_path / "model.nns").read_text().splitlines()
    assert lines == [
        "FC(output_dim=500, input_dim=6, activation='swish', weight_decay=0.0001, ensemble_size=5)",
        "FC(output_dim=500, input_dim=500, activation='swish', weight_decay=0.00025, "
        "ensemble_size=5)",
        "FC(output_dim=500, input_dim=500, activation='swish', weight_decay=0.00025, "
        "ensemble_size=5)",
        "FC(output_dim=4, input_dim=500, activation=None, weight_decay=0.0005, ensemble_size=5)",
    ]
    mat = scipy.io.loadmat(tmp_path / "model.mat")
    shapes = [mat[str(i)].shape for i in range(12)]
    assert shapes == [
        (1, 6),
        (1, 6),
        (5, 6, 500),
        (5, 1, 500),
        (5, 500, 500),
        (5, 1, 500),
        (5, 500, 500),
        (5, 1, 500),
        (5, 500, 8),
        (5, 1, 8),
        (1, 4),
        (1, 4),
    ]
    assert "12" not in mat
