"""`python -m pets_core.bench bf16-agreement --env ENV --model DIR --states N`: does the bf16
planner choose what the fp32 planner chooses, on a trained model?

DIR is a run directory: its model.pt, its config.yaml (the planner: CEM popsize / elites / iters,
horizon, particles, propagation) and its logs.mat (the states). N start states are taken evenly
spaced over all logged (episode, step) pairs; each episode's goal is the env's own, replayed by
resetting the env as the runner did (its seed, one reset per logged episode; the reset observation
must equal the logged one). From each state, with the same model, the same warm start (the
action-box mid-point) and the same sampling noise (one planner generator state, set on both):

* elites: the fp32 CEM runs as in ``MPC.act``; at each of its iterations the SAME candidate
  population is costed by both planners with the same propagation noise, and the two top-K sets are
  compared: ``elites_identical`` = fraction of iterations with the same K elites,
  ``elites_all_but_one`` = fraction sharing >= K - 1, ``elite_overlap_mean`` = mean shared / K;
* actions: each planner plans on its own (``MPC.act``; the bf16 CEM follows its own elites), and
  the first actions differ by ``action_gap_max`` / ``action_gap_mean`` (over states, of the largest
  per-dim ``|a_bf16 - a_fp32| / (high - low)``).

``--precision fp32`` compares fp32 with itself (exactly 1 and 0: the check of the measurement);
``--precision fp32 --backend bmm`` compares it with the same fp32 maths summed in another order
(torch.bmm instead of oneDNN): the floor that any other precision is measured against.
``--resample`` gives the compared planner its own sampling noise (same population in the elite
comparison, other propagation noise; other CEM samples when it plans alone): with ``--precision
fp32``, how far the planner's own Monte Carlo noise moves the elites and the action, the scale
that a precision's differences compare with.
The last stdout line is one JSON object. Bad input is one line naming the argument, exit 2.

The planner exposes no per-iteration elite hook: the elites are recomputed here from the costs the
two planners' public cost functions (``MPC.cost_fn``) give the population CEM samples.
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

from pets_core.bench.cli import Parser, UsageError, int_at_least, run
from pets_core.config import PRECISIONS

PROG = "python -m pets_core.bench bf16-agreement"
BACKENDS = ("auto", "onednn", "bmm")
MODEL_PT, CONFIG_YAML, LOGS_MAT = "model.pt", "config.yaml", "logs.mat"
RESAMPLED = 1_000_003  # --resample: state i's own noise is seeded seed + RESAMPLED + i


def _parse(argv: list[str]) -> argparse.Namespace:
    from pets_core.envs import ENV_NAMES

    pos, nonneg = int_at_least(1), int_at_least(0)
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--env", required=True, choices=ENV_NAMES)
    p.add_argument("--model", required=True, type=Path, help="run directory (model.pt, ...)")
    p.add_argument("--states", type=pos, default=20, help="start states from logs.mat")
    p.add_argument("--precision", default="bf16", choices=PRECISIONS, help="compared with fp32")
    p.add_argument(
        "--backend", default="auto", choices=BACKENDS,
        help="planner forward of the compared planner (the fp32 reference uses auto)",
    )  # fmt: skip
    p.add_argument("--threads", type=pos, default=torch.get_num_threads())
    p.add_argument("--seed", type=nonneg, default=0, help="planner noise of state i: seed + i")
    p.add_argument(
        "--resample", action="store_true",
        help="the compared planner draws its own sampling noise (the Monte Carlo scale)",
    )  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _main(argv or []))


def _main(argv: list[str]) -> int:
    args = _parse(argv)
    cfg, model, observations = _load_run(args.model, args.env)
    torch.set_num_threads(args.threads)
    states = start_states(cfg, observations, args.states)
    start = time.perf_counter()
    result = agreement(
        cfg, model, states, precision=args.precision, backend=args.backend, seed=args.seed,
        resample=args.resample,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    opt = cfg.ctrl_cfg.opt_cfg
    print(
        json.dumps(
            {
                "env": args.env,
                "model": str(args.model),
                "precision": args.precision,
                "backend": args.backend,
                "resample": args.resample,
                "vs": "fp32",
                **result,
                "popsize": opt.cfg.popsize,
                "elites": opt.cfg.num_elites,
                "max_iters": opt.cfg.max_iters,
                "horizon": opt.plan_hor,
                "particles": cfg.ctrl_cfg.prop_cfg.npart,
                "prop": cfg.ctrl_cfg.prop_cfg.mode,
                "hidden_dims": list(cfg.ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims),
                "ensemble_size": int(model.ensemble_size),
                "wall_s": round(time.perf_counter() - start, 1),
                "threads": torch.get_num_threads(),
                "device": f"cpu ({platform.machine()})",
                "loadavg": os.getloadavg(),
                "torch": torch.__version__,
            }
        )
    )
    return 0


def _load_run(run_dir: Path, env: str):
    """(config, model, logged observations ``(n, T+1, O)``) of a run directory; UsageError else."""
    import scipy.io

    from pets_core.models import load_model

    cfg = load_cem_run(run_dir, env, "--model", (MODEL_PT, CONFIG_YAML, LOGS_MAT))
    try:
        model = load_model(run_dir / MODEL_PT, "cpu")
    except (ValueError, OSError, RuntimeError) as err:
        raise UsageError(f"argument --model: unreadable {run_dir / MODEL_PT} ({err})") from None
    observations = np.asarray(scipy.io.loadmat(run_dir / LOGS_MAT)["observations"])
    return cfg, model, observations


def load_run_config(run_dir: Path, flag: str, files: tuple[str, ...]):
    """The config of a run directory that holds ``files``; else one UsageError naming ``flag``."""
    import yaml

    from pets_core import config as config_mod
    from pets_core.config import ConfigError

    missing = [n for n in files if not (run_dir / n).is_file()]
    if missing:
        raise UsageError(
            f"argument {flag}: {run_dir} lacks {', '.join(missing)}; valid: a run directory "
            f"with {', '.join(files[:-1])} and {files[-1]}"
        )
    try:
        return config_mod.from_yaml(run_dir / CONFIG_YAML)
    except (ConfigError, OSError, yaml.YAMLError) as err:
        raise UsageError(f"argument {flag}: unreadable {run_dir / CONFIG_YAML} ({err})") from None


def load_cem_run(run_dir: Path, env: str, flag: str, files: tuple[str, ...]):
    """The config of a CEM run directory that holds ``files`` and is a run of ``env``; else one
    UsageError naming ``flag`` (or --env) and what is valid."""
    from pets_core.config import CEMCfg

    cfg = load_run_config(run_dir, flag, files)
    if cfg.env != env:
        raise UsageError(
            f"argument --env: {env} does not match the run in {run_dir} (its {CONFIG_YAML} says "
            f"{cfg.env}); valid: --env {cfg.env}"
        )
    if not isinstance(cfg.ctrl_cfg.opt_cfg.cfg, CEMCfg):
        raise UsageError(
            f"argument {flag}: the run in {run_dir} plans with {cfg.ctrl_cfg.opt_cfg.mode}; "
            "valid: a CEM run"
        )
    return cfg


def start_states(cfg, observations: np.ndarray, n: int) -> list[tuple[np.ndarray, object]]:
    """``n`` (obs, goal) pairs evenly spaced over the logged (episode, step) pairs ``(n_ep, T)``,
    each episode's goal from its replayed reset (:func:`replayed_resets`)."""
    n_ep, T = observations.shape[0], observations.shape[1] - 1
    picks = np.unique(np.linspace(0, n_ep * T - 1, min(n, n_ep * T)).round().astype(int))
    goals = [goal for _, _, _, goal in replayed_resets(cfg, observations)]
    return [(observations[i // T, i % T], goals[i // T]) for i in picks]


def replayed_resets(cfg, observations: np.ndarray, flag: str = "--model", **env_kwargs):
    """Yield ``(k, env, obs, goal)`` for each logged episode k, the env (``make_env(cfg.env,
    **env_kwargs)``) just reset as the runner reset it: episode 0 from ``reset(seed=RunSeeds.env)``,
    then one reset per logged episode. The reset observation must equal the log's (UsageError
    naming ``flag`` otherwise)."""
    from pets_core.envs import make_env
    from pets_core.seeding import RunSeeds

    env = make_env(cfg.env, **env_kwargs)
    try:
        for k in range(observations.shape[0]):
            obs, _ = env.reset(seed=RunSeeds.from_seed(cfg.seed).env) if k == 0 else env.reset()
            if not np.allclose(obs, observations[k, 0], rtol=0, atol=1e-6):
                raise UsageError(
                    f"argument {flag}: logs.mat episode {k} does not start where the env's reset "
                    f"{k} (seed {cfg.seed}) does; valid: the logs.mat of the run that "
                    "config.yaml describes"
                )
            goal = getattr(env.unwrapped, "goal", None)
            yield k, env, obs, None if goal is None else np.array(goal, dtype=np.float64)
    finally:
        env.close()


def make_planner(cfg, model, precision: str, backend: str = "auto", propagation=None):
    """The run's MPC (CEM over the env's action box, its propagation unless ``propagation``
    says otherwise) in ``precision``, its model called through the planner forward ``backend``
    (planning.forward)."""
    from pets_core.envs import get_task, make_env
    from pets_core.planning import MPC, PropagationSpec, tile_bounds
    from pets_core.run.builders import make_optimizer

    env = make_env(cfg.env)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    opt, prop = cfg.ctrl_cfg.opt_cfg, cfg.ctrl_cfg.prop_cfg
    lower, upper = tile_bounds(low, high, opt.plan_hor, "cpu")
    mpc = MPC(
        model=model, task=get_task(cfg.env), optimizer=make_optimizer(opt.cfg, lower, upper),
        plan_hor=opt.plan_hor, per=1,
        propagation=propagation or PropagationSpec.from_prop_cfg(prop),
        action_low=low, action_high=high, device="cpu", seed=cfg.seed, precision=precision,
        fast=backend,
    )  # fmt: skip
    mpc.model_trained = True
    return mpc


def agreement(
    cfg,
    model,
    states: list[tuple[np.ndarray, object]],
    *,
    precision: str = "bf16",
    backend: str = "auto",
    seed: int = 0,
    resample: bool = False,
    other_model=None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """fp32 planning with ``model`` vs ``precision`` planning (through ``backend``) with
    ``other_model`` (default the same model) from each (obs, goal) of ``states``: the elite and
    action figures of the module docstring, plus the per-state lists. ``progress`` gets one line
    per state."""
    ref = make_planner(cfg, model, "fp32")
    other = make_planner(cfg, model if other_model is None else other_model, precision, backend)
    K = ref.optimizer.num_elites
    low, high = ref.action_low, ref.action_high
    overlaps: list[int] = []  # shared elites per CEM iteration, all states
    gaps: list[float] = []  # per state: max over dims of |a_other - a_ref| / (high - low)
    for i, (obs, goal) in enumerate(states):
        noise = torch.Generator().manual_seed(seed + i).get_state()
        own = torch.Generator().manual_seed(RESAMPLED + seed + i).get_state() if resample else None
        a_ref = _fp32_with_elites(ref, other, obs, goal, noise, overlaps, own)
        other.reset(goal)
        other.generator.set_state(noise if own is None else own)
        a_other = other.act(obs)
        gaps.append(float(np.max(np.abs(a_other - a_ref) / (high - low))))
        if progress is not None:
            shared = overlaps[len(overlaps) - ref.optimizer.num_iters :]
            progress(
                f"state {i + 1}/{len(states)}: elites shared per CEM iteration {shared} of {K}, "
                f"first-action gap {gaps[-1]:.2e} of the action range"
            )
    shared = np.asarray(overlaps)
    return {
        "states": len(states),
        "cem_iterations": len(overlaps),
        "elites_identical": float(np.mean(shared == K)),
        "elites_all_but_one": float(np.mean(shared >= K - 1)),
        "elite_overlap_mean": float(np.mean(shared / K)),
        "action_gap_max": max(gaps),
        "action_gap_mean": float(np.mean(gaps)),
        "action_gaps": [round(g, 6) for g in gaps],
        "elite_overlap_per_iteration": [int(s) for s in shared],
    }


def _fp32_with_elites(
    ref, other, obs, goal, noise, overlaps: list[int], other_noise=None
) -> np.ndarray:
    """``ref.act(obs)`` from planner state ``noise``, recording at each CEM iteration how many of
    its K elites ``other``'s costs of the same population share: with the same propagation noise,
    or with its own drawn from ``other_noise`` (a generator state) when given."""
    for mpc in (ref, other):
        mpc.reset(goal)
    ref.generator.set_state(noise)
    if other_noise is not None:
        other.generator.set_state(other_noise)
    obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
    ref_cost, other_cost = ref.cost_fn(obs_t), other.cost_fn(obs_t)
    K = ref.optimizer.num_elites

    def cost(samples: torch.Tensor) -> torch.Tensor:  # (N, H, A) -> (N,)
        if other_noise is None:
            other.generator.set_state(ref.generator.get_state())  # the noise ref draws next
        c_other, c_ref = other_cost(samples), ref_cost(samples)
        elites = [
            set(torch.topk(torch.nan_to_num(c, nan=torch.inf), K, largest=False).indices.tolist())
            for c in (c_ref, c_other)
        ]  # as CEMOptimizer ranks them
        overlaps.append(len(elites[0] & elites[1]))
        return c_ref

    solution = ref.optimizer.optimize(cost, ref.prev_sol, ref.init_var, ref.generator)  # (H, A)
    return solution[0].cpu().numpy().astype(np.float64)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
