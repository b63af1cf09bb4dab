"""iCEM (Pinneri et al. 2020) and MPPI (Williams et al. 2017) against their papers' definitions:
colored-noise spectra, population decay, elite reuse, MPPI weights and update in closed form,
convergence within a fixed budget, bounds, determinism."""

import math

import numpy as np
import pytest
import torch
from support.devices import DEVICES
from support.fakes import fake_mpc

from pets_core.planning import ICEMOptimizer, MPPIOptimizer, colored_noise, mppi_weights


def _box(H, A, low=-1.0, high=1.0, device="cpu"):
    return torch.full((H, A), low, device=device), torch.full((H, A), high, device=device)


def _icem(H=5, A=2, low=-1.0, high=1.0, device="cpu", **kw):
    args = dict(
        popsize=100,
        num_elites=10,
        max_iters=3,
        alpha=0.1,
        noise_beta=2.0,
        pop_decay=1.25,
        keep_elites_frac=0.3,
    )
    lower, upper = _box(H, A, low, high, device)
    return ICEMOptimizer(lower=lower, upper=upper, **(args | kw))


def _mppi(H=5, A=2, low=-1.0, high=1.0, device="cpu", **kw):
    args = dict(popsize=200, num_iters=1, temperature=1.0, sigma=1.0)
    lower, upper = _box(H, A, low, high, device)
    return MPPIOptimizer(lower=lower, upper=upper, **(args | kw))


class Recorder:
    """The quadratic ``sum (x - target)^2``; keeps every population and its costs."""

    def __init__(self, target, scale=1.0):
        self.target, self.scale = target, scale
        self.samples, self.costs = [], []

    def __call__(self, seqs):  # (N, H, A) -> (N,)
        cost = self.scale * (seqs - self.target).square().sum(dim=(1, 2))
        self.samples.append(seqs.clone())
        self.costs.append(cost.clone())
        return cost


def _start(H=5, A=2, var=0.25, device="cpu"):
    return torch.zeros(H, A, device=device), torch.full((H, A), var, device=device)


# ----------------------------------------------------------------------------- colored noise
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 2.5, 4.0])
def test_colored_noise_has_a_power_law_spectrum_with_the_exponent(beta):
    H, num, A = 256, 400, 2
    x = colored_noise(beta, num, H, A, torch.Generator().manual_seed(1)).double().numpy()
    assert x.shape == (num, H, A)
    seqs = x.transpose(0, 2, 1).reshape(-1, H)  # (num * A, H)
    power = (np.abs(np.fft.rfft(seqs, axis=1)) ** 2).mean(axis=0)  # periodogram, (F,)
    k = np.arange(1, H // 2)  # interior frequencies (no DC, no Nyquist)
    slope = np.polyfit(np.log(k / H), np.log(power[k]), 1)[0]
    # 800 sequences: each log-power is good to ~3.5 %, the fitted slope to ~0.01
    assert abs(slope + beta) < 0.05, slope
    # unit variance per time step, zero mean (800 independent sequences per step)
    assert abs(seqs.var(axis=0).mean() - 1.0) < 0.12
    assert abs(seqs.mean()) < 0.15


def test_colored_noise_smoothness_grows_with_beta_and_short_horizons_work():
    gen = torch.Generator().manual_seed(0)
    lag1 = []
    for beta in (0.0, 1.0, 2.0, 3.0):
        x = colored_noise(beta, 2000, 25, 1, gen)[..., 0].numpy()  # (2000, 25)
        lag1.append(np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1])
    assert abs(lag1[0]) < 0.03  # white
    assert lag1 == sorted(lag1) and lag1[-1] > 0.9
    for H in (1, 2, 3):  # the shortest horizons: finite, unit variance
        x = colored_noise(2.0, 20000, H, 1, gen)
        assert torch.isfinite(x).all() and abs(x.var().item() - 1.0) < 0.05


def test_colored_noise_comes_from_the_generator():
    a = colored_noise(2.0, 5, 10, 3, torch.Generator().manual_seed(7))
    b = colored_noise(2.0, 5, 10, 3, torch.Generator().manual_seed(7))
    c = colored_noise(2.0, 5, 10, 3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and (a != c).all()  # another seed: every value differs


# ----------------------------------------------------------------------------- iCEM
def test_icem_population_decays_and_reuses_elites_in_the_papers_counts():
    icem = _icem(popsize=100, num_elites=10, pop_decay=1.25, max_iters=4, keep_elites_frac=0.3)
    assert icem.num_keep == 3 and icem.population_sizes() == [100, 80, 64, 52]  # ceil(51.2)
    rec = Recorder(0.3)
    gen = torch.Generator().manual_seed(0)
    icem.optimize(rec, *_start(), gen)
    # i > 0: + 3 kept elites; last iteration: + the mean; first plan: nothing to shift
    assert [len(s) for s in rec.samples] == [100, 83, 67, 56]
    assert icem.num_evaluated == 306
    rec.samples.clear()
    icem.optimize(rec, *_start(), gen)
    assert [len(s) for s in rec.samples] == [103, 83, 67, 56]  # + 3 shifted elites of plan 1
    icem.reset()
    rec.samples.clear()
    icem.optimize(rec, *_start(), gen)
    assert [len(s) for s in rec.samples] == [100, 83, 67, 56]


def test_icem_population_never_drops_below_twice_the_elites():
    icem = _icem(popsize=30, num_elites=10, pop_decay=2.0, max_iters=3, keep_elites_frac=0.0)
    assert icem.population_sizes() == [30, 20, 20]  # 15 and 7.5 are below 2 K = 20
    rec = Recorder(0.0)
    icem.optimize(rec, *_start(), torch.Generator())
    assert [len(s) for s in rec.samples] == [30, 20, 21]  # no elites kept; + the mean


def test_icem_keeps_the_best_elites_and_adds_the_updated_mean_last():
    alpha, K = 0.5, 10
    icem = _icem(max_iters=3, alpha=alpha, num_elites=K, keep_elites_frac=0.3)
    rec = Recorder(torch.tensor([0.3, -0.4]))
    mean0, var0 = torch.full((5, 2), 0.1), torch.full((5, 2), 0.2)
    icem.optimize(rec, mean0, var0, torch.Generator().manual_seed(3))
    (s0, s1, s2), (c0, c1, _) = rec.samples, rec.costs
    best0 = s0[c0.argsort()]
    torch.testing.assert_close(s1[-3:], best0[:3], rtol=0, atol=0)
    torch.testing.assert_close(s2[-4:-1], s1[c1.argsort()][:3], rtol=0, atol=0)
    # the mean after two updates: m <- alpha m + (1 - alpha) mean(K best)
    m1 = alpha * mean0 + (1 - alpha) * best0[:K].mean(dim=0)
    m2 = alpha * m1 + (1 - alpha) * s1[c1.argsort()][:K].mean(dim=0)
    torch.testing.assert_close(s2[-1], m2)


def test_icem_std_update_uses_the_elites_population_std():
    """Iteration 2's fresh samples are mean + std * noise with std = a s0 + (1 - a) sd(elites):
    reconstruct the noise from the samples and check it is the unit colored noise."""
    alpha, K = 0.25, 50
    icem = _icem(H=4, A=1, low=-50.0, high=50.0, popsize=4000, num_elites=K, max_iters=2)
    icem.alpha = alpha
    rec = Recorder(0.0)
    mean0, var0 = torch.zeros(4, 1), torch.full((4, 1), 4.0)
    icem.optimize(rec, mean0, var0, torch.Generator().manual_seed(0))
    s0, s1 = rec.samples[0], rec.samples[1][: icem.population_sizes()[1]]
    elites = s0[rec.costs[0].argsort()][:K]
    m1 = alpha * mean0 + (1 - alpha) * elites.mean(dim=0)
    sd1 = alpha * 2.0 + (1 - alpha) * elites.std(dim=0, unbiased=False)
    z = (s1 - m1) / sd1  # (N, 4, 1): unit-variance noise if the update is the paper's
    assert abs(z.var().item() - 1.0) < 0.05 and abs(z.mean().item()) < 0.1


def test_icem_shifts_the_previous_plans_best_elites_by_per():
    per, H = 2, 6
    icem = _icem(H=H, A=2, per=per, max_iters=2, keep_elites_frac=0.3)
    rec = Recorder(torch.tensor([0.2, -0.1]))
    gen = torch.Generator().manual_seed(5)
    icem.optimize(rec, *_start(H=H), gen)
    last = rec.samples[-1][rec.costs[-1].argsort()][:3]  # the final iteration's 3 best
    rec2 = Recorder(torch.tensor([-0.5, 0.5]))
    icem.optimize(rec2, *_start(H=H), gen)
    shifted = rec2.samples[0][-3:]
    torch.testing.assert_close(shifted[:, : H - per], last[:, per:], rtol=0, atol=0)
    assert shifted[:, H - per :].abs().max() <= 1.0  # new tails, clipped to the box


def test_icem_returns_the_lowest_cost_sequence_it_evaluated():
    rec = Recorder(torch.tensor([0.45, -0.2]))
    plan = _icem(max_iters=3).optimize(rec, *_start(), torch.Generator().manual_seed(2))
    everything, costs = torch.cat(rec.samples), torch.cat(rec.costs)
    torch.testing.assert_close(plan, everything[costs.argmin()], rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_icem_finds_the_optimum_of_a_quadratic_within_its_budget(device):
    target = torch.tensor([0.3, -0.5], device=device)
    icem = _icem(device=device, popsize=200, num_elites=10, max_iters=12, noise_beta=2.0)
    plan = icem.optimize(
        Recorder(target), *_start(device=device), torch.Generator(device=device).manual_seed(0)
    )
    assert icem.num_evaluated < 1000  # the decayed budget: < 5 CEM iterations of 200
    # the best single sample of 10 dims (not a mean): ~0.05 off after 12 iterations
    torch.testing.assert_close(plan, target.expand(5, 2), atol=0.1, rtol=0)


def test_icem_samples_stay_in_the_box_and_the_plan_goes_to_the_bound():
    rec = Recorder(torch.tensor([3.0, -0.2]))  # first dim's optimum beyond upper = 1
    icem = _icem(popsize=100, max_iters=4, per=1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # later plans include shifted elites with new tails
        plan = icem.optimize(rec, torch.zeros(5, 2), torch.ones(5, 2), gen)
    everything = torch.cat(rec.samples)
    assert everything.min() >= -1.0 and everything.max() <= 1.0
    assert (plan[:, 0] > 0.97).all() and (plan[:, 0] <= 1.0).all()


def test_icem_never_returns_a_nan_candidate():
    def cost_fn(seqs):  # NaN wherever the first action is negative: NaN would sort first
        cost = (seqs - 0.1).square().sum(dim=(1, 2))
        return torch.where(seqs[:, 0, 0] < 0, torch.nan, cost)

    plan = _icem().optimize(cost_fn, *_start(), torch.Generator().manual_seed(0))
    assert plan[0, 0] >= 0


def test_icem_is_deterministic_given_the_generator():
    def plans(seed):
        icem, gen = _icem(), torch.Generator().manual_seed(seed)
        return [icem.optimize(Recorder(0.2), *_start(), gen) for _ in range(2)]

    a, b, c = plans(4), plans(4), plans(5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert (a[1] != c[1]).all()  # another seed: every action of the plan differs


def test_mpc_reset_makes_icem_forget_the_last_episodes_elites():
    icem = _icem(H=4, A=2, popsize=20, num_elites=4, max_iters=1)
    mpc = fake_mpc(icem, H=4, A=2)
    mpc.model_trained = True
    sizes = []  # candidates each plan evaluated
    for reset in (False, False, True):
        if reset:
            mpc.reset(None)
        mpc.act(np.zeros(3))
        sizes.append(icem.num_evaluated)
    keep = icem.num_keep  # round(0.3 * 4) = 1
    assert keep == 1 and sizes == [20 + 1, 20 + keep + 1, 20 + 1]  # + the mean (last iteration)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"popsize": 5, "num_elites": 10}, "popsize"),
        ({"num_elites": 0}, "num_elites"),
        ({"max_iters": 0}, "max_iters"),
        ({"alpha": 1.0}, "alpha"),
        ({"noise_beta": -1.0}, "noise_beta"),
        ({"pop_decay": 0.9}, "pop_decay"),
        ({"keep_elites_frac": 1.5}, "keep_elites_frac"),
        ({"per": 6}, "per"),
        ({"H": 0}, "horizon"),
    ],
)
def test_icem_bad_arguments_raise_naming_the_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        _icem(**kw)


# ----------------------------------------------------------------------------- MPPI
def test_mppi_weights_match_the_closed_form():
    costs = [3.0, 1.0, 2.0, math.inf, 1.0e4]
    lam = 0.5
    raw = [math.exp(-(c - 1.0) / lam) for c in costs]  # exp(-inf) = 0
    expected = [r / sum(raw) for r in raw]
    w = mppi_weights(torch.tensor(costs, dtype=torch.float64), lam)
    torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float64))
    # huge costs: shifting by the minimum avoids underflow to 0 / 0
    w = mppi_weights(torch.tensor([1000.0, 1001.0]), 1.0)
    torch.testing.assert_close(w, torch.tensor([1 / (1 + math.exp(-1)), 1 / (1 + math.e)]))
    # lambda -> 0: the argmin; lambda -> inf: uniform
    costs = torch.tensor([2.0, 1.0, 3.0])
    torch.testing.assert_close(mppi_weights(costs, 1e-4)[1], torch.tensor(1.0))
    torch.testing.assert_close(
        mppi_weights(torch.tensor([2.0, 1.0, 3.0]), 1e6), torch.full((3,), 1 / 3), rtol=1e-5, atol=0
    )


def test_mppi_update_is_the_weighted_average_of_its_samples():
    rec = Recorder(torch.tensor([0.5, -0.5]))
    lam = 0.7
    plan = _mppi(temperature=lam, popsize=50).optimize(
        rec, *_start(), torch.Generator().manual_seed(0)
    )
    samples = rec.samples[0].double().numpy()  # (50, 5, 2)
    costs = rec.costs[0].double().numpy()
    w = np.exp(-(costs - costs.min()) / lam)
    expected = np.einsum("n,nha->ha", w / w.sum(), samples)
    np.testing.assert_allclose(plan.numpy(), expected, atol=1e-6)


def test_mppi_one_step_on_a_quadratic_is_the_tilted_gaussians_mean():
    """Samples N(U, s^2) weighted by exp(-c (v - t)^2 / lambda) have mean
    (U / s^2 + 2 c t / lambda) / (1 / s^2 + 2 c / lambda) (a product of Gaussians)."""
    U, s2, c, lam, t = 0.2, 0.25, 1.0, 0.5, torch.tensor([0.6, -0.4])
    opt = _mppi(H=1, A=2, low=-100.0, high=100.0, popsize=200_000, temperature=lam, sigma=1.0)
    plan = opt.optimize(
        Recorder(t, scale=c),
        torch.full((1, 2), U),
        torch.full((1, 2), s2),
        torch.Generator().manual_seed(0),
    )
    expected = (U / s2 + 2 * c * t / lam) / (1 / s2 + 2 * c / lam)
    # tilted sd 0.2; effective sample size > 10^5: the estimate is good to ~0.001
    torch.testing.assert_close(plan[0], expected, atol=0.005, rtol=0)


def test_mppi_sigma_scales_the_initial_std():
    rec = Recorder(0.0)
    _mppi(H=3, A=1, low=-100.0, high=100.0, popsize=20000, sigma=0.5).optimize(
        rec, torch.zeros(3, 1), torch.full((3, 1), 4.0), torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(rec.samples[0].std().item(), 0.5 * 2.0, rtol=0.02, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_mppi_finds_the_optimum_of_a_quadratic_within_its_budget(device):
    target = torch.tensor([0.3, -0.5], device=device)
    opt = _mppi(device=device, popsize=500, num_iters=10, temperature=0.2, sigma=0.5)
    plan = opt.optimize(
        Recorder(target), *_start(device=device), torch.Generator(device=device).manual_seed(0)
    )
    assert opt.num_evaluated == 5000
    # in expectation U <- (16 U + 10 t) / 26 per iteration (the tilted Gaussian's mean), so the
    # bias is 0.6^10 * 0.5 ~ 0.003; the weighted mean's sampling sd is ~0.015 (ESS ~ 200)
    torch.testing.assert_close(plan, target.expand(5, 2), atol=0.06, rtol=0)


def test_mppi_samples_and_plan_stay_in_the_box():
    rec = Recorder(torch.tensor([3.0, -0.2]))
    plan = _mppi(popsize=500, num_iters=10, temperature=0.2, sigma=0.5).optimize(
        rec, torch.zeros(5, 2), torch.full((5, 2), 0.25), torch.Generator().manual_seed(0)
    )
    everything = torch.cat(rec.samples)
    assert everything.min() >= -1.0 and everything.max() <= 1.0
    assert (plan[:, 0] > 0.95).all() and (plan[:, 0] <= 1.0).all()
    # the bound-pressed first dim dominates the weights: the second is only roughly optimised
    torch.testing.assert_close(plan[:, 1], torch.full((5,), -0.2), atol=0.15, rtol=0)


def test_mppi_smoothing_filters_the_weighted_average_along_the_horizon():
    rec, s, lam = Recorder(0.1), 0.6, 1.0
    plan = _mppi(H=6, A=1, popsize=40, temperature=lam, smoothing=s).optimize(
        rec, *_start(H=6, A=1), torch.Generator().manual_seed(1)
    )
    samples, costs = rec.samples[0].double().numpy(), rec.costs[0].double().numpy()
    w = np.exp(-(costs - costs.min()) / lam)
    raw = np.einsum("n,nha->ha", w / w.sum(), samples)[:, 0]
    smooth = [raw[0]]
    for x in raw[1:]:
        smooth.append((1 - s) * x + s * smooth[-1])
    np.testing.assert_allclose(plan[:, 0].numpy(), smooth, atol=1e-6)


def test_mppi_keeps_the_plan_when_every_cost_is_nan():
    start = torch.full((5, 2), 0.3)
    plan = _mppi(num_iters=2).optimize(
        lambda seqs: torch.full((len(seqs),), torch.nan), start, torch.ones(5, 2), torch.Generator()
    )
    torch.testing.assert_close(plan, start, rtol=0, atol=0)


def test_mppi_is_deterministic_given_the_generator():
    def plan(seed):
        return _mppi(num_iters=2).optimize(
            Recorder(0.2), *_start(), torch.Generator().manual_seed(seed)
        )

    assert torch.equal(plan(3), plan(3)) and (plan(3) != plan(4)).all()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"popsize": 0}, "popsize"),
        ({"num_iters": 0}, "num_iters"),
        ({"temperature": 0.0}, "temperature"),
        ({"sigma": -1.0}, "sigma"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"H": 0}, "horizon"),
    ],
)
def test_mppi_bad_arguments_raise_naming_the_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        _mppi(**kw)
