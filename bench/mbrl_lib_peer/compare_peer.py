"""mbrl-lib 0.2.0's half of the component comparison (README.md here); runs in the peer's venv.

Reads <dir>/ours.npz (compare_ours.py) and prints, component by component, how mbrl-lib's code
does on the same arrays: its env replaying each step from the same MuJoCo state, its
pre/post-processing and training targets, its model fit (holdout NLL / MSE) on the same
transitions, and its planner's costs of the same candidates under pets_core's trained weights.
Writes <dir>/peer.json with every number printed.

    python bench/mbrl_lib_peer/compare_peer.py --dir DIR
"""

import argparse
import json
import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from run_pets import REDUCED_SETTINGS, peer_config

PLANS = 20  # CEM plans per state (compare_ours.py: the same)

# mbrl-lib's own pets_halfcheetah defaults, for the "their defaults" model fit
DEFAULTS = [
    "overrides=pets_halfcheetah",
    "device=cpu",
    "+dynamics_model._recursive_=false",
    "+algorithm.agent._recursive_=false",
]


def trial(data, name: str) -> dict[str, np.ndarray]:
    keys = ("qpos", "qvel", "obs", "actions", "rewards")
    return {k: data[f"{name}_{k}"] for k in keys}


def env_check(data, names: list[str]) -> dict[str, float]:
    """One step of mbrl-lib's env from each of our pre-step states; and a full open-loop replay."""
    from mbrl.env.pets_halfcheetah import HalfCheetahEnv

    env = HalfCheetahEnv()
    env.reset(seed=0)
    res = {
        "action_low": env.action_space.low.tolist(),
        "action_high": env.action_space.high.tolist(),
        "dt": env.dt,
    }
    obs_err, rew_err, replay_err, replay_ret = 0.0, 0.0, [], []
    for name in names:
        t = trial(data, name)
        for i in range(len(t["actions"])):
            env.set_state(t["qpos"][i], t["qvel"][i])
            obs, rew, *_ = env.step(t["actions"][i])
            obs_err = max(obs_err, float(np.abs(obs - t["obs"][i + 1]).max()))
            rew_err = max(rew_err, abs(float(rew) - float(t["rewards"][i])))
        env.set_state(t["qpos"][0], t["qvel"][0])
        env.prev_qpos = env.data.qpos.copy()
        ret, err = 0.0, 0.0
        for i, action in enumerate(t["actions"]):
            obs, rew, *_ = env.step(action)
            ret += float(rew)
            err = max(err, float(np.abs(obs - t["obs"][i + 1]).max()))
        replay_err.append(err)
        replay_ret.append((ret, float(t["rewards"].sum())))
    res.update(
        one_step_max_obs_diff=obs_err,
        one_step_max_reward_diff=rew_err,
        open_loop_max_obs_diff=replay_err,
        open_loop_returns_theirs_ours=replay_ret,
    )
    return res


def processing_check(data, dyn) -> dict[str, float]:
    """Their obs_process_fn, training targets, post-processing and reward on our arrays."""
    import mbrl.env.reward_fns as reward_fns
    from mbrl.env.pets_halfcheetah import HalfCheetahEnv
    from mbrl.types import TransitionBatch

    obs = np.concatenate([data["hold_random_obs"][:-1], data["hold_gait_obs"][:-1]])
    nxt = np.concatenate([data["hold_random_obs"][1:], data["hold_gait_obs"][1:]])
    act = np.concatenate([data["hold_random_actions"], data["hold_gait_actions"]])
    pre = HalfCheetahEnv.preprocess_fn(obs)
    batch = TransitionBatch(obs, act, nxt, np.zeros(len(obs)), None, None)
    _, target = dyn._process_batch(batch)
    # post-processing: the wrapper's sample() with the inner model answering our fixed "pred"
    pred = torch.as_tensor(data["postproc_pred"], dtype=torch.float32)
    inner = dyn.model
    saved = inner.sample_1d
    inner.sample_1d = lambda model_in, state, **kw: (pred, state)
    try:
        state = {"obs": torch.as_tensor(obs, dtype=torch.float32), "propagation_indices": None}
        post, *_ = dyn.sample(torch.as_tensor(act, dtype=torch.float32), state, deterministic=True)
    finally:
        inner.sample_1d = saved
    reward = reward_fns.halfcheetah(torch.as_tensor(act), torch.as_tensor(nxt)).view(-1).numpy()
    return {
        "preproc_max_diff": float(np.abs(pre - data["preproc"]).max()),
        "target_max_diff": float(np.abs(target.numpy() - data["targets"]).max()),
        "postproc_max_diff": float(np.abs(post.numpy() - data["postproc"]).max()),
        "reward_plus_cost_max": float(np.abs(reward + data["cost"]).max()),
    }


def holdout_scores(dyn, obs, act, nxt) -> dict[str, float]:
    """Members' mean NLL (no 1/2, no log 2 pi: the original's loss) and MSE in target space."""
    from mbrl.types import TransitionBatch

    model_in, target = dyn._process_batch(TransitionBatch(obs, act, nxt, None, None, None))
    with torch.no_grad():
        mean, logvar = dyn.model.forward(model_in, use_propagation=False)  # (E, M, T)
    err = (mean - target).square()
    return {
        "nll": float((err * (-logvar).exp() + logvar).mean()),
        "mse": float(err.mean()),
        "mse_dim0": float(err[..., 0].mean()),
    }


def fit_check(data, overrides: list[str], seed: int, calls: int = 3) -> dict[str, float]:
    """Their trainer (train_model_and_save_model_and_data, as pets.train calls it) on our data."""
    import mbrl.models
    import mbrl.util.common as common

    cfg = peer_config([*overrides, f"seed={seed}"])
    np.random.seed(seed)  # noqa: NPY002 (mbrl-lib's code draws from the global RNG)
    torch.manual_seed(seed)
    dyn = common.create_one_dim_tr_model(cfg, (18,), (6,))
    rng = np.random.default_rng(seed)
    buf = common.create_replay_buffer(
        cfg, (18,), (6,), rng=rng, obs_type=np.double, action_type=np.double, reward_type=np.double
    )
    i = 0
    while f"train{i}_obs" in data:
        t = trial(data, f"train{i}")
        for k in range(len(t["actions"])):
            buf.add(t["obs"][k], t["actions"][k], t["obs"][k + 1], t["rewards"][k], False, False)
        i += 1
    trainer = mbrl.models.ModelTrainer(
        dyn, optim_lr=cfg.overrides.model_lr, weight_decay=cfg.overrides.model_wd
    )
    res = {
        "epochs_per_call": int(cfg.overrides.num_epochs_train_model),
        "lr": float(cfg.overrides.model_lr),
        "wd": float(cfg.overrides.model_wd),
        "ensemble_size": int(cfg.dynamics_model.ensemble_size),
    }
    for call in range(1, calls + 1):
        common.train_model_and_save_model_and_data(dyn, trainer, cfg.overrides, buf)
        for name in ("random", "gait"):
            t = trial(data, f"hold_{name}")
            scores = holdout_scores(dyn, t["obs"][:-1], t["actions"], t["obs"][1:])
            for key, value in scores.items():
                res[f"s{seed}_call{call}_{name}_{key}"] = value
    return res, dyn


def load_ours(dyn, data) -> None:
    """pets_core's trained weights, logvar bounds and input normaliser into their GaussianMLP."""
    model = dyn.model
    layers = [*(seq[0] for seq in model.hidden_layers), model.mean_and_logvar]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            layer.weight.copy_(torch.as_tensor(data[f"model_w{i}"]))
            layer.bias.copy_(torch.as_tensor(data[f"model_b{i}"]))
        model.max_logvar.copy_(torch.as_tensor(data["model_max_logvar"]).view(1, -1))
        model.min_logvar.copy_(torch.as_tensor(data["model_min_logvar"]).view(1, -1))
        norm = dyn.input_normalizer
        norm.mean = torch.as_tensor(data["model_in_mean"], dtype=norm.mean.dtype).view(1, -1)
        norm.std = torch.as_tensor(data["model_in_std"], dtype=norm.std.dtype).view(1, -1)


def mean_costs(model_env, state, cands, P: int) -> np.ndarray:
    """-(return) of each candidate, particle p of every candidate following member p's mean (our
    TSinf with P = E and ign_var), through their ModelEnv.step(sample=False)."""
    N, H, _ = cands.shape
    batch = np.tile(state, (N * P, 1)).astype(np.float32)
    model_state = model_env.reset(batch, return_as_np=False)
    rows = torch.arange(N * P).view(N, P)
    model_state["propagation_indices"] = rows.T.reshape(-1)  # member m <- rows with p == m
    total = torch.zeros(N * P, 1)
    for h in range(H):
        acts = torch.repeat_interleave(cands[:, h], P, dim=0)
        _, rew, _, model_state = model_env.step(acts, model_state, sample=False)
        total += rew
    return (-total.view(N, P).mean(1)).numpy()


def planner_check(data) -> dict[str, float]:
    """Costs of our candidates from our states under our weights, through their ModelEnv."""
    import mbrl.env.reward_fns as reward_fns
    import mbrl.env.termination_fns as term_fns
    import mbrl.models
    import mbrl.planning
    import mbrl.util.common as common
    from mbrl.env.pets_halfcheetah import HalfCheetahEnv

    cfg = peer_config([*REDUCED_SETTINGS, "seed=1"])
    dyn = common.create_one_dim_tr_model(cfg, (18,), (6,))
    load_ours(dyn, data)
    env = HalfCheetahEnv()
    gen = torch.Generator().manual_seed(0)
    model_env = mbrl.models.ModelEnv(
        env, dyn, term_fns.no_termination, reward_fns.halfcheetah, generator=gen
    )
    cands = torch.as_tensor(data["plan_candidates"])
    H, P = cands.shape[1], 5
    res = {}
    for s, state in enumerate(data["plan_states"]):
        theirs = mean_costs(model_env, state, cands, P)
        ours = data["plan_costs_mean"][s, 0]
        res[f"state{s}_mean_cost_max_abs_diff"] = float(np.abs(theirs - ours).max())
        res[f"state{s}_mean_cost_range"] = [float(ours.min()), float(ours.max())]
        # sampled: their evaluate_action_sequences (fixed_model, random member per particle)
        sampled = np.stack(
            [
                -model_env.evaluate_action_sequences(cands, state, num_particles=P).view(-1).numpy()
                for _ in range(40)
            ]
        )  # (repeats, N)
        ours_s = data["plan_costs_sampled"][s]  # (repeats, N)
        res[f"state{s}_sampled_mean_theirs_minus_ours"] = float(
            (sampled.mean(0) - ours_s.mean(0)).mean()
        )
        res[f"state{s}_sampled_sd_theirs"] = float(sampled.std(0).mean())
        res[f"state{s}_sampled_sd_ours"] = float(ours_s.std(0).mean())
        res[f"state{s}_sampled_mean_corr"] = float(
            np.corrcoef(sampled.mean(0), ours_s.mean(0))[0, 1]
        )
        # CEM: their optimiser on their sampled costs, plans scored by the deterministic rollout
        cem = mbrl.planning.CEMOptimizer(
            num_iterations=5,
            elite_ratio=0.1,
            population_size=50,
            lower_bound=-np.ones((H, 6)),
            upper_bound=np.ones((H, 6)),
            alpha=0.1,
            device="cpu",
            return_mean_elites=True,
        )
        plans = torch.stack(
            [
                cem.optimize(
                    lambda a, state=state: model_env.evaluate_action_sequences(
                        a, state, num_particles=P
                    ),
                    x0=torch.zeros(H, 6),
                )
                for _ in range(PLANS)
            ]
        )
        theirs_plans = mean_costs(model_env, state, plans, P)
        res[f"state{s}_cem_plan_cost_theirs"] = float(theirs_plans.mean())
        res[f"state{s}_cem_plan_cost_theirs_sd"] = float(theirs_plans.std())
        res[f"state{s}_cem_plan_cost_ours"] = float(data["cem_plan_costs"][s].mean())
        res[f"state{s}_cem_plan_cost_ours_sd"] = float(data["cem_plan_costs"][s].std())
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=pathlib.Path)
    parser.add_argument("--fit-seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = dict(np.load(args.dir / "ours.npz"))
    names = [
        "hold_random",
        "hold_gait",
        *(k[:-4] for k in data if k.startswith("train") and k.endswith("_obs")),
    ]
    report = {"env": env_check(data, names)}
    print("env", json.dumps(report["env"]), flush=True)
    for name, overrides in [("fit_aligned", REDUCED_SETTINGS), ("fit_defaults", DEFAULTS)]:
        report[name] = {}
        for seed in args.fit_seeds:
            scores, dyn = fit_check(data, overrides, seed)
            report[name].update(scores)
            if "processing" not in report:
                report["processing"] = processing_check(data, dyn)
                print("processing", json.dumps(report["processing"]), flush=True)
        print(name, json.dumps(report[name]), flush=True)
    report["planner"] = planner_check(data)
    print("planner", json.dumps(report["planner"]), flush=True)
    (args.dir / "peer.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
