"""CohortMPC (planning.cohort): S seeds planned in lockstep equal S single MPCs, bit for bit.

The oracle is each seed's own MPC, built from the same settings and seed and stepped alone by
``_act_alone``: one MPC step written out with the optimiser's ``optimize`` and the MPC's cost
function (the single rollout path), none of planning.cohort's code. Seeds differ in model weights,
normaliser, observations and (reacher) goals, so a mix-up cannot pass.
"""

import numpy as np
import pytest
import torch

from pets_core.config import CEMCfg, ICEMCfg, MPPICfg, RandomCfg
from pets_core.config.variants import VariantError, check_model_prop
from pets_core.envs.tasks import get_task
from pets_core.models import make_model
from pets_core.planning import MPC, PropagationSpec, tile_bounds
from pets_core.planning.cohort import CohortMPC
from pets_core.run.builders import make_optimizer

OPTIMIZERS = {
    "CEM": CEMCfg(popsize=16, num_elites=2, max_iters=2),  # 4 candidate blocks on 2 lanes
    "CEM-elite-eps": CEMCfg(
        popsize=8, num_elites=2, max_iters=6, epsilon=0.02, alpha=0.0, var_update="elite"
    ),
    "iCEM": ICEMCfg(popsize=12, num_elites=2, max_iters=3, pop_decay=1.5, keep_elites_frac=0.5),
    "MPPI": MPPICfg(popsize=8, num_iters=2),
    "Random": RandomCfg(popsize=8),
}


def _valid(model: str, prop: str) -> bool:
    try:
        check_model_prop(model, prop)
    except VariantError:
        return False
    return True


MODEL_PROPS = [(m, p) for m in ("D", "P", "DE", "PE") for p in ("E", "DS", "TS1", "TSinf", "MM")
               if _valid(m, p)]  # fmt: skip


def _mpc(model_type, prop, opt, seed, *, env="cartpole", H=3, per=2, **kw) -> MPC:
    """A tiny real controller (2 x 8 net, E = 2, P = 4) whose weights, normaliser and streams
    come from ``seed``."""
    task = get_task(env)
    model = make_model(
        model_type, in_dim=task.in_dim, out_dim=task.out_dim, hidden_dims=[8, 8],
        weight_decays=[0.0] * 3, num_nets=2 if model_type.endswith("E") else 1, seed=seed,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():  # a fitted-looking normaliser, different per seed
        model.normalizer.mean.copy_(torch.randn(task.in_dim, generator=gen))
        model.normalizer.std.copy_(torch.rand(task.in_dim, generator=gen) + 0.5)
    low, high = np.full(task.act_dim, -1.0), np.full(task.act_dim, 1.0)
    lower, upper = tile_bounds(low, high, H, "cpu")
    return MPC(
        model=model, task=task, optimizer=make_optimizer(OPTIMIZERS[opt], lower, upper, per=per),
        plan_hor=H, per=per, propagation=PropagationSpec.for_model(model, prop, 1 if prop == "E"
        else 4), action_low=low, action_high=high, device="cpu", seed=seed,
        log_traj_preds=True, **kw,
    )  # fmt: skip


def _act_alone(mpc: MPC, obs: np.ndarray) -> np.ndarray:
    """One single-run step: random before training, buffered, else plan ``per`` actions."""
    if not mpc.model_trained:
        return mpc.rng.uniform(mpc.action_low, mpc.action_high)
    if mpc.action_buffer:
        return mpc.action_buffer.pop(0)
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    solution = mpc.optimizer.optimize(mpc.cost_fn(obs_t), mpc.prev_sol, mpc.init_var,
                                      mpc.generator)  # fmt: skip
    mpc.prev_sol = torch.cat([solution[mpc.per :], torch.zeros_like(solution[: mpc.per])])
    actions = solution[: mpc.per].numpy().astype(np.float64)
    mpc.num_planned_actions += mpc.per
    mpc._log_prediction(obs_t, solution)
    mpc.action_buffer = list(actions[1:])
    return actions[0]


def _goal(env: str, seed: int):
    return np.random.default_rng(seed).uniform(-0.2, 0.2, 3) if env == "reacher" else None


def _step_both(make, seeds, *, env="cartpole", random_steps=1, steps=3):
    """Step a cohort and each seed's single MPC (built alike) through ``random_steps`` random
    actions and ``steps`` planned ones at per-seed observations; compare everything."""
    cohort_mpcs = [make(s) for s in seeds]
    singles = [make(s) for s in seeds]
    for s, c, m in zip(seeds, cohort_mpcs, singles, strict=True):
        c.reset(_goal(env, s))
        m.reset(_goal(env, s))
    cohort = CohortMPC(cohort_mpcs)
    O = cohort_mpcs[0].task.obs_dim
    obs_rng = np.random.default_rng(7)
    for step in range(random_steps + steps):
        if step == random_steps:
            for mpc in (*cohort_mpcs, *singles):
                mpc.model_trained = True
        observations = [obs_rng.normal(size=O) for _ in seeds]
        together = cohort.act(observations)
        alone = [_act_alone(m, o) for m, o in zip(singles, observations, strict=True)]
        for s, (a, b) in enumerate(zip(together, alone, strict=True)):
            np.testing.assert_array_equal(a, b, err_msg=f"seed {seeds[s]} step {step}")
        for c, m in zip(cohort_mpcs, singles, strict=True):
            _assert_same_state(c, m)
    return cohort_mpcs, singles


def _assert_same_state(c: MPC, m: MPC) -> None:
    assert torch.equal(c.generator.get_state(), m.generator.get_state())
    assert c.rng.bit_generator.state == m.rng.bit_generator.state
    assert torch.equal(c.prev_sol, m.prev_sol)
    assert len(c.action_buffer) == len(m.action_buffer)
    for a, b in zip(c.action_buffer, m.action_buffer, strict=True):
        np.testing.assert_array_equal(a, b)
    assert c.num_planned_actions == m.num_planned_actions
    assert c.optimizer.num_evaluated == m.optimizer.num_evaluated
    elites = getattr(c.optimizer, "_elites", None)  # iCEM's kept elites
    if elites is not None:
        assert torch.equal(elites, m.optimizer._elites)
    log_c, log_m = c.pop_prediction_log(), m.pop_prediction_log()
    assert log_c.keys() == log_m.keys()
    for key in log_c:
        np.testing.assert_array_equal(log_c[key], log_m[key])


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize(("model_type", "prop"), MODEL_PROPS)
def test_cohort_equals_each_seed_alone(model_type, prop, opt):
    cohort, _ = _step_both(lambda s: _mpc(model_type, prop, opt, s), seeds=[3, 11])
    # the seeds really differ (a mix-up of models or observations would be caught)
    assert not torch.equal(cohort[0].prev_sol, cohort[1].prev_sol)


def test_seeds_stop_at_different_cem_iterations_and_draw_nothing_after():
    """CEM's eps stop is per seed: one seed ends its plan while the others go on; the
    generator states after each act (compared in _step_both) show it drew nothing more."""
    make = lambda s: _mpc("PE", "TSinf", "CEM-elite-eps", s, per=1)  # noqa: E731
    cohort, _ = _step_both(make, seeds=[1, 2, 5, 9], random_steps=0, steps=1)
    iters = [mpc.optimizer.num_iters for mpc in cohort]
    assert len(set(iters)) > 1 and max(iters) < 6, iters


def test_one_thread_runs_every_block_inline():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _step_both(lambda s: _mpc("PE", "TS1", "CEM", s), seeds=[0, 1])
    finally:
        torch.set_num_threads(old)


def test_one_seed_is_the_single_run_and_particles_are_logged():
    _step_both(lambda s: _mpc("PE", "TS1", "iCEM", s, log_particles=True), seeds=[4])


def test_goals_and_the_model_api_path_per_seed():
    """reacher: each seed its own goal; fast=False: the model's predict, not the fast layout."""
    _step_both(lambda s: _mpc("PE", "MM", "CEM", s, env="reacher", fast=False), seeds=[0, 1, 2],
               env="reacher")  # fmt: skip


def test_icem_elites_survive_across_plans_per_seed():
    """per = 1: every step plans, each seed shifting its own kept elites into the next plan."""
    cohort, _ = _step_both(lambda s: _mpc("DE", "TSinf", "iCEM", s, per=1), seeds=[6, 8],
                           random_steps=0, steps=4)  # fmt: skip
    assert not torch.equal(cohort[0].optimizer._elites, cohort[1].optimizer._elites)


def test_plan_time_is_the_joint_plans_share():
    mpcs = [_mpc("PE", "TSinf", "CEM", s, per=1) for s in (0, 1)]
    for mpc in mpcs:
        mpc.model_trained = True
    CohortMPC(mpcs).act([np.zeros(4), np.ones(4)])
    assert mpcs[0].plan_seconds == mpcs[1].plan_seconds > 0
    assert mpcs[0].num_planned_actions == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(H=4), "mpcs[1] differs from mpcs[0] in plan_hor: 4 vs 3"),
        (dict(per=1), "in per: 1 vs 2"),
        (dict(env="reacher"), "in env: reacher vs cartpole"),
        (dict(opt="MPPI"), "in optimizer: MPPICfg("),
        (dict(prop="TS1"), "in propagation:"),
        (dict(precision="bf16"), "in precision: bf16 vs fp32"),
    ],
)
def test_seeds_with_different_settings_are_refused(change, message):
    base = dict(model_type="PE", prop="TSinf", opt="CEM")
    second = _mpc(**{**base, **{k: v for k, v in change.items() if k in base}}, seed=1,
                  **{k: v for k, v in change.items() if k not in base})  # fmt: skip
    with pytest.raises(ValueError) as err:
        CohortMPC([_mpc(**base, seed=0), second])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_cohorts_and_observations_are_one_line():
    a, b = _mpc("PE", "TSinf", "CEM", 0), _mpc("PE", "TSinf", "CEM", 1)
    with pytest.raises(ValueError, match="needs at least one MPC"):
        CohortMPC([])
    with pytest.raises(ValueError, match=r"mpcs\[0\] and mpcs\[1\] share one model"):
        CohortMPC([a, a])
    cohort = CohortMPC([a, b])
    with pytest.raises(ValueError, match="got 3 observations for 2 seeds"):
        cohort.act([np.zeros(4)] * 3)
    with pytest.raises(ValueError, match=r"observations\[1\] has shape \(5,\), expected \(O=4,\)"):
        cohort.act([np.zeros(4), np.zeros(5)])
    graphed = [_mpc("PE", "TSinf", "CEM", s, graph=True) for s in (0, 1)]
    with pytest.raises(ValueError, match=r"graph=True .* one seed at a time"):
        CohortMPC(graphed)
    CohortMPC(graphed[:1])  # one seed: the single run, graphs allowed
