"""`python -m pets_core.bench plan-cohort`: planning seconds per seed-action for cohorts of S seeds.

For each env (cartpole and halfcheetah unless ``--envs`` says otherwise) it builds max(S) seeds'
controllers from the env's paper config (config/pets/default.yaml + config/envs/ENV.yaml,
PE-TSinf-CEM: 20 particles, 5 CEM iterations, the env's population and horizon), each seed's model
and MPC through ``run.builders`` exactly as a run does, at that seed's own env reset observation and
goal. One warm-up plan per seed, then for each S one ``CohortMPC(first S seeds).act`` per repeat
(per = 1: every act plans). ``s_per_seed_action`` is the act's wall time over S (median over
repeats).

Next to each S, in the same process and threads (pinned by ``--threads``, default 1), the best fp32
rate of the planner's layer shapes ``(E, rows, in) x (E, in, out)`` (pets_core.bench.matmul; the
best of its kernels, measured before and after that S's acts) gives ``fraction_of_matmul``: the
model GFLOP/s the cohort achieved (every seed's matmul FLOPs over the iterations it ran, over the
wall time) over that rate. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np
import torch

from pets_core.bench.cli import Parser, choice_list, int_at_least, int_list, run
from pets_core.bench.matmul import matmul_rates
from pets_core.bench.plan import _device_name, _layer_dims, _sized_config
from pets_core.config import env_names

PROG = "python -m pets_core.bench plan-cohort"
VARIANT = (("model-type", "PE"), ("prop-type", "TSinf"), ("opt-type", "CEM"))


def _parse(argv: list[str]) -> argparse.Namespace:
    pos = int_at_least(1)
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--envs", type=choice_list(env_names()), default=["cartpole", "halfcheetah"])
    p.add_argument("--seeds", type=int_list(1), default=[1, 2, 4, 8], help="cohort sizes S")
    p.add_argument("--popsize", type=pos, help="CEM population N (paper: per env)")
    p.add_argument("--particles", type=pos, help="P, a multiple of E = 5 (paper: 20)")
    p.add_argument("--horizon", type=pos, help="H (paper: per env)")
    p.add_argument("--iters", type=pos, help="CEM iterations (paper: 5)")
    p.add_argument("--threads", type=pos, default=1, help="torch threads (default 1)")
    p.add_argument("--warmup", type=int_at_least(0), default=1, help="untimed plans per seed")
    p.add_argument("--repeats", type=pos, default=1, help="timed cohort acts per S")
    args = p.parse_args(argv)
    args.model, args.prop, args.elites, args.num_nets = "PE", "TSinf", None, None
    return args


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _main(argv or []))


def _main(argv: list[str]) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    envs = {name: _bench_env(name, args, device) for name in args.envs}
    result = {
        "variant": "PE-TSinf-CEM",
        "cohort_sizes": args.seeds,
        "envs": envs,
        "threads": torch.get_num_threads(),
        "device": _device_name(device),
        "loadavg": os.getloadavg(),
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return 0


def _bench_env(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    from pets_core.config import load_config
    from pets_core.envs import get_task, make_env
    from pets_core.planning.cohort import CohortMPC
    from pets_core.run.builders import make_model, make_mpc

    sized = argparse.Namespace(**vars(args), env=name)  # plan's size options, for this env
    cfg = _sized_config(sized, load_config(name, VARIANT), VARIANT)
    task, env = get_task(name), make_env(name)
    mpcs, observations = [], []
    for seed in range(max(args.seeds)):
        seed_cfg = dataclasses.replace(cfg, seed=seed)
        model, _ = make_model(seed_cfg, task, device)
        mpc = make_mpc(seed_cfg, env, task, model, device)
        obs, _ = env.reset(seed=seed)
        mpc.model_trained = True
        mpc.reset(getattr(env.unwrapped, "goal", None))
        mpcs.append(mpc)
        observations.append(obs)
    env.close()
    for _ in range(args.warmup):  # each seed's planning layout, allocator, oneDNN primitives
        CohortMPC(mpcs).act(observations)

    opt, spec = cfg.ctrl_cfg.opt_cfg, mpcs[0].propagation
    N, H = opt.cfg.popsize, opt.plan_hor
    rows = N * (spec.particles_per_member if spec.is_trajectory_sampling else spec.num_particles)
    dims, E = _layer_dims(mpcs[0].model), spec.ensemble_size
    flops_per_iter = H * sum(2 * E * rows * d_in * d_out for d_in, d_out in dims)  # one seed
    sizes = {}
    for S in args.seeds:
        cohort = CohortMPC(mpcs[:S])
        before = matmul_rates(E, rows, dims, device)
        seconds, iters = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            cohort.act(observations[:S])
            seconds.append(time.perf_counter() - start)
            iters.append([mpc.optimizer.num_iters for mpc in cohort.mpcs])
        after = matmul_rates(E, rows, dims, device)
        best = max(max(before.values()), max(after.values()))
        achieved = [flops_per_iter * sum(i) / s / 1e9 for i, s in zip(iters, seconds, strict=True)]
        sizes[str(S)] = {
            "s_per_seed_action": round(float(np.median(seconds)) / S, 4),
            "s_per_seed_action_all": [round(s / S, 4) for s in seconds],
            "achieved_gflops": round(float(np.median(achieved)), 1),
            "matmul_gflops": round(best, 1),
            "fraction_of_matmul": round(float(np.median(achieved)) / best, 3),
            "iters_run": iters,
        }
    one = sizes.get("1", {}).get("s_per_seed_action")
    for entry in sizes.values():
        entry["speedup_per_seed_vs_1"] = round(one / entry["s_per_seed_action"], 2) if one else None
    return {
        "popsize": N, "particles": spec.num_particles, "horizon": H, "iters": opt.cfg.max_iters,
        "ensemble_size": E, "rows_per_member": rows, "by_cohort_size": sizes,
    }  # fmt: skip


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
