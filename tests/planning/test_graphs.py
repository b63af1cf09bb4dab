"""The captured (CUDA-graph) paths of pets_core.graphs against the eager planner and trainer.

On CPU ``graph=True`` runs the very static-buffer function that CUDA captures (fixed buffers,
inputs copied in, the same draws), so these tests check everything but the capture itself: the
costs, the random stream consumed, re-use across calls, and re-building after the weights change.
The ``gpu`` cases (skipped without CUDA) check the captured graph's replay against the eager path
on the same device and against the CPU path.
"""

import numpy as np
import pytest
import torch
from support.devices import DEVICES
from support.fakes import small_model

from pets_core.envs.tasks import get_task
from pets_core.models.ensemble import make_model
from pets_core.planning import MPC, CEMOptimizer, PropagationSpec, predicted_costs, tile_bounds
from pets_core.planning.icem import ICEMOptimizer
from pets_core.planning.rollout import _GRAPHS


def _graphs(model) -> list:
    """The captured rollouts kept for ``model``'s current weights, oldest first."""
    return list(_GRAPHS[model][1].values())


def _costs(model, task, obs, seqs, prop, P, graph, gen, fast="auto", goal=None):
    return predicted_costs(
        model,
        task,
        obs,
        seqs,
        spec=PropagationSpec.for_model(model, prop, P),
        goal=goal,
        generator=gen,
        fast=fast,
        graph=graph,
    )


def _inputs(task, N=6, H=5, device="cpu"):
    obs = 0.1 * torch.randn(task.obs_dim, generator=torch.Generator().manual_seed(1))
    seqs = torch.rand(N, H, task.act_dim, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return obs.to(device), seqs.to(device)


@pytest.mark.parametrize(
    ("model_type", "prop", "P"),
    [("PE", "TSinf", 20), ("PE", "TS1", 10), ("PE", "DS", 10), ("PE", "MM", 10), ("DE", "E", 1)],
)
@pytest.mark.parametrize("fast", ["auto", "bmm"])
def test_static_rollout_equals_the_eager_planner(model_type, prop, P, fast):
    task = get_task("halfcheetah")
    model = small_model(model_type, task)
    obs, seqs = _inputs(task, N=40)  # N >= 8 lanes: the eager path splits candidates in blocks
    gens = [torch.Generator().manual_seed(7) for _ in range(2)]
    eager = _costs(model, task, obs, seqs, prop, P, False, gens[0], fast)
    graphed = _costs(model, task, obs, seqs, prop, P, True, gens[1], fast)
    torch.testing.assert_close(graphed, eager, rtol=1e-6, atol=1e-6)
    # both consumed the same random numbers: the streams are at the same place afterwards
    assert torch.equal(gens[0].get_state(), gens[1].get_state())


def test_static_rollout_is_reused_and_sees_new_inputs_each_call():
    task = get_task("reacher")  # a goal: the static goal buffer must follow the caller's
    model = small_model("PE", task)
    obs, seqs = _inputs(task)
    goals = [torch.tensor([0.1, -0.2, 0.3]), torch.tensor([-0.3, 0.0, 0.2])]
    gen_e, gen_g = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    first = None
    for i, goal in enumerate(goals * 2):
        o, s = obs + 0.01 * i, seqs.flip(0) if i % 2 else seqs
        eager = _costs(model, task, o, s, "TSinf", 10, False, gen_e, goal=goal)
        graphed = _costs(model, task, o, s, "TSinf", 10, True, gen_g, goal=goal)
        torch.testing.assert_close(graphed, eager, rtol=1e-6, atol=1e-6)
        if first is None:
            (first,) = _graphs(model)
        assert _graphs(model) == [first]  # one static rollout for all four calls
    assert not first.captured  # nothing to capture on CPU


def test_static_rollout_is_rebuilt_after_training_and_for_new_shapes():
    task = get_task("cartpole")
    model = small_model("PE", task)
    obs, seqs = _inputs(task)
    _costs(model, task, obs, seqs, "TSinf", 10, True, torch.Generator().manual_seed(0))
    (before,) = _graphs(model)
    with torch.no_grad():  # what a train() step does to the weights
        model.weights[0].add_(0.05)
    eager = _costs(model, task, obs, seqs, "TSinf", 10, False, torch.Generator().manual_seed(0))
    graphed = _costs(model, task, obs, seqs, "TSinf", 10, True, torch.Generator().manual_seed(0))
    (rebuilt,) = _graphs(model)  # new weights: the old rollout is dropped, a new one made
    assert rebuilt is not before
    torch.testing.assert_close(graphed, eager, rtol=1e-6, atol=1e-6)
    _costs(model, task, obs, seqs[:3], "TSinf", 10, True, torch.Generator().manual_seed(0))
    assert _graphs(model)[0] is rebuilt and len(_graphs(model)) == 2  # another N: another one
    old = torch.get_float32_matmul_precision()
    try:  # TF32 or not is baked into captured matmuls: another fp32 matmul mode, another graph
        torch.set_float32_matmul_precision("high" if old == "highest" else "highest")
        _costs(model, task, obs, seqs[:3], "TSinf", 10, True, torch.Generator().manual_seed(0))
        assert len(_graphs(model)) == 3
    finally:
        torch.set_float32_matmul_precision(old)


def test_shrinking_populations_keep_one_rollout_per_size():
    """iCEM samples fewer candidates at each CEM iteration (N_i = popsize * decay^-i): each size
    keeps its rollout, so later actions capture nothing new; the actions are eager's."""
    task = get_task("cartpole")
    model = small_model("PE", task)
    low, high = -np.ones(task.act_dim), np.ones(task.act_dim)
    obs = np.array([0.0, 0.1, -0.05, 0.02])
    mpcs = []
    for graph in (False, True):
        lower, upper = tile_bounds(low, high, 5, "cpu")
        icem = ICEMOptimizer(
            popsize=40, num_elites=4, max_iters=3, alpha=0.1, noise_beta=2.0, pop_decay=1.5,
            keep_elites_frac=0.3, lower=lower, upper=upper,
        )  # fmt: skip
        mpc = MPC(
            model=model, task=task, optimizer=icem, plan_hor=5, per=1,
            propagation=PropagationSpec.for_model(model, "TSinf", 10), action_low=low,
            action_high=high, device="cpu", seed=4, graph=graph,
        )  # fmt: skip
        mpc.model_trained = True
        mpcs.append(mpc)
    eager, graphed = mpcs
    sizes = []
    for step in range(4):
        a_e, a_g = eager.act(obs + 0.01 * step), graphed.act(obs + 0.01 * step)
        np.testing.assert_allclose(a_g, a_e, rtol=1e-5, atol=1e-6)
        sizes.append(sorted(key[3][0] for key in _GRAPHS[model][1]))
    # the first action: three sizes from 40 down (kept elites included); from the second on
    # the first iteration also carries the last action's kept elites: one more size at most,
    # then nothing new to capture
    assert len(sizes[0]) == 3 and sizes[0][-1] == 40
    assert set(sizes[0]) <= set(sizes[1]) and len(sizes[1]) <= 4
    assert sizes[1] == sizes[2] == sizes[3]


def test_graph_needs_the_fast_layout():
    task = get_task("cartpole")
    model = small_model("PE", task)
    obs, seqs = _inputs(task)
    with pytest.raises(ValueError, match="fast planner forward"):
        _costs(model, task, obs, seqs, "TSinf", 10, True, torch.Generator(), fast=False)


def _mpc(model, task, graph, device="cpu", H=6):
    low, high = -np.ones(task.act_dim), np.ones(task.act_dim)
    lower, upper = tile_bounds(low, high, H, device)
    cem = CEMOptimizer(
        popsize=30, num_elites=5, max_iters=3, epsilon=1e-3, alpha=0.1, lower=lower, upper=upper
    )
    mpc = MPC(
        model=model, task=task, optimizer=cem, plan_hor=H, per=1,
        propagation=PropagationSpec.for_model(model, "TSinf", 10), action_low=low,
        action_high=high, device=device, seed=4, graph=graph,
    )  # fmt: skip
    mpc.model_trained = True
    return mpc


@pytest.mark.parametrize("device", DEVICES)
def test_mpc_with_graph_plans_the_same_actions(device):
    task = get_task("cartpole")
    model = small_model("PE", task, device=device)
    obs = np.array([0.0, 0.1, -0.05, 0.02])
    eager, graphed = _mpc(model, task, False, device), _mpc(model, task, True, device)
    for step in range(4):  # warm-started CEM: each plan builds on the last
        a_e, a_g = eager.act(obs + 0.01 * step), graphed.act(obs + 0.01 * step)
        np.testing.assert_allclose(a_g, a_e, rtol=1e-5, atol=1e-6)
    assert [g.captured for g in _graphs(model)] == [device == "cuda"]


@pytest.mark.gpu
def test_cuda_graph_equals_the_cpu_planner():
    task = get_task("halfcheetah")
    cpu_model = small_model("PE", task)
    cuda_model = small_model("PE", task, device="cuda")
    cuda_model.load_state_dict(cpu_model.state_dict())
    obs, seqs = _inputs(task, N=40)
    draws_gen = torch.Generator(device="cuda").manual_seed(5)
    graphed = _costs(cuda_model, task, obs.cuda(), seqs.cuda(), "TSinf", 20, True, draws_gen)
    eager = _costs(
        cuda_model, task, obs.cuda(), seqs.cuda(), "TSinf", 20, False,
        torch.Generator(device="cuda").manual_seed(5),
    )  # fmt: skip
    assert all(g.captured for g in _graphs(cuda_model))
    torch.testing.assert_close(graphed, eager, rtol=1e-6, atol=1e-6)  # same kernels replayed
    # the CPU planner on the same model: float tolerance (different kernels); the eps draws
    # differ between devices, so compare the mean (no sampling) path
    spec = PropagationSpec.for_model(cpu_model, "TSinf", 20, ign_var=True)
    cpu = predicted_costs(
        cpu_model, task, obs, seqs, spec=spec, goal=None, generator=torch.Generator(), graph=True
    )
    gpu = predicted_costs(
        cuda_model, task, obs.cuda(), seqs.cuda(), spec=spec, goal=None,
        generator=torch.Generator(device="cuda"), graph=True,
    )  # fmt: skip
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- the trainer's graphed step


def _trained(graph, device="cpu", model_type="PE", N=150):
    from pets_core.models import ModelTrainer

    data = np.random.default_rng(1)
    inputs, targets = data.normal(size=(N, 6)), data.normal(size=(N, 4))
    model = make_model(
        model_type, in_dim=6, out_dim=4, hidden_dims=[16, 16], weight_decays=[1e-4, 1e-4, 1e-4],
        num_nets=5, device=device, seed=3,
    )  # fmt: skip
    trainer = ModelTrainer(model, 1e-3, graph=graph)
    rng = np.random.default_rng(0)
    for _ in range(2):  # two train() calls: the graph must see Adam's in-place updates
        trainer.train(inputs, targets, epochs=2, batch_size=32, rng=rng)
    return model, trainer


@pytest.mark.parametrize("model_type", ["PE", "DE"])
def test_graphed_training_step_gives_the_eager_weights(model_type):
    eager, _ = _trained(False, model_type=model_type)
    graphed, trainer = _trained(True, model_type=model_type)
    assert set(trainer._graphs) == {32}  # full batches only (N = 150: the last batch is short)
    assert not trainer._graphs[32].captured
    for a, b in zip(eager.state_dict().values(), graphed.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the same ops on the same inputs: bit-identical on CPU


@pytest.mark.gpu
def test_cuda_graphed_training_step_equals_eager():
    eager, _ = _trained(False, device="cuda")
    graphed, trainer = _trained(True, device="cuda")
    assert trainer._graphs[32].captured
    for a, b in zip(eager.state_dict().values(), graphed.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    cpu, _ = _trained(False)  # the CPU path: float tolerance (other kernels)
    for a, b in zip(cpu.state_dict().values(), graphed.state_dict().values(), strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-4)
