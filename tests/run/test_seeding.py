"""One run seed, independent streams: no two consumers of randomness draw the same numbers."""

import itertools
import math

import numpy as np
import pytest
import torch

from pets_core.envs import get_task, make_env
from pets_core.models import make_model
from pets_core.planning import MPC, PropagationSpec, RandomShooting
from pets_core.seeding import MAX_SEED, RunSeeds


def _mpc(seed: int) -> MPC:
    task = get_task("cartpole")
    model = make_model(
        "PE", in_dim=task.in_dim, out_dim=task.out_dim, hidden_dims=[8], weight_decays=[0, 0],
        num_nets=2, seed=seed,
    )  # fmt: skip
    low, high = -np.ones(1), np.ones(1)
    lower, upper = -torch.ones(3, 1), torch.ones(3, 1)  # (H, A)
    return MPC(
        model=model, task=task, optimizer=RandomShooting(popsize=4, lower=lower, upper=upper),
        plan_hor=3, per=1, propagation=PropagationSpec.for_model(model, "TSinf", 2),
        action_low=low, action_high=high, device="cpu", seed=seed,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 12345, MAX_SEED])
def test_the_run_streams_are_pairwise_different(seed):
    seeds = RunSeeds.from_seed(seed)
    env = make_env("cartpole").unwrapped
    env.reset(seed=seeds.env)
    draws = {
        "train": np.random.default_rng(seeds.train).random(4),
        "noise": np.random.default_rng(seeds.noise).random(4),
        "actions": np.random.default_rng(seeds.actions).random(4),
        "env": env.np_random.random(4),
        "raw seed": np.random.default_rng(seed).random(4),
    }
    for (a, x), (b, y) in itertools.combinations(draws.items(), 2):
        assert not np.array_equal(x, y), (a, b)
    ints = [seeds.env, seeds.planner, seeds.model_init, seeds.fallback, seed]
    assert len(set(ints)) == len(ints)


@pytest.mark.parametrize("seed", [0, 7])
def test_mpc_random_actions_do_not_replay_the_env_reset_stream(seed):
    # before: MPC default_rng(seed) was the PCG64 stream of gymnasium's reset(seed=seed)
    mpc = _mpc(seed)
    env = make_env("cartpole").unwrapped
    env.reset(seed=seed)
    assert mpc.rng.bit_generator.state != np.random.default_rng(seed).bit_generator.state
    assert mpc.rng.bit_generator.state == (
        np.random.default_rng(RunSeeds.from_seed(seed).actions).bit_generator.state
    )


@pytest.mark.parametrize("seed", [0, 7])
def test_planner_generator_is_not_the_model_init_generator(seed):
    # before: both were manual_seed(seed), so the planner's first draws equalled the init weights'
    mpc = _mpc(seed)
    assert mpc.generator.initial_seed() == RunSeeds.from_seed(seed).planner
    assert mpc.generator.initial_seed() != RunSeeds.from_seed(seed).model_init
    assert mpc.generator.initial_seed() != seed


def _spawned(seed: int, index: int) -> np.random.SeedSequence:
    """Child ``index`` of the run seed, as the table in pets_core/seeding.py documents it."""
    return np.random.SeedSequence(seed).spawn(7)[index]


def _as_63_bits(child: np.random.SeedSequence) -> int:
    return int(child.generate_state(1, dtype=np.uint64)[0]) >> 1


@pytest.mark.parametrize("seed", [0, 1, 12345, MAX_SEED])
def test_the_run_streams_are_the_documented_spawn_children(seed):
    seeds = RunSeeds.from_seed(seed)
    for name, index in (("train", 0), ("noise", 1), ("actions", 3)):
        np.testing.assert_array_equal(
            np.random.default_rng(getattr(seeds, name)).random(4),
            np.random.default_rng(_spawned(seed, index)).random(4),
        )
    assert seeds.env == _as_63_bits(_spawned(seed, 2))
    assert seeds.planner == _as_63_bits(_spawned(seed, 4))
    assert seeds.model_init == _as_63_bits(_spawned(seed, 5))
    assert seeds.fallback == int(_spawned(seed, 6).generate_state(1, dtype=np.uint32)[0])


def _spec_init(seed: int, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """The documented init: W ~ truncated normal at +-2 std, std = 1 / (2 sqrt(fan_in)), drawn
    layer by layer from one CPU generator seeded with the run's model_init child; b = 0; log-
    variance bounds 0.5 / -10 (§network, §model-files). shapes: W0, b0, W1, b1, ..., max, min."""
    generator = torch.Generator().manual_seed(_as_63_bits(_spawned(seed, 5)))
    *layers, max_shape, min_shape = shapes
    params = []
    for weight_shape, bias_shape in zip(layers[::2], layers[1::2], strict=True):
        std = 1.0 / (2.0 * math.sqrt(weight_shape[1]))  # (E, fan_in, fan_out)
        w = torch.empty(weight_shape)
        torch.nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=generator)
        params += [w, torch.zeros(bias_shape)]
    return [*params, torch.full(max_shape, 0.5), torch.full(min_shape, -10.0)]


@pytest.mark.parametrize("seed", [3, 4])
def test_model_init_is_fixed_by_the_run_seed_alone(seed):
    task = get_task("cartpole")
    kw = dict(in_dim=task.in_dim, out_dim=task.out_dim, hidden_dims=[8], weight_decays=[0, 0])
    params = [p.detach() for p in make_model("PE", **kw, seed=seed).trainable_parameters()]
    assert [tuple(p.shape) for p in params] == [
        (5, 6, 8), (5, 1, 8), (5, 8, 8), (5, 1, 8), (1, 4), (1, 4)
    ]  # fmt: skip
    expected = _spec_init(seed, [tuple(p.shape) for p in params])
    for got, want in zip(params, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [-1, MAX_SEED + 1, 2**40])
def test_seeds_outside_the_32_bit_range_are_refused(bad):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 4294967295\]"):
        RunSeeds.from_seed(bad)
