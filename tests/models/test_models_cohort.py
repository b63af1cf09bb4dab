"""train_cohort: S seeds trained in lockstep equal each seed's own ModelTrainer.train call.

The oracle is the single call on a twin of each seed's trainer (same init seed, same data, a
generator with the same seed). Seeds differ in init, data and generator, so a mix-up cannot pass.
"""

import re

import numpy as np
import pytest
import torch

from pets_core.models import ModelTrainer, make_model
from pets_core.models.cohort import train_cohort

MODEL_TYPES = ["D", "P", "DE", "PE"]
IN_DIM, OUT_DIM = 3, 3  # P heads are 6 wide: one of the widths where MKL's kernel depends on ld
KW = {"epochs": 2, "batch_size": 16, "holdout_ratio": 0.1, "max_logging": 20}


def _trainer(model_type, seed, hidden=(8, 12), lr=1e-3, graph=False):
    model = make_model(
        model_type,
        in_dim=IN_DIM,
        out_dim=OUT_DIM,
        hidden_dims=list(hidden),
        weight_decays=[1e-4, 2e-4, 3e-4][: len(hidden) + 1],
        num_nets=2,
        seed=seed,
    )
    return ModelTrainer(model, learning_rate=lr, graph=graph)


def _datasets(S, N, call):
    """Seed s's rows: its own draws, scaled by s + 1 (own normaliser statistics)."""
    out = []
    for s in range(S):
        g = np.random.default_rng([call, s])
        x = g.normal(size=(N, IN_DIM)) * (s + 1) + s
        out.append((x, np.sin(x) + 0.1 * g.normal(size=(N, OUT_DIM))))
    return out


def _state(trainer):
    return {
        "model": trainer.model.state_dict(),  # weights, bounds, normaliser mean / std
        "flat": trainer.flat_vectors(),  # params, Adam m, v
        "adam_step": trainer.adam.step_count,
        "total_steps": trainer.total_steps,
    }


def _assert_same_state(a, b, **tol):
    sa, sb = _state(a), _state(b)
    assert sa["model"].keys() == sb["model"].keys()
    for key in sa["model"]:
        if tol and "normalizer" not in key:
            torch.testing.assert_close(sa["model"][key], sb["model"][key], **tol)
        else:
            assert torch.equal(sa["model"][key], sb["model"][key]), key
    for name, x, y in zip(["params", "m", "v"], sa["flat"], sb["flat"], strict=True):
        if tol:
            torch.testing.assert_close(x, y, **tol)
        else:
            assert torch.equal(x, y), name
    assert (sa["adam_step"], sa["total_steps"]) == (sb["adam_step"], sb["total_steps"])


def _cohort_and_singles(model_type, S, seed, **kw):
    """Two calls (the second continues from the first: Adam moments and step count carried) on
    twin trainer sets; yields (call, cohort trainers, their stats, single trainers, their stats,
    cohort generators, single generators) after each call.
    N = 45: 40 training rows -> batches 16, 16, 8; N = 83: 75 -> 16 x 4 + 11."""
    singles = [_trainer(model_type, seed=seed + s) for s in range(S)]
    cohort = [_trainer(model_type, seed=seed + s) for s in range(S)]
    single_rngs = [np.random.default_rng(10 * seed + s) for s in range(S)]
    cohort_rngs = [np.random.default_rng(10 * seed + s) for s in range(S)]
    for call, N in enumerate([45, 83]):
        data = _datasets(S, N, call)
        expected = [
            t.train(*d, rng=r, **KW) for t, d, r in zip(singles, data, single_rngs, strict=True)
        ]
        got = train_cohort(cohort, data, cohort_rngs, **KW, **kw)
        yield call, cohort, got, singles, expected, cohort_rngs, single_rngs


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_cohort_equals_each_seeds_single_training_bit_for_bit(model_type):
    S = 3
    for call, cohort, got, singles, expected, cohort_rngs, single_rngs in _cohort_and_singles(
        model_type, S, seed=10
    ):
        for s in range(S):
            _assert_same_state(cohort[s], singles[s])
            assert got[s].train_nll == expected[s].train_nll
            assert got[s].train_mse == expected[s].train_mse
            assert got[s].holdout_mse == expected[s].holdout_mse
            assert got[s].steps == expected[s].steps == KW["epochs"] * (3 if call == 0 else 5)
            assert cohort_rngs[s].bit_generator.state == single_rngs[s].bit_generator.state
    # the seeds really differ (a mix-up would have failed above, this guards the setup)
    assert not torch.equal(cohort[0].model.normalizer.mean, cohort[1].model.normalizer.mean)
    assert not torch.equal(cohort[0].model.weights[0], cohort[1].model.weights[0])


@pytest.mark.parametrize("model_type", ["P", "PE"])
def test_batched_matmuls_agree_with_single_training_to_float32_rounding(model_type):
    S = 2
    for _, cohort, got, singles, expected, cohort_rngs, single_rngs in _cohort_and_singles(
        model_type, S, seed=20, batched_matmuls=True
    ):
        for s in range(S):
            # the weights to float32 rounding: matmul summation order may differ (cohort.py)
            _assert_same_state(cohort[s], singles[s], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(got[s].train_nll, expected[s].train_nll, rtol=1e-5)
            assert got[s].steps == expected[s].steps
            assert cohort_rngs[s].bit_generator.state == single_rngs[s].bit_generator.state


def _refused(trainers, data, rngs, match, **kw):
    states = [r.bit_generator.state for r in rngs]
    means = [t.model.normalizer.mean.clone() for t in trainers]
    with pytest.raises(ValueError, match=match):
        train_cohort(trainers, data, rngs, **(KW | kw))
    # refused before any work: no draw, no normaliser re-fit
    assert [r.bit_generator.state for r in rngs] == states
    assert all(
        torch.equal(t.model.normalizer.mean, m) for t, m in zip(trainers, means, strict=True)
    )


def test_unequal_dataset_sizes_are_refused_naming_the_seeds():
    trainers = [_trainer("PE", seed=s) for s in range(3)]
    data = _datasets(3, 40, 0)
    data[2] = _datasets(3, 39, 0)[2]
    rngs = [np.random.default_rng(s) for s in range(3)]
    _refused(
        trainers, data, rngs, re.escape("share their dataset size: seed 2 has 39 vs 40 (seed 0)")
    )


def test_different_model_shapes_or_learning_rates_are_refused():
    data, rngs = _datasets(2, 40, 0), [np.random.default_rng(s) for s in range(2)]
    shapes = [_trainer("PE", 0), _trainer("PE", 1, hidden=(8, 8))]
    _refused(shapes, data, rngs, re.escape("model: seed 1 has hidden_dims [8, 8] vs [8, 12]"))
    types = [_trainer("PE", 0), _trainer("DE", 1)]
    _refused(types, data, rngs, "model: seed 1 has is_probabilistic False vs True")
    rates = [_trainer("PE", 0), _trainer("PE", 1, lr=3e-4)]
    _refused(rates, data, rngs, re.escape("learning rate: seed 1 has 0.0003 vs 0.001"))


def test_adam_step_counts_must_match():
    data, rngs = _datasets(2, 40, 0), [np.random.default_rng(s) for s in range(2)]
    trainers = [_trainer("P", 0), _trainer("P", 1)]
    trainers[1].train(*data[1], rng=np.random.default_rng(9), **KW)
    _refused(trainers, data, rngs, "Adam step count: seed 1 has 6 vs 0")


def test_shared_objects_and_bad_rows_are_refused():
    data, rngs = _datasets(2, 40, 0), [np.random.default_rng(s) for s in range(2)]
    t = _trainer("PE", 0)
    _refused([t, t], data, rngs, "seeds 0 and 1 share one of the trainers")
    shared = np.random.default_rng(0)
    _refused([_trainer("PE", 0), _trainer("PE", 1)], data, [shared, shared], "generators")
    with pytest.raises(ValueError, match="one dataset and one generator per trainer"):
        train_cohort([t], data, rngs[:1], **KW)
    bad = [data[0], (np.full_like(data[1][0], np.nan), data[1][1])]
    trainers = [_trainer("PE", 0), _trainer("PE", 1)]
    _refused(trainers, bad, rngs, "seed 1: inputs contain 120 NaN/inf entries")


def test_graph_trainers_train_per_seed_but_not_with_batched_matmuls():
    data, rngs = _datasets(2, 40, 0), [np.random.default_rng(s) for s in range(2)]
    trainers = [_trainer("PE", 0, graph=True), _trainer("PE", 1, graph=True)]
    _refused(
        trainers, data, rngs, "batched_matmuls=True trains the cohort eagerly", batched_matmuls=True
    )
    # the exact path runs each seed's own (on CPU uncaptured) static-buffer gradient
    singles = [_trainer("PE", 0, graph=True), _trainer("PE", 1, graph=True)]
    for t, d, s in zip(singles, data, range(2), strict=True):
        t.train(*d, rng=np.random.default_rng(s), **KW)
    train_cohort(trainers, data, rngs, **KW)
    for a, b in zip(trainers, singles, strict=True):
        _assert_same_state(a, b)
