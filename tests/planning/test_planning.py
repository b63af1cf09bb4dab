"""Propagation (§propagation) with fake ensembles whose outputs encode what they were given.

The fakes follow the models contract (``predict(x[E, M, I])``, ``predict_moments(x[M, I])``) but
expose no weights, so ``predicted_costs`` calls the contract API (the fast layout is tested
against the real model at the end).
"""

import pytest
import torch
from support.devices import DEVICES
from support.fakes import FakeEnsemble, fake_task, small_model, spec_for

from pets_core.config.variants import VariantError
from pets_core.planning import NAN_COST, predicted_costs, predicted_particles


def _particles(model, task, prop, P, N=3, H=4, seed=0, ign_var=False, device="cpu"):
    obs = torch.zeros(task.obs_dim, device=device)
    seqs = torch.zeros(N, H, task.act_dim, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    return predicted_particles(
        model,
        task,
        obs,
        seqs,
        spec=spec_for(model, prop, P, ign_var),
        goal=None,
        generator=gen,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_tsinf_pins_every_particle_to_its_member_for_the_whole_horizon(device):
    E, P, N, H = 5, 20, 3, 4
    model = FakeEnsemble(E, 2, 1, probabilistic=False)  # DE: member e adds e every step
    states, _ = _particles(model, fake_task(), "TSinf", P, N, H, device=device)  # (N, H+1, P, 1)
    member = torch.arange(P, device=device) // (P // E)  # particle p -> member p // (P/E)
    expected = torch.arange(H + 1, device=device)[:, None] * member  # (H+1, P)
    torch.testing.assert_close(states[..., 0], expected.float().expand(N, -1, -1))
    assert set(model.calls) == {"predict"}


def test_ts1_assigns_a_balanced_random_permutation_per_candidate_per_step():
    E, P, N, H, seed = 5, 20, 7, 6, 3
    model = FakeEnsemble(E, 2, 1, probabilistic=False)
    states, _ = _particles(model, fake_task(), "TS1", P, N, H, seed=seed)
    member = (states[:, 1:] - states[:, :-1])[..., 0].round().long()  # (N, H, P): member used
    counts = torch.stack([torch.bincount(m, minlength=E) for m in member.reshape(-1, P)])
    assert (counts == P // E).all()  # balanced: exactly P/E particles per member
    # exactly the original's draw: per step, rand(N, P).argsort gives position -> particle, and
    # position i uses member i // (P/E) (all H steps' uniforms are drawn in one call)
    perms = torch.rand(H, N, P, generator=torch.Generator().manual_seed(seed)).argsort(dim=-1)
    for t in range(H):
        perm = perms[t]
        expected = torch.empty(N, P, dtype=torch.long)
        expected.scatter_(1, perm, (torch.arange(P) // (P // E)).expand(N, -1))
        torch.testing.assert_close(member[:, t], expected)
    # random: the assignment differs between candidates and between steps
    assert not (member[0] == member[1]).all()
    assert not (member[:, 0] == member[:, 1]).all()


def test_ds_samples_the_moment_matched_gaussian_per_particle():
    N, P, mean, var = 100, 100, 2.0, 0.25
    model = FakeEnsemble(
        5, 2, 1, probabilistic=True, var=var, mean_fn=lambda x, e: x[..., :1] + mean
    )
    states, _ = _particles(model, fake_task(), "DS", P, N, H=1)
    delta = states[:, 1, :, 0]  # (N, P) samples of N(2, 0.25)
    # 10,000 draws: standard error of the mean 0.005, of the variance ~0.0035; 5 sigma tolerance
    assert abs(delta.mean().item() - mean) < 0.025
    assert abs(delta.var().item() - var) < 0.018
    assert set(model.calls) == {"predict_moments"}  # members are never sampled per particle


def test_ds_of_a_deterministic_ensemble_samples_the_variance_of_the_means():
    model = FakeEnsemble(5, 2, 1, probabilistic=False, var=0.5)  # fake DE: moments carry var
    states, _ = _particles(model, fake_task(), "DS", 50, N=4, H=1)
    assert states[:, 1].std() > 0.5  # sampled, not the mean (which is 0 here)


def test_mm_resamples_all_particles_from_per_candidate_moments_of_the_output():
    """Step 2 under DS gives particle i the delta N(s1_i, 1), tied to its own state; MM replaces
    the deltas by fresh draws from their per-candidate mean/variance, then adds them to each
    particle's own state (the output, not the next state, is moment-matched)."""
    N, P = 4, 2000
    model = FakeEnsemble(5, 2, 1, probabilistic=True, var=1.0, mean_fn=lambda x, e: x[..., :1])
    for prop, tied in (("DS", True), ("MM", False)):
        states, _ = _particles(model, fake_task(), prop, P, N, H=2, seed=1)
        s1, s2 = states[:, 1, :, 0], states[:, 2, :, 0]  # (N, P)
        for k in range(N):
            corr_delta = torch.corrcoef(torch.stack([s2[k] - s1[k], s1[k]]))[0, 1]
            corr_state = torch.corrcoef(torch.stack([s2[k], s1[k]]))[0, 1]
            # 2000 particles: |corr| of independent draws < 0.1 with margin (sd 0.022)
            assert (corr_delta > 0.5) if tied else (abs(corr_delta) < 0.1)
            assert corr_state > 0.5  # each particle keeps its own state
        if prop == "MM":  # step-1 particles all came from the same per-candidate Gaussian
            assert s1.std(dim=1).min() > 0.9


def test_mm_with_identical_particles_and_no_variance_stays_at_the_mean():
    model = FakeEnsemble(
        5, 2, 1, probabilistic=True, var=0.0, mean_fn=lambda x, e: x[..., :1] * 0 + 1
    )
    states, _ = _particles(model, fake_task(), "MM", 8, N=2, H=3)
    torch.testing.assert_close(
        states[..., 0], torch.tensor([0.0, 1, 2, 3])[:, None].expand(2, 4, 8)
    )


def test_e_is_deterministic():
    model = FakeEnsemble(5, 2, 1, probabilistic=True, var=1.0, mean_fn=lambda x, e: x[..., 1:] + 1)
    task = fake_task()
    seqs = torch.linspace(-1, 1, 6).view(2, 3, 1)
    costs = [
        predicted_costs(
            model,
            task,
            torch.zeros(1),
            seqs,
            spec=spec_for(model, "E", 1, False),
            goal=None,
            generator=torch.Generator().manual_seed(seed),
        )
        for seed in (0, 1)
    ]
    torch.testing.assert_close(costs[0], costs[1], atol=0, rtol=0)
    # s_t = sum_{u<t} (a_u + 1), cost = sum_t s_{t+1}
    s = torch.cumsum(seqs[..., 0] + 1, dim=1)
    torch.testing.assert_close(costs[0], s.sum(dim=1))


def test_cost_is_the_undiscounted_mean_over_particles_plus_action_cost():
    E, P, N, H = 5, 20, 2, 3
    model = FakeEnsemble(E, 2, 1, probabilistic=False)
    task = fake_task(ac_cost=lambda action: action.sum(-1))
    seqs = torch.ones(N, H, 1) * torch.tensor([1.0, 2.0]).view(N, 1, 1)
    costs = predicted_costs(
        model,
        task,
        torch.zeros(1),
        seqs,
        spec=spec_for(model, "TSinf", P, False),
        goal=None,
        generator=torch.Generator(),
    )
    mean_member = (E - 1) / 2  # particle on member e: cost sum_{t=1..H} t e
    expected = mean_member * H * (H + 1) / 2 + seqs.sum(dim=(1, 2))
    torch.testing.assert_close(costs, expected)


@pytest.mark.parametrize("prop", ["TSinf", "TS1"])
def test_nan_cost_becomes_1e6_per_particle_before_the_mean(prop):
    E, P = 5, 20
    nan_on_member_0 = lambda x, e: torch.where(e == 0, torch.nan, 0.0).expand(*x.shape[:-1], 1)  # noqa: E731
    model = FakeEnsemble(E, 2, 1, probabilistic=False, mean_fn=nan_on_member_0)
    costs = predicted_costs(
        model,
        fake_task(),
        torch.zeros(1),
        torch.zeros(3, 2, 1),
        spec=spec_for(model, prop, P, False),
        goal=None,
        generator=torch.Generator().manual_seed(0),
    )
    if prop == "TSinf":  # P/E particles on member 0 are NaN, the others cost 0
        torch.testing.assert_close(costs, torch.full((3,), NAN_COST / E))
    else:  # re-assigned each step: more particles touch member 0, none is cheaper than 0
        assert (costs >= NAN_COST / E).all() and torch.isfinite(costs).all()


def test_nan_everywhere_costs_exactly_1e6():
    model = FakeEnsemble(
        5, 2, 1, probabilistic=True, var=1.0, mean_fn=lambda x, e: x[..., :1] * torch.nan
    )
    costs = predicted_costs(
        model,
        fake_task(),
        torch.zeros(1),
        torch.zeros(4, 3, 1),
        spec=spec_for(model, "DS", 10, False),
        goal=None,
        generator=torch.Generator(),
    )
    torch.testing.assert_close(costs, torch.full((4,), NAN_COST))


def test_ign_var_uses_the_mean():
    model = FakeEnsemble(5, 2, 1, probabilistic=True, var=4.0)
    states, _ = _particles(model, fake_task(), "TSinf", 10, ign_var=True)
    assert torch.equal(states, states.round())  # member indices only, no noise


@pytest.mark.parametrize(
    ("model_kw", "prop", "P", "match"),
    [
        ({"E": 1, "probabilistic": False}, "TSinf", 20, "D needs prop-type E"),
        ({"E": 1, "probabilistic": True}, "TS1", 20, "needs an ensemble"),
        ({"E": 5, "probabilistic": True}, "E", 20, "exactly 1 particle"),
        ({"E": 5, "probabilistic": True}, "TSinf", 22, "divisible"),
        ({"E": 5, "probabilistic": True}, "XX", 20, "unknown prop-type"),
    ],
)
def test_invalid_combinations_raise_clear_errors(model_kw, prop, P, match):
    E = model_kw.pop("E")
    model = FakeEnsemble(E, 2, 1, **model_kw)
    with pytest.raises(VariantError, match=match):
        predicted_costs(
            model,
            fake_task(),
            torch.zeros(1),
            torch.zeros(2, 3, 1),
            spec=spec_for(model, prop, P, False),
            goal=None,
            generator=torch.Generator(),
        )


@pytest.mark.parametrize(
    ("obs_shape", "seq_shape", "match"),
    [
        ((1,), (2, 0, 1), "horizon H >= 1"),
        ((2,), (2, 3, 1), "obs must"),
        ((1,), (2, 3), "action_seqs"),
    ],
)
def test_bad_shapes_raise(obs_shape, seq_shape, match):
    model = FakeEnsemble(5, 2, 1, probabilistic=True)
    with pytest.raises(ValueError, match=match):
        predicted_costs(
            model,
            fake_task(),
            torch.zeros(obs_shape),
            torch.zeros(seq_shape),
            spec=spec_for(model, "TSinf", 5, False),
            goal=None,
            generator=torch.Generator(),
        )


# ---------------------------------------------------------------- the fast layout vs the API


@pytest.mark.parametrize(
    ("model_type", "prop", "P"),
    [
        ("PE", "TSinf", 20),
        ("PE", "TS1", 20),
        ("PE", "DS", 10),
        ("PE", "MM", 10),
        ("PE", "E", 1),
        ("DE", "TSinf", 10),
        ("DE", "DS", 10),
        ("P", "DS", 4),
        ("D", "E", 1),
    ],
)
@pytest.mark.parametrize("backend", ["onednn", "bmm"])
def test_fast_layout_matches_the_model_api(model_type, prop, P, backend):
    from pets_core.envs.tasks import get_task

    task = get_task("halfcheetah")  # preprocessing drops a dim and adds sin/cos: F != O
    model = small_model(model_type, task)
    obs = 0.1 * torch.randn(task.obs_dim, generator=torch.Generator().manual_seed(1))
    seqs = torch.rand(6, 5, task.act_dim, generator=torch.Generator().manual_seed(2)) * 2 - 1
    costs = {
        fast: predicted_costs(
            model,
            task,
            obs,
            seqs,
            spec=spec_for(model, prop, P, False),
            goal=None,
            generator=torch.Generator().manual_seed(0),
            fast=fast,
        )
        for fast in (False, backend)
    }
    # same draws, same maths; only float32 rounding order differs
    torch.testing.assert_close(costs[backend], costs[False], atol=1e-4, rtol=1e-5)


def test_fast_layout_follows_weight_updates():
    from pets_core.envs.tasks import get_task

    task = get_task("cartpole")
    model = small_model("PE", task)
    obs, seqs = torch.zeros(task.obs_dim), torch.rand(4, 3, task.act_dim)

    def costs(fast):
        return predicted_costs(
            model,
            task,
            obs,
            seqs,
            spec=spec_for(model, "E", 1, False),
            goal=None,
            generator=torch.Generator(),
            fast=fast,
        )

    before = costs("auto")
    with torch.no_grad():  # what training does: in-place updates of the same tensors
        model.weights[-1].mul_(3.0)
        model.normalizer.mean.add_(0.5)
    after = costs("auto")
    assert (before != after).all()  # every candidate sees the new weights
    torch.testing.assert_close(after, costs(False), atol=1e-5, rtol=1e-5)


def test_bf16_precision_is_close_to_fp32_and_needs_the_fast_layout():
    from pets_core.envs.tasks import get_task

    task = get_task("halfcheetah")
    model = small_model("PE", task)
    obs, seqs = torch.zeros(task.obs_dim), torch.rand(64, 5, task.act_dim) * 2 - 1
    costs = {
        precision: predicted_costs(
            model,
            task,
            obs,
            seqs,
            spec=spec_for(model, "TSinf", 10, False),
            goal=None,
            generator=torch.Generator().manual_seed(0),
            precision=precision,
        )
        for precision in ("fp32", "bf16")
    }
    # bf16 keeps 8 mantissa bits (~0.4% per rounding); costs are sums of O(1) terms
    torch.testing.assert_close(costs["bf16"], costs["fp32"], rtol=0.05, atol=0.05)
    fake = FakeEnsemble(5, 2, 1, probabilistic=True)
    with pytest.raises(ValueError, match="fast planner forward"):
        predicted_costs(
            fake,
            fake_task(),
            torch.zeros(1),
            torch.zeros(2, 3, 1),
            spec=spec_for(fake, "TSinf", 5, False),
            goal=None,
            generator=torch.Generator(),
            precision="bf16",
        )


def test_cpu_lanes_give_the_same_costs(monkeypatch):
    """Candidate blocks on lanes (and row blocks within a member) == one block on one thread."""
    import pets_core.planning.forward as forward
    import pets_core.planning.rollout as rollout
    from pets_core.envs.tasks import get_task

    task = get_task("halfcheetah")
    model = small_model("PE", task)
    obs, seqs = torch.zeros(task.obs_dim), torch.rand(30, 4, task.act_dim) * 2 - 1

    def costs(prop, P):
        return predicted_costs(
            model,
            task,
            obs,
            seqs,
            spec=spec_for(model, prop, P, False),
            goal=None,
            generator=torch.Generator().manual_seed(0),
            fast="onednn",
        )

    props = [("TSinf", 10), ("TS1", 10), ("DS", 4), ("MM", 4)]
    monkeypatch.setattr(rollout, "num_lanes", lambda: 3)  # 3 candidate blocks
    with_lanes = [costs(prop, P) for prop, P in props]
    monkeypatch.setattr(rollout, "num_lanes", lambda: 1)
    monkeypatch.setattr(forward, "num_lanes", lambda: 1)
    for (prop, P), expected in zip(props, with_lanes, strict=True):
        # bit-identical on this machine; a BLAS may pick another kernel for fewer rows elsewhere
        torch.testing.assert_close(costs(prop, P), expected, atol=1e-5, rtol=1e-6)
