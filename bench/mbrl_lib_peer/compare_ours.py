"""pets_core's half of the component comparison with mbrl-lib 0.2.0 (README.md here).

Runs in pets_core's venv and writes <dir>/ours.npz: transitions from pets_core's half-cheetah (the
MuJoCo state before every step, so the peer can replay each step from the same state), the task's
pre/post-processing and targets on them, holdout NLL / MSE of a PE model trained on them with the
paper's settings, and planner costs of fixed candidate sequences under that model.
compare_peer.py (peer venv) then does the same with mbrl-lib's code on the same arrays.

    python bench/mbrl_lib_peer/compare_ours.py --dir DIR
"""

import argparse
import pathlib

import numpy as np
import torch

from pets_core.config.propagation import PropagationSpec
from pets_core.envs.halfcheetah import HalfCheetahEnv
from pets_core.envs.tasks import get_task
from pets_core.models import ModelTrainer, make_model
from pets_core.models.loss import gaussian_nll, member_mse
from pets_core.planning.cem import CEMOptimizer
from pets_core.planning.rollout import predicted_costs

HIDDEN = [200, 200, 200, 200]
DECAYS = [2.5e-5, 5.0e-5, 7.5e-5, 7.5e-5, 1.0e-4]  # config/envs/halfcheetah.yaml
TRIAL = 1000
HORIZON, CANDIDATES, PARTICLES, PLANS = 30, 50, 5, 20


def rollout(env, actions: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """One trial of ``actions (T, A)``; the state before each step and the obs / reward after."""
    obs, _ = env.reset(seed=seed)
    qpos, qvel, observations, rewards = [], [], [obs], []
    for action in actions:
        qpos.append(env.unwrapped.data.qpos.copy())
        qvel.append(env.unwrapped.data.qvel.copy())
        obs, reward, *_ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
    return {
        "qpos": np.array(qpos),  # (T, 9)
        "qvel": np.array(qvel),  # (T, 9)
        "obs": np.array(observations),  # (T+1, 18)
        "actions": actions,  # (T, 6)
        "rewards": np.array(rewards),  # (T,)
    }


def gait(rng: np.random.Generator) -> np.ndarray:
    """A periodic open-loop gait (sinusoids, random phases): faster motion than random actions."""
    t = np.arange(TRIAL)[:, None]
    phase = rng.uniform(0, 2 * np.pi, size=6)
    return np.clip(np.sin(2 * np.pi * t / 12 + phase), -1, 1)


def transitions(trials: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obs = np.concatenate([t["obs"][:-1] for t in trials])
    nxt = np.concatenate([t["obs"][1:] for t in trials])
    act = np.concatenate([t["actions"] for t in trials])
    return obs, act, nxt


def holdout_scores(model, task, obs, act, nxt) -> dict[str, float]:
    """Members' mean NLL (the original's loss: no 1/2, no log 2 pi) and MSE in target space."""
    o, a, n = (torch.as_tensor(x, dtype=torch.float32) for x in (obs, act, nxt))
    x = torch.cat([task.obs_preproc(o), a], -1).expand(model.ensemble_size, -1, -1)
    y = task.targ_proc(o, n).expand(model.ensemble_size, -1, -1)
    with torch.no_grad():
        mean, logvar = model(x)
        return {
            "nll": float(gaussian_nll(mean, logvar, y).mean()),
            "mse": float(member_mse(mean, y).mean()),
            "mse_dim0": float((mean[..., 0] - y[..., 0]).square().mean()),
        }


def fit(task, inputs, targets, holdouts, seed: int, out: dict) -> torch.nn.Module:
    """Three training calls of 5 epochs (the model after 1, 2, 3 PETS iterations' training on this
    data); holdout scores after each go to ``out``; returns the trained model."""
    model = make_model(
        "PE", in_dim=24, out_dim=18, hidden_dims=HIDDEN, weight_decays=DECAYS, num_nets=5, seed=seed
    )
    trainer = ModelTrainer(model, learning_rate=1e-3)
    train_rng = np.random.default_rng(seed)
    for calls in (1, 2, 3):
        trainer.train(inputs, targets, epochs=5, batch_size=32, rng=train_rng)
        for name, data in holdouts.items():
            for key, value in holdout_scores(model, task, *data).items():
                out[f"fit_s{seed}_{5 * calls}ep_{name}_{key}"] = np.array(value)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=pathlib.Path)
    parser.add_argument("--train-trials", type=int, default=3)
    parser.add_argument("--fit-seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    task = get_task("halfcheetah")
    env = HalfCheetahEnv()
    rng = np.random.default_rng(32)
    train = [
        rollout(env, rng.uniform(-1, 1, size=(TRIAL, 6)), seed=100 + i)
        for i in range(args.train_trials)
    ]
    hold_random = rollout(env, rng.uniform(-1, 1, size=(TRIAL, 6)), seed=200)
    hold_gait = rollout(env, gait(rng), seed=201)
    out: dict[str, np.ndarray] = {}
    for name, trial in [("hold_random", hold_random), ("hold_gait", hold_gait)]:
        for key, value in trial.items():
            out[f"{name}_{key}"] = value
    for i, trial in enumerate(train):
        for key, value in trial.items():
            out[f"train{i}_{key}"] = value

    # pre/post-processing and targets on every holdout transition
    obs, act, nxt = transitions([hold_random, hold_gait])
    o, n = torch.as_tensor(obs), torch.as_tensor(nxt)
    out["preproc"] = task.obs_preproc(o).numpy()
    out["targets"] = task.targ_proc(o, n).numpy()
    pred = np.random.default_rng(7).normal(size=out["targets"].shape)
    out["postproc_pred"] = pred
    out["postproc"] = task.obs_postproc(o, torch.as_tensor(pred)).numpy()
    out["cost"] = (
        task.obs_cost(n, None) + task.ac_cost(torch.as_tensor(act))
    ).numpy()  # per-step cost = -reward

    # model fit: the paper's PE (5 x 4 x 200, lr 1e-3, per-layer decays, batch 32, 5 epochs a call)
    tr_obs, tr_act, tr_nxt = transitions(train)
    inputs = torch.cat([task.obs_preproc(torch.as_tensor(tr_obs)), torch.as_tensor(tr_act)], -1)
    targets = task.targ_proc(torch.as_tensor(tr_obs), torch.as_tensor(tr_nxt))
    holdouts = {"random": transitions([hold_random]), "gait": transitions([hold_gait])}
    for seed in args.fit_seeds:
        model = fit(task, inputs.numpy(), targets.numpy(), holdouts, seed, out)
        if seed == args.fit_seeds[0]:
            planner_model = model  # the planner comparison uses the first seed's 15-epoch model
    model = planner_model
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        out[f"model_w{i}"], out[f"model_b{i}"] = w.detach().numpy(), b.detach().numpy()
    out["model_max_logvar"] = model.max_logvar.detach().numpy().reshape(-1)
    out["model_min_logvar"] = model.min_logvar.detach().numpy().reshape(-1)
    out["model_in_mean"] = model.normalizer.mean.numpy()
    out["model_in_std"] = model.normalizer.std.numpy()

    # planner: costs of fixed candidates from two holdout states under the 15-epoch model
    cands = torch.as_tensor(
        np.random.default_rng(11).uniform(-1, 1, size=(CANDIDATES, HORIZON, 6)), dtype=torch.float32
    )
    out["plan_candidates"] = cands.numpy()
    states = np.stack([hold_random["obs"][500], hold_gait["obs"][500]])
    out["plan_states"] = states
    for ign_var, key in [(True, "mean"), (False, "sampled")]:
        spec = PropagationSpec("TSinf", PARTICLES, "PE", 5, ign_var=ign_var)
        repeats = 1 if ign_var else 40
        costs = np.stack(
            [
                np.stack(
                    [
                        predicted_costs(
                            model,
                            task,
                            torch.as_tensor(s, dtype=torch.float32),
                            cands,
                            spec=spec,
                            goal=None,
                            generator=torch.Generator().manual_seed(r),
                            fast=False,
                        ).numpy()
                        for r in range(repeats)
                    ]
                )
                for s in states
            ]
        )  # (states, repeats, N)
        out[f"plan_costs_{key}"] = costs
    # CEM: our optimiser from the same states (sampled TSinf costs); each plan scored by the
    # deterministic per-member mean rollout, which compare_peer.py shows equals mbrl-lib's
    lower, upper = -torch.ones(HORIZON, 6), torch.ones(HORIZON, 6)
    cem = CEMOptimizer(
        popsize=50, num_elites=5, max_iters=5, epsilon=0.001, alpha=0.1, lower=lower, upper=upper
    )
    sampled = PropagationSpec("TSinf", PARTICLES, "PE", 5)
    exact = PropagationSpec("TSinf", PARTICLES, "PE", 5, ign_var=True)
    plan_scores = []
    for s in states:
        obs = torch.as_tensor(s, dtype=torch.float32)
        gen = torch.Generator().manual_seed(5)
        plans = torch.stack(
            [
                cem.optimize(
                    lambda a, obs=obs, gen=gen: predicted_costs(
                        model, task, obs, a, spec=sampled, goal=None, generator=gen, fast=False
                    ),
                    torch.zeros(HORIZON, 6),
                    torch.full((HORIZON, 6), 0.25),
                    gen,
                )
                for _ in range(PLANS)
            ]
        )  # (PLANS, H, A)
        plan_scores.append(
            predicted_costs(
                model, task, obs, plans, spec=exact, goal=None, generator=gen, fast=False
            ).numpy()
        )
    out["cem_plan_costs"] = np.stack(plan_scores)  # (states, PLANS)
    np.savez(args.dir / "ours.npz", **out)
    print(f"wrote {args.dir / 'ours.npz'}")
    for key in sorted(k for k in out if k.startswith("fit_")):
        print(f"{key}: {float(out[key]):.4f}")
    print("cem plan cost (mean over plans, per state):", out["cem_plan_costs"].mean(1))


if __name__ == "__main__":
    main()
