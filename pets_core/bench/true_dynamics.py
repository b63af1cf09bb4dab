"""`python -m pets_core.bench true-dynamics --env ENV --run RUN_DIR [--episodes K,...]`: the run's
planner with the TRUE dynamics as its model, on the run's own episodes.

RUN_DIR's planner (config.yaml: CEM popsize / elites / iterations, horizon; the task's cost with the
episode's goal) plans with the simulator itself as the model: each candidate's rollout steps a copy
of the MuJoCo state (``mujoco.rollout``, ``frame_skip`` physics steps per action), deterministic, so
one particle (propagation E). The model carries every candidate's full simulator state along its
rollout, starting from the real env's state, so state the observation leaves out (the pusher
object's velocity) is exact too; each step checks that the planner's rows are the observations of
the states it carries. Episode k starts where the run's episode k started (its reset replayed from
the run's seed, checked against logs.mat, as in ``bf16-agreement``) and runs the task horizon in the
real env. Each episode's return is reported next to the run's own return in that episode: how far
the learned model's plans are from what the same optimiser plans with a perfect model, on the same
goal. Envs: those whose observation is a function of the simulator state (cartpole, reacher,
pusher); half-cheetah's first entry is a velocity over the previous step, outside the state. The
last stdout line is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
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


SIMULATED_ENVS = ("cartpole", "reacher", "pusher")
"""Envs whose observation is a function of the simulator state (see the module docstring)."""


class SimulatorModel:
    """The env's own physics behind the models contract: a deterministic single "member"
    (model type D) predicting the task's target (``next obs - obs``) for ``[features, action]``.

    ``anchor(env)`` before each ``mpc.act`` hands it the real env's state. A call whose rows are all
    that state's features starts every row from it (the first horizon step of a CEM iteration);
    any other call must continue the previous one row for row (the planner's rows under E with one
    particle keep their order), else it raises.
    """

    model_type, ensemble_size, is_probabilistic = "D", 1, False

    def __init__(self, env_name: str, env) -> None:
        import mujoco
        from mujoco import rollout

        from pets_core.envs import get_task, make_env

        if env_name not in SIMULATED_ENVS:
            raise ValueError(f"no simulator model for {env_name!r}; valid: {SIMULATED_ENVS}")
        self._mujoco = mujoco
        self.task = get_task(env_name)
        self.model, self.frame_skip = env.unwrapped.model, env.unwrapped.frame_skip
        self.data = mujoco.MjData(self.model)  # rollout's scratch
        self._view = make_env(env_name).unwrapped  # its _get_obs() reads the states we set
        self.spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self.nstate = mujoco.mj_stateSize(self.model, self.spec)
        self.act_dim = self.model.nu
        self._rollout = rollout.rollout
        # the anchored env: features (F,), obs (O,), state (S,); the last call's next rows:
        # features (M, F), obs (M, O), states (M, S)
        self._start: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._carried: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def anchor(self, env) -> None:
        """Start the next rollouts from ``env``'s current simulator state and observation."""
        obs = np.array(env.unwrapped._get_obs(), dtype=np.float64)
        self._start = (self._features(obs[None])[0], obs, self._state_of(env.unwrapped.data))
        self._carried = None

    def step(self, x: np.ndarray) -> np.ndarray:
        """``x (M, F + A)`` float64 -> target ``(M, O)``: one env step of every row."""
        features, action = x[:, : -self.act_dim], x[:, -self.act_dim :]
        obs, state = self._rows(features)  # (M, O), (M, S)
        control = np.repeat(action[:, None, :], self.frame_skip, axis=1)  # (M, frame_skip, A)
        states, _ = self._rollout(self.model, self.data, state, control)  # (M, frame_skip, S)
        before_last = states[:, -2] if self.frame_skip > 1 else state
        next_obs = self._obs(states[:, -1], before_last)
        self._carried = (self._features(next_obs), next_obs, states[:, -1])
        return self.task.targ_proc(torch.from_numpy(obs), torch.from_numpy(next_obs)).numpy()

    def _rows(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The observations ``(M, O)`` and simulator states ``(M, S)`` the rows stand for."""

        def rows_are(expected: np.ndarray) -> bool:  # float32 rows of float64 features
            return expected.shape[-1] == features.shape[1] and np.allclose(
                features, expected, rtol=1e-4, atol=1e-4
            )

        m = len(features)
        if self._start is not None and rows_are(self._start[0][None]):
            _, obs, state = self._start
            return np.repeat(obs[None], m, axis=0), np.repeat(state[None], m, axis=0)
        if self._carried is not None and len(self._carried[0]) == m:
            if rows_are(self._carried[0]):
                return self._carried[1], self._carried[2]
        raise RuntimeError(
            "the simulator model's rows neither start at the anchored env state nor continue its "
            "previous call row for row (anchor(env) before planning; propagation E, one particle)"
        )

    def _state_of(self, data) -> np.ndarray:  # (S,)
        state = np.empty(self.nstate)
        self._mujoco.mj_getState(self.model, data, state, self.spec)
        return state

    def _obs(self, states: np.ndarray, before_last: np.ndarray) -> np.ndarray:  # (M, S) -> (M, O)
        """The env's observation after a step ending in ``states``: joint positions and velocities
        of the new state, body positions (pusher's tip and object) from the forward pass of
        ``before_last``, the state before the last physics step, as ``mj_step`` leaves them."""
        mj, view = self._mujoco, self._view
        rows = []
        for state, before in zip(states, before_last, strict=True):
            mj.mj_setState(view.model, view.data, before, self.spec)
            mj.mj_kinematics(view.model, view.data)  # body positions
            mj.mj_comPos(view.model, view.data)  # subtree centres of mass
            mj.mj_setState(view.model, view.data, state, self.spec)  # qpos, qvel only
            rows.append(view._get_obs())
        return np.asarray(rows, dtype=np.float64)

    def _features(self, obs: np.ndarray) -> np.ndarray:  # (M, O) -> (M, F)
        return self.task.obs_preproc(torch.from_numpy(obs)).numpy()

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (1, M, I)
        mean = torch.from_numpy(self.step(x[0].double().cpu().numpy())).to(x)[None]
        return mean, torch.zeros_like(mean)

    def predict_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (M, I)
        mean = torch.from_numpy(self.step(x.double().cpu().numpy())).to(x)
        return mean, torch.zeros_like(mean)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--env", required=True, choices=SIMULATED_ENVS)
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
        model.anchor(env)
        action = np.asarray(mpc.act(obs), dtype=np.float64)
        obs, reward, *_ = env.step(action)
        actions.append(action.tolist())
        ret += float(reward)
    return {"return_true_dynamics": round(ret, 4), "actions": actions}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
