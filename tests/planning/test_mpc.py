"""MPC (§action-selection, §ctrl-logs): random start, warm-start shift, replanning, logging."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from support.fakes import FakeEnsemble, fake_mpc, fake_task

import pets_core.planning.cohort as cohort_module
from pets_core.config import RandomCfg
from pets_core.config.variants import VariantError
from pets_core.planning import NAN_COST, CEMOptimizer, tile_bounds
from pets_core.planning.optimizer import Optimizer


class RecordingOptimizer(Optimizer):
    """Returns 100 * call + arange(H * A), evaluating nothing, and records what it was started
    from."""

    def __init__(self, H, A):
        self.lower, self.H, self.A = torch.zeros(H, A), H, A
        self.upper, self.config, self.num_evaluated = torch.ones(H, A), RandomCfg(1), 0
        self.init_means, self.init_vars = [], []

    def plan(self, init_mean, init_var, generator):
        self.init_means.append(init_mean.clone())
        self.init_vars.append(init_var.clone())
        offset = 100.0 * len(self.init_means)
        return offset + torch.arange(self.H * self.A, dtype=torch.float32).view(self.H, self.A)
        yield  # a generator: a plan with no population to cost


def test_uniform_random_actions_before_the_first_training():
    opt = RecordingOptimizer(4, 2)
    mpc = fake_mpc(opt, low=-0.5, high=2.0, seed=3)
    actions = np.stack([mpc.act(np.zeros(3)) for _ in range(200)])
    assert opt.init_means == []  # no planning before training
    assert actions.shape == (200, 2) and actions.min() >= -0.5 and actions.max() <= 2.0
    assert actions.std(axis=0).min() > 0.5  # uniform on a width-2.5 box: sd 0.72
    again = fake_mpc(RecordingOptimizer(4, 2), low=-0.5, high=2.0, seed=3)
    np.testing.assert_array_equal(actions, np.stack([again.act(np.zeros(3)) for _ in range(200)]))


def test_warm_start_shifts_the_solution_by_per_and_appends_zeros():
    H, A = 4, 2
    opt = RecordingOptimizer(H, A)
    mpc = fake_mpc(opt, H=H, A=A, low=0.0, high=2.0)  # mid-point 1, so the zeros are visible
    mpc.model_trained = True
    first = mpc.act(np.zeros(3))
    second = mpc.act(np.zeros(3))
    torch.testing.assert_close(opt.init_means[0], torch.ones(H, A))  # mid-point
    solution1 = 100 + torch.arange(H * A, dtype=torch.float32).view(H, A)
    expected = torch.cat([solution1[1:], torch.zeros(1, A)])
    torch.testing.assert_close(opt.init_means[1], expected)
    np.testing.assert_array_equal(first, solution1[0].numpy())
    np.testing.assert_array_equal(second, solution1[0].numpy() + 100)
    for init_var in opt.init_vars:  # (high - low)^2 / 16, never carried over
        torch.testing.assert_close(init_var, torch.full((H, A), 0.25))


def test_replans_every_per_steps_and_executes_the_buffered_actions(monkeypatch):
    ticks = iter(range(100))  # a fake clock: each reading is one second after the last
    monkeypatch.setattr(cohort_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    H, A, per = 5, 1, 2
    opt = RecordingOptimizer(H, A)
    mpc = fake_mpc(opt, H=H, A=A, per=per)
    mpc.model_trained = True
    actions = [mpc.act(np.zeros(3))[0] for _ in range(4)]
    assert actions == [100.0, 101.0, 200.0, 201.0]
    assert len(opt.init_means) == 2
    expected = torch.tensor([[102.0], [103.0], [104.0], [0.0], [0.0]])
    torch.testing.assert_close(opt.init_means[1], expected)
    # two plans of one (fake) second each, two actions each
    assert (mpc.plan_seconds, mpc.num_planned_actions, mpc.seconds_per_action) == (2, 4, 0.5)
    mpc.reset(None)
    assert np.isnan(mpc.seconds_per_action)  # nothing planned since the reset


def test_reset_restores_the_mid_point_clears_the_buffer_and_refreshes_the_goal():
    opt = RecordingOptimizer(3, 1)
    mpc = fake_mpc(opt, H=3, A=1, per=2, low=0.0, high=4.0)
    mpc.model_trained = True
    mpc.act(np.zeros(3))
    mpc.reset(goal=np.array([0.1, 0.2, 0.3]))
    torch.testing.assert_close(mpc.goal, torch.tensor([0.1, 0.2, 0.3]))
    mpc.act(np.zeros(3))  # plans again although an action was buffered before the reset
    assert len(opt.init_means) == 2
    torch.testing.assert_close(opt.init_means[1], torch.full((3, 1), 2.0))
    mpc.reset(None)
    assert mpc.goal is None


def test_the_goal_reaches_the_cost():
    task = fake_task(O=3, A=1)
    goals = []
    task.obs_cost = lambda next_obs, goal: goals.append(goal) or next_obs[..., 0]
    mpc = fake_mpc(H=2, A=1)
    mpc.task = task
    mpc.model_trained = True
    mpc.reset(goal=np.array([1.0, 2.0, 3.0]))
    mpc.act(np.zeros(3))
    assert goals and all(torch.equal(g, torch.tensor([1.0, 2.0, 3.0])) for g in goals)


@pytest.mark.parametrize("prop", ["TSinf", "TS1", "DS", "MM"])
def test_same_seed_gives_the_same_actions_on_cpu(prop):
    def run(seed):
        mpc = fake_mpc(prop=prop, seed=seed)
        mpc.model_trained = True
        return np.stack([mpc.act(np.full(3, 0.1 * t)) for t in range(3)])

    np.testing.assert_array_equal(run(0), run(0))
    assert (run(0) != run(1)).all()  # another seed: every action component differs


def test_state_dict_resumes_the_random_streams():
    """Resume happens at an episode boundary: random and planned actions continue identically."""
    mpc = fake_mpc(seed=5)
    mpc.act(np.zeros(3))  # one random action
    mpc.model_trained = True
    mpc.act(np.zeros(3))  # one plan
    mpc.reset(None)
    state = mpc.state_dict()
    expected = np.stack([mpc.act(np.zeros(3)) for _ in range(3)])
    resumed = fake_mpc(seed=99)
    resumed.load_state_dict(state)
    assert resumed.model_trained
    np.testing.assert_array_equal(expected, np.stack([resumed.act(np.zeros(3)) for _ in range(3)]))


@pytest.mark.parametrize("log_particles", [False, True])
def test_prediction_log_shapes(log_particles):
    H, P, O = 4, 10, 3
    mpc = fake_mpc(H=H, P=P, log_traj_preds=True, log_particles=log_particles)
    mpc.model_trained = True
    obs = np.array([0.5, -1.0, 2.0])
    for _ in range(3):
        mpc.act(obs)
    log = mpc.pop_prediction_log()
    if log_particles:
        assert set(log) == {"predictions"} and log["predictions"].shape == (3, H + 1, P, O)
        np.testing.assert_allclose(log["predictions"][:, 0], np.broadcast_to(obs, (3, P, O)))
    else:
        assert set(log) == {"means", "vars"}
        assert log["means"].shape == log["vars"].shape == (3, H + 1, O)
        np.testing.assert_allclose(log["means"][:, 0], np.broadcast_to(obs, (3, O)))
        assert (log["vars"][:, 1:] > 0).all()  # particles spread out (PE sampling)
    assert mpc.pop_prediction_log()[next(iter(log))].shape[0] == 0  # popped


def test_no_prediction_log_by_default():
    mpc = fake_mpc()
    mpc.model_trained = True
    mpc.act(np.zeros(3))
    assert mpc.pop_prediction_log() == {}


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"per": 5}, ValueError, "per"),
        ({"per": 0}, ValueError, "per"),
        ({"H": 0}, ValueError, "plan_hor"),
        ({"P": 12}, VariantError, "divisible"),
        ({"prop": "E"}, VariantError, "exactly 1 particle"),
        (
            {"model": FakeEnsemble(1, 5, 3, probabilistic=False)},
            VariantError,
            "D needs prop-type E",
        ),
    ],
)
def test_invalid_settings_raise_clear_errors(kw, error, match):
    with pytest.raises(error, match=match):
        fake_mpc(RecordingOptimizer(4, 2), **kw)


def test_optimizer_bounds_must_match_the_horizon():
    with pytest.raises(ValueError, match="optimizer bounds"):
        fake_mpc(RecordingOptimizer(3, 2), H=4)


def test_a_spec_for_another_model_is_refused():
    spec_model = FakeEnsemble(5, 5, 3, probabilistic=True)
    with pytest.raises(ValueError) as err:
        fake_mpc(model=FakeEnsemble(4, 5, 3, probabilistic=True), propagation_of=spec_model)
    assert str(err.value) == (
        "propagation spec is for model-type PE with E = 5, got a PE model with E = 4"
    )


def test_nan_particles_cost_1e6_each_so_cem_still_ranks_their_candidates():
    """Through the MPC's real CEM: a particle whose cost is NaN costs NAN_COST (the original's
    tf.where(is_nan, 1e6)), so a candidate with a > 0 (member 0 NaN, members 1-4 cost 0) costs
    exactly 1e6 / 5 = 2e5 and beats every a <= 0 candidate (all particles 1e7). Left NaN, the
    optimiser would rank those candidates last (torch.topk puts NaN last) and plan a <= 0."""

    def mean_fn(x, e):  # (E, M, 4): obs 3, action 1; member e
        a = x[..., 3:4]
        out = torch.where(a > 0, torch.where(e == 0, torch.nan, 0.0), 1e7)
        return out.expand(*x.shape[:-1], 3)

    def cem():
        lower, upper = tile_bounds(np.full(1, -1.0), np.full(1, 1.0), 1, "cpu")
        return CEMOptimizer(
            popsize=40, num_elites=5, max_iters=3, epsilon=1e-9, alpha=0.1, lower=lower, upper=upper
        )

    model = FakeEnsemble(5, 4, 3, probabilistic=False, mean_fn=mean_fn)
    mpc = fake_mpc(cem(), H=1, A=1, P=5, prop="TSinf", model=model)
    mpc.model_trained = True
    generator = torch.Generator().set_state(mpc.generator.get_state())
    action = mpc.act(np.zeros(3))

    def oracle(seqs):  # the costs the rollout must produce, written independently
        return torch.where(seqs[:, 0, 0] > 0, NAN_COST / 5, 1e7)

    expected = cem().optimize(oracle, torch.zeros(1, 1), torch.full((1, 1), 0.25), generator)
    assert action[0] > 0
    np.testing.assert_array_equal(action, expected[0].numpy().astype(np.float64))
