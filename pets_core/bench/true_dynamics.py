"""`python -m pets_core.bench true-dynamics --env ENV --run RUN_DIR [--episodes K,...]`: the run's
planner with the TRUE dynamics as its model, on the run's own episodes.

RUN_DIR's planner (config.yaml: CEM popsize / elites / iterations, horizon; the task's cost with the
episode's goal) plans with the simulator itself as the model: each candidate's rollout steps a copy
of the MuJoCo state (``mujoco.rollout``, ``frame_skip`` physics steps per action), deterministic, so
one particle (propagation E). Episode k starts where the run's episode k started (its reset replayed
from the run's seed, checked against logs.mat, as in ``bf16-agreement``) and runs the task horizon
in the real env. Each episode's return is reported next to the run's own return in that episode:
how far the learned model's plans are from what the same optimiser plans with a perfect model, on
the same goal. Only envs whose observation is the whole simulator state (up to the model input's
preprocessing) qualify: cartpole and reacher; the pusher's and half-cheetah's observations leave out
state the simulator needs. The last stdout line is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pets_core.bench.agreement import (
    CONFIG_YAML,
    LOGS_MAT,
    load_cem_run,
    make_planner,
    replayed_resets,
)
from pets_core.bench.cli import Parser, UsageError, int_at_least, int_list, run

PROG = "python -m pets_core.bench true-dynamics"


def _cartpole_state(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model-input features ``(M, 5)`` = [sin th, cos th, x, x_dot, th_dot] -> qpos, qvel, obs."""
    theta = np.arctan2(features[:, 0], features[:, 1])  # dynamics depend on th mod 2 pi only
    qpos = np.stack([features[:, 2], theta], axis=1)
    qvel = features[:, 3:5]
    return qpos, qvel, np.concatenate([qpos, qvel], axis=1)


def _reacher_state(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(M, 17)`` = [arm angles 7, goal 3 = qpos[7:10], arm velocities 7]; the goal never moves."""
    qvel = np.concatenate([features[:, 10:17], np.zeros((len(features), 3))], axis=1)
    return features[:, :10], qvel, features


STATES: dict[str, tuple[Callable, Callable]] = {
    # env -> (model-input features -> (qpos, qvel, obs), (qpos, qvel) -> obs), all (M, ..)
    "cartpole": (_cartpole_state, lambda qpos, qvel: np.concatenate([qpos, qvel], axis=1)),
    "reacher": (_reacher_state, lambda qpos, qvel: np.concatenate([qpos, qvel[:, :7]], axis=1)),
}


class SimulatorModel:
    """The env's own physics behind the models contract: a deterministic single "member"
    (model type D) predicting the task's target ``next obs - obs`` for ``[features, action]``."""

    model_type, ensemble_size, is_probabilistic = "D", 1, False

    def __init__(self, env_name: str, env) -> None:
        import mujoco
        from mujoco import rollout

        self.to_state, self.to_obs = STATES[env_name]
        self.model, self.frame_skip = env.unwrapped.model, env.unwrapped.frame_skip
        self.data = mujoco.MjData(self.model)
        spec = mujoco.mjtState
        self.spec = spec.mjSTATE_FULLPHYSICS
        self.nstate = mujoco.mj_stateSize(self.model, self.spec)
        self.qpos_at = mujoco.mj_stateSize(self.model, spec.mjSTATE_TIME)  # time comes first
        self.qvel_at = self.qpos_at + self.model.nq
        self.act_dim = self.model.nu
        self._rollout = rollout.rollout

    def step(self, x: np.ndarray) -> np.ndarray:
        """``x (M, F + A)`` float64 -> target ``(M, O)``: one env step of every row."""
        nq, nv = self.model.nq, self.model.nv
        features, action = x[:, : -self.act_dim], x[:, -self.act_dim :]
        qpos, qvel, obs = self.to_state(features)
        state = np.zeros((len(x), self.nstate))
        state[:, self.qpos_at : self.qpos_at + nq] = qpos
        state[:, self.qvel_at : self.qvel_at + nv] = qvel
        control = np.repeat(action[:, None, :], self.frame_skip, axis=1)  # (M, frame_skip, A)
        states, _ = self._rollout(self.model, self.data, state, control)
        last = states[:, -1]  # (M, nstate) after frame_skip physics steps
        next_qpos = last[:, self.qpos_at : self.qpos_at + nq]
        next_qvel = last[:, self.qvel_at : self.qvel_at + nv]
        return self.to_obs(next_qpos, next_qvel) - obs

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (1, M, I)
        mean = torch.from_numpy(self.step(x[0].double().cpu().numpy())).to(x)[None]
        return mean, torch.zeros_like(mean)

    def predict_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (M, I)
        mean = torch.from_numpy(self.step(x.double().cpu().numpy())).to(x)
        return mean, torch.zeros_like(mean)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--env", required=True, choices=list(STATES))
    p.add_argument("--run", required=True, type=Path, help="run directory (config.yaml, logs.mat)")
    p.add_argument("--episodes", type=int_list(0), help="logged episodes (default: the last)")
    p.add_argument("--threads", type=int_at_least(1), default=torch.get_num_threads())
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _main(argv or []))


def _load(run_dir: Path, env: str):
    """(config, logged observations ``(n, T+1, O)``, rewards ``(n, T)``); UsageError else."""
    import scipy.io

    cfg = load_cem_run(run_dir, env, "--run", (CONFIG_YAML, LOGS_MAT))
    logs = scipy.io.loadmat(run_dir / LOGS_MAT)
    return cfg, np.asarray(logs["observations"]), np.asarray(logs["rewards"])


def _main(argv: list[str]) -> int:
    args = _parse(argv)
    cfg, observations, rewards = _load(args.run, args.env)
    n_ep = observations.shape[0]
    episodes = args.episodes if args.episodes is not None else [n_ep - 1]
    if bad := [k for k in episodes if k >= n_ep]:
        raise UsageError(
            f"argument --episodes: episode {bad[0]} is not in {args.run / LOGS_MAT}; valid: "
            f"0..{n_ep - 1}"
        )
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = []
    for k, env, obs, goal in replayed_resets(cfg, observations, flag="--run"):
        if k > max(episodes):
            break
        if k not in episodes:
            continue
        t0 = time.perf_counter()
        result = true_dynamics_episode(cfg, env, obs, goal)
        result |= {
            "episode": k,
            "return_run": round(float(np.sum(rewards[k])), 4),
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        results.append(result)
        print(
            f"episode {k}: true dynamics {result['return_true_dynamics']:.2f}, the run "
            f"{result['return_run']:.2f}",
            file=sys.stderr,
            flush=True,
        )
    opt = cfg.ctrl_cfg.opt_cfg
    summary = {
        "env": args.env,
        "run": str(args.run),
        "episodes": results,
        "popsize": opt.cfg.popsize,
        "elites": opt.cfg.num_elites,
        "max_iters": opt.cfg.max_iters,
        "horizon": opt.plan_hor,
        "wall_s": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
        "device": f"cpu ({platform.machine()})",
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(summary))
    return 0


def true_dynamics_episode(cfg, env, obs: np.ndarray, goal) -> dict:
    """One task-horizon episode of ``env`` (just reset to ``obs``) planned by the run's CEM on the
    simulator: its return and executed actions."""
    from pets_core.planning import PropagationSpec

    model = SimulatorModel(cfg.env, env)
    mpc = make_planner(cfg, model, "fp32", propagation=PropagationSpec.for_model(model, "E", 1))
    mpc.reset(goal)
    actions, ret = [], 0.0
    for _ in range(cfg.exp_cfg.sim_cfg.task_hor):
        action = np.asarray(mpc.act(obs), dtype=np.float64)
        obs, reward, *_ = env.step(action)
        actions.append(action.tolist())
        ret += float(reward)
    return {"return_true_dynamics": round(ret, 4), "actions": actions}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
