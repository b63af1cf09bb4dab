"""CEM (§cem) and random shooting (§random) on objectives with known optima."""

import pytest
import torch
from support.devices import DEVICES

from pets_core.config import CEMCfg, ICEMCfg, MPPICfg, RandomCfg
from pets_core.planning import CEMOptimizer, Optimizer, RandomShooting
from pets_core.run.builders import OPTIMIZERS, make_optimizer

TRUNC2_VAR = 0.7737413  # variance of a standard normal truncated at +-2


def _cem(H=3, A=2, low=-1.0, high=1.0, device="cpu", **kw):
    args = dict(popsize=200, num_elites=20, max_iters=30, epsilon=1e-6, alpha=0.1) | kw
    lower = torch.full((H, A), low, device=device)
    return CEMOptimizer(lower=lower, upper=torch.full((H, A), high, device=device), **args)


def _quadratic(target, record=None):
    def cost_fn(seqs):  # (N, H, A) -> (N,)
        if record is not None:
            record.append(seqs.clone())
        return (seqs - target).square().sum(dim=(1, 2))

    return cost_fn


@pytest.mark.parametrize("device", DEVICES)
def test_cem_finds_the_optimum_of_a_bounded_quadratic(device):
    target = torch.tensor([0.3, -0.5], device=device)
    cem = _cem(device=device)
    plan = cem.optimize(
        _quadratic(target),
        torch.zeros(3, 2, device=device),
        torch.full((3, 2), 0.25, device=device),
        torch.Generator(device=device).manual_seed(0),
    )
    torch.testing.assert_close(plan, target.expand(3, 2), atol=0.02, rtol=0)


def test_cem_with_the_optimum_outside_the_box_goes_to_the_bound_and_never_samples_outside():
    target = torch.tensor([3.0, -0.2])  # first dim's optimum beyond upper = 1
    samples = []
    cem = _cem(low=-1.0, high=1.0)
    plan = cem.optimize(
        _quadratic(target, samples), torch.zeros(3, 2), torch.ones(3, 2), torch.Generator()
    )
    everything = torch.cat(samples)
    assert everything.min() >= -1.0 and everything.max() <= 1.0
    assert (plan[:, 0] > 0.97).all() and (plan[:, 0] <= 1.0).all()
    torch.testing.assert_close(plan[:, 1], torch.full((3,), -0.2), atol=0.02, rtol=0)


def test_cem_caps_the_std_at_half_the_distance_to_the_nearest_bound():
    samples = []
    cem = _cem(H=1, A=1, low=0.0, high=1.0, popsize=5000, num_elites=500, max_iters=1)
    cem.optimize(
        _quadratic(0.0, samples),
        torch.full((1, 1), 0.9),
        torch.full((1, 1), 4.0),
        torch.Generator().manual_seed(0),
    )
    x = samples[0][:, 0, 0]
    # var_c = ((1 - 0.9) / 2)^2: samples stay within 0.9 +- 0.1, sd = 0.05 * 0.88 (truncated)
    assert x.min() >= 0.8 and x.max() <= 1.0
    assert abs(x.std().item() - 0.05 * TRUNC2_VAR**0.5) < 0.003  # 5000 draws: sd error ~0.0004


def test_cem_stops_once_the_variance_is_below_epsilon():
    calls = []
    cem = _cem(popsize=400, num_elites=4, alpha=0.0, epsilon=0.05, max_iters=5)
    cem.optimize(
        _quadratic(0.2, calls),
        torch.zeros(3, 2),
        torch.full((3, 2), 0.25),
        torch.Generator().manual_seed(0),
    )
    # alpha = 0: the variance becomes the 4 elites' variance, far below 0.05 after one iteration
    assert len(calls) == cem.num_iters == 1
    calls.clear()
    plan = cem.optimize(
        _quadratic(0.2, calls), torch.full((3, 2), 0.5), torch.full((3, 2), 1e-7), torch.Generator()
    )
    assert calls == [] and cem.num_iters == 0  # already below epsilon: the initial mean
    torch.testing.assert_close(plan, torch.full((3, 2), 0.5))


@pytest.mark.parametrize("var_update", ["blended", "elite"])
def test_cem_mean_and_variance_updates(var_update):
    """Iteration 2 samples from N(m2, v2) with m2 = a m + (1-a) m_e and v2 = a v + (1-a) v_e
    (blended) or v_e (elite), where m_e, v_e are iteration 1's elite mean / population var."""
    samples, alpha, v0 = [], 0.5, 0.04
    cem = _cem(
        H=1,
        A=1,
        low=-10.0,
        high=10.0,
        popsize=40000,
        num_elites=4000,
        alpha=alpha,
        max_iters=2,
        var_update=var_update,
    )

    def cost_fn(seqs):
        samples.append(seqs.clone())
        return seqs[:, 0, 0]  # elites: the lowest 10%

    cem.optimize(cost_fn, torch.zeros(1, 1), torch.full((1, 1), v0), torch.Generator())
    first, second = samples[0][:, 0, 0], samples[1][:, 0, 0]
    elites = first.sort().values[:4000]
    m2 = (1 - alpha) * elites.mean()
    v_e = elites.var(unbiased=False)
    v2 = alpha * v0 + (1 - alpha) * v_e if var_update == "blended" else v_e
    # 40,000 draws: the mean is good to ~0.001 sd, the variance to ~1%; tolerances 5 sd
    assert abs(second.mean() - m2) < 5 * (v2 / 40000) ** 0.5
    torch.testing.assert_close(second.var(), v2 * TRUNC2_VAR, rtol=0.05, atol=0)


def test_cem_ranks_a_nan_cost_exactly_like_an_infinite_one():
    """A NaN candidate is never an elite: CEM plans exactly as if its cost were +inf. (CEM's
    nan_to_num and torch.topk both rank NaN last; the rollout's per-particle 1e6 is tested
    through the MPC in test_mpc.py, where removing it changes the plan.)"""

    def cost_fn(bad):  # ``bad`` wherever the first action is negative, else a quadratic
        def fn(seqs):
            cost = (seqs - 0.1).square().sum(dim=(1, 2))
            return torch.where(seqs[:, 0, 0] < 0, bad, cost)

        return fn

    plans = [
        _cem(max_iters=3).optimize(
            cost_fn(bad),
            torch.zeros(3, 2),
            torch.full((3, 2), 0.25),
            torch.Generator().manual_seed(0),
        )
        for bad in (torch.nan, torch.inf)
    ]
    assert plans[0][0, 0] > 0
    torch.testing.assert_close(plans[0], plans[1], rtol=0, atol=0)


def test_cem_returns_the_final_mean_not_the_best_sample():
    samples = []
    cem = _cem(H=1, A=1, popsize=50, num_elites=5, max_iters=1, alpha=0.0)
    plan = cem.optimize(
        _quadratic(0.5, samples),
        torch.zeros(1, 1),
        torch.full((1, 1), 0.25),
        torch.Generator().manual_seed(0),
    )
    x = samples[0]
    elites = x[(x - 0.5).square().sum(dim=(1, 2)).argsort()[:5]]
    torch.testing.assert_close(plan, elites.mean(dim=0))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"popsize": 10, "num_elites": 20}, "popsize"),
        ({"num_elites": 0}, "num_elites"),
        ({"alpha": 1.5}, "alpha"),
        ({"var_update": "old"}, "var_update"),
        ({"H": 0}, "horizon"),
    ],
)
def test_cem_bad_arguments_raise_naming_the_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        _cem(**kw)


def test_random_shooting_returns_the_best_sample_within_bounds():
    samples = []
    opt = RandomShooting(popsize=300, lower=torch.full((4, 2), -2.0), upper=torch.full((4, 2), 1.0))
    plan = opt.optimize(
        _quadratic(torch.tensor([0.5, -1.5]), samples),
        torch.zeros(4, 2),
        torch.ones(4, 2),
        torch.Generator().manual_seed(0),
    )
    x = samples[0]
    assert len(samples) == 1 and x.shape == (300, 4, 2)
    assert x.min() >= -2.0 and x.max() <= 1.0
    best = (x - torch.tensor([0.5, -1.5])).square().sum(dim=(1, 2)).argmin()
    torch.testing.assert_close(plan, x[best], atol=0, rtol=0)


def test_random_shooting_never_returns_a_nan_candidate():
    def cost_fn(seqs):
        return torch.where(seqs[:, 0, 0] > 0, torch.nan, -seqs[:, 0, 0])  # NaN would be "best"

    opt = RandomShooting(popsize=100, lower=-torch.ones(2, 1), upper=torch.ones(2, 1))
    plan = opt.optimize(cost_fn, torch.zeros(2, 1), torch.ones(2, 1), torch.Generator())
    assert plan[0, 0] <= 0


def test_random_shooting_bad_arguments_raise():
    with pytest.raises(ValueError, match="popsize"):
        RandomShooting(popsize=0, lower=-torch.ones(2, 1), upper=torch.ones(2, 1))
    with pytest.raises(ValueError, match="horizon"):
        RandomShooting(popsize=5, lower=-torch.ones(0, 1), upper=torch.ones(0, 1))


@pytest.mark.parametrize(
    "cfg",
    [
        CEMCfg(popsize=6, num_elites=2, max_iters=2, var_update="elite"),
        ICEMCfg(popsize=6, num_elites=2),
        MPPICfg(popsize=6, num_iters=2),
        RandomCfg(popsize=6),
    ],
    ids=type,
)
def test_every_optimizer_is_built_from_its_config_and_plans_as_a_coroutine(cfg):
    """The protocol (planning.optimizer): ``make_optimizer`` builds the class of the config,
    which keeps that config; ``optimize`` is its ``plan`` coroutine driven by the cost function:
    each population yielded is answered, and the same generator seed gives the same plan."""
    lower, upper = torch.full((3, 2), -1.0), torch.full((3, 2), 1.0)
    opt = make_optimizer(cfg, lower, upper, per=1)
    assert isinstance(opt, Optimizer) and type(opt) is OPTIMIZERS[type(cfg)]
    assert opt.config == cfg
    mean, var = torch.zeros(3, 2), torch.full((3, 2), 0.25)
    seen = []
    solution = opt.optimize(_quadratic(torch.tensor([0.3, -0.5]), seen), mean, var,
                            torch.Generator().manual_seed(0))  # fmt: skip
    assert sum(len(s) for s in seen) == opt.num_evaluated > 0
    opt.reset()  # iCEM: the first plan's elites would join the second
    plan = opt.plan(mean, var, torch.Generator().manual_seed(0))
    samples = next(plan)
    try:
        while True:
            samples = plan.send((samples - torch.tensor([0.3, -0.5])).square().sum(dim=(1, 2)))
    except StopIteration as done:
        assert torch.equal(done.value, solution)
