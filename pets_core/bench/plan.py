"""`python -m pets_core.bench plan --env ENV`: seconds per MPC action against the matmul limit.

Builds the paper-size model (config/pets/default.yaml + config/envs/ENV.yaml: PE, E = 5,
paper hidden layers) and the env's real task, plans from a real reset observation with CEM and the
chosen propagation, and times whole ``MPC.act`` calls after a warm-up. In the same run it times the
best fp32 batched matmul on the very layer shapes the planner multiplies ``(E, rows, in) x (E, in,
out)``, two ways: ``torch.bmm`` (the "naive batched matmul" of the issue's baseline figures) and one
oneDNN matmul per member; ``matmul_gflops`` is the faster of the two, so ``fraction_of_matmul`` =
achieved model GFLOP/s over that best rate. Each precision's kernels are timed in its own dtypes
(bf16 matmuls for bf16, each layer's own for the mixed ones), between its own actions;
``precisions[p]["kernel_speedup_vs_fp32"]`` is the best rate in those dtypes over the best fp32
rate, the ceiling for ``speedup_vs_fp32``.
The last stdout line is one JSON object.

Baselines on this machine (mbrl-lib 0.2.0, paper-size, 2 CPU threads, fp32): cartpole 8.46 s per
action, halfcheetah 3.78 s.

Length (~350 lines): the timed MPC and the matmul-limit measurement (pets_core.bench.matmul) run
in one process, on the same shapes and threads, so that their ratio means something; ``_main`` is
that one sequential measurement, its setup, timed actions and report sharing many locals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from pets_core.bench.cli import Parser, UsageError, choice_list, int_at_least, run
from pets_core.bench.matmul import matmul_precision, matmul_rates
from pets_core.config import PRECISIONS, ConfigError, PetsConfig, env_names, load_config
from pets_core.config.variants import MODEL_TYPES, PROP_TYPES, ensemble_size, is_ensemble
from pets_core.planning.forward import layer_dtypes

BASELINE_S_PER_ACTION = {"cartpole": 8.46, "halfcheetah": 3.78}  # mbrl-lib 0.2.0, this machine


PRECISION_CHOICES = ("fp32", "tf32", *PRECISIONS[1:])  # tf32: fp32 storage, TF32 matmuls
PROG = "python -m pets_core.bench plan"


def _parse(argv: list[str]) -> argparse.Namespace:
    pos, nonneg = int_at_least(1), int_at_least(0)
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--env", required=True, choices=env_names())
    p.add_argument("--popsize", type=pos, help="CEM population N (paper: per env)")
    p.add_argument("--elites", type=pos, help="CEM elites K <= N (paper: popsize / 10)")
    p.add_argument("--particles", type=pos, help="P, a multiple of E under TS* (paper: 20)")
    p.add_argument("--horizon", type=pos, help="H (paper: per env)")
    p.add_argument("--iters", type=pos, help="CEM iterations (paper: 5)")
    p.add_argument("--num-nets", type=pos, help="ensemble size E (paper: 5)")
    p.add_argument("--prop", default="TSinf", choices=PROP_TYPES)
    p.add_argument("--model", default="PE", choices=MODEL_TYPES)
    p.add_argument("--threads", type=pos, default=torch.get_num_threads())
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument(
        "--fast", default="auto", choices=["auto", "onednn", "bmm", "off"],
        help="planner forward: fast layout (auto/onednn/bmm) or the model's predict (off)",
    )  # fmt: skip
    p.add_argument(
        "--precision", default=["fp32"], type=choice_list(PRECISION_CHOICES),
        help="comma-separated, from fp32, tf32 (fp32 storage, TF32 matmuls where the device has "
        "them), bf16 (opt-in bfloat16 matmuls), bf16-hidden (the hidden-to-hidden layers in "
        "bf16), bf16-trunk (all but the head in bf16); the first is reported at the top level; "
        "any other than fp32 also times fp32 and reports agreement",
    )  # fmt: skip
    p.add_argument(
        "--graph", default="off", choices=["off", "on"],
        help="on: replay the horizon rollout as a captured graph (CUDA graph on CUDA; see "
        "pets_core.graphs)",
    )  # fmt: skip
    p.add_argument("--warmup", type=nonneg, default=1, help="untimed actions first")
    p.add_argument("--repeats", type=pos, default=3, help="timed actions (median reported)")
    p.add_argument("--seed", type=nonneg, default=0)
    return p.parse_args(argv)


def _layer_dims(model) -> list[tuple[int, int]]:
    return [(int(w.shape[1]), int(w.shape[2])) for w, _ in model.mlp_weights().layers]


def storage_precision(precision: str) -> str:
    """The planner's ``precision`` argument for a bench precision (tf32 stores fp32)."""
    return "fp32" if precision == "tf32" else precision


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _main(argv or []))


def _main(argv: list[str]) -> int:
    args = _parse(argv)
    from pets_core.envs import make_env
    from pets_core.envs.tasks import get_task
    from pets_core.models import make_model
    from pets_core.planning import MPC, PropagationSpec, tile_bounds
    from pets_core.run.builders import make_optimizer
    from pets_core.run.device import DeviceError, resolve_device

    try:
        device = resolve_device(args.device)
    except DeviceError as err:
        raise UsageError(f"argument --device: {err}") from None
    if args.graph == "on" and args.fast == "off":
        raise UsageError("argument --graph: on needs the fast planner forward (--fast auto|bmm)")
    torch.set_num_threads(args.threads)
    variant = (("model-type", args.model), ("prop-type", args.prop), ("opt-type", "CEM"))
    paper = load_config(args.env, variant)  # default.yaml + envs/ENV.yaml, the paper's sizes
    cfg = _sized_config(args, paper, variant)
    opt, prop = cfg.ctrl_cfg.opt_cfg, cfg.ctrl_cfg.prop_cfg
    cem_cfg, mcfg = opt.cfg, prop.model_init_cfg
    N, K, H, iters = cem_cfg.popsize, cem_cfg.num_elites, opt.plan_hor, cem_cfg.max_iters
    spec = PropagationSpec.from_prop_cfg(prop)
    P = spec.num_particles

    task = get_task(args.env)
    model = make_model(
        args.model, in_dim=task.in_dim, out_dim=task.out_dim, hidden_dims=mcfg.hidden_dims,
        weight_decays=mcfg.weight_decays, num_nets=mcfg.num_nets, device=device, seed=args.seed,
    )  # fmt: skip
    E = model.ensemble_size
    env = make_env(args.env)
    obs, _ = env.reset(seed=args.seed)
    goal = getattr(env.unwrapped, "goal", None)
    low, high = env.action_space.low, env.action_space.high
    lower, upper = tile_bounds(low, high, H, device)
    cem = make_optimizer(cem_cfg, lower, upper)
    fast = False if args.fast == "off" else args.fast
    graph = args.graph == "on"

    def make_mpc(precision: str) -> MPC:
        mpc = MPC(
            model=model, task=task, optimizer=cem, plan_hor=H, per=1, propagation=spec,
            action_low=low, action_high=high, device=device,
            seed=args.seed, fast=fast, precision=storage_precision(precision), graph=graph,
        )  # fmt: skip
        mpc.model_trained = True
        mpc.reset(goal)
        return mpc

    rows = N * spec.particles_per_member if spec.is_trajectory_sampling else N * P
    dims = _layer_dims(model)

    cpu_share: list[float] = []  # this process's CPU time / (wall x threads) per action

    def time_actions(precision: str):
        """Each timed action sits between two matmul-rate measurements (same machine load)."""
        with matmul_precision(precision):
            mpc = make_mpc(precision)
            for _ in range(args.warmup):
                mpc.act(obs)
            seconds, iters_run, actions, refs = [], [], [], []
            dtype = layer_dtypes(storage_precision(precision), len(dims))
            before = matmul_rates(E, rows, dims, device, dtype=dtype)
            for _ in range(args.repeats):
                start, cpu_start = time.perf_counter(), time.process_time()
                actions.append(mpc.act(obs))
                seconds.append(time.perf_counter() - start)
                cpu_share.append((time.process_time() - cpu_start) / seconds[-1] / args.threads)
                iters_run.append(cem.num_iters)
                after = matmul_rates(E, rows, dims, device, dtype=dtype)
                refs.append({k: max(before[k], after[k]) for k in before})
                before = after
        return seconds, iters_run, actions, refs

    timed = {p: time_actions(p) for p in dict.fromkeys([*args.precision, "fp32"])}
    by_precision = {}
    flops_per_step = sum(2 * E * rows * d_in * d_out for d_in, d_out in dims)

    def kernel_rates(refs: list[dict]) -> dict:
        return {k: round(float(np.median([ref[k] for ref in refs])), 1) for k in refs[0]}

    for precision, (p_seconds, p_iters, p_actions, p_refs) in timed.items():
        achieved = [
            flops_per_step * H * i / s / 1e9 for i, s in zip(p_iters, p_seconds, strict=True)
        ]
        entry = {
            "s_per_action": round(float(np.median(p_seconds)), 4),
            # the same layer shapes in this precision's kernels, timed between its actions
            "matmul_gflops_by_kernel": kernel_rates(p_refs),
            "fraction_of_matmul": round(
                float(
                    np.median([a / max(r.values()) for a, r in zip(achieved, p_refs, strict=True)])
                ),
                3,
            ),
        }
        if precision != "fp32":
            fp32_seconds, _, fp32_actions, _ = timed["fp32"]
            entry |= _agreement(model, task, obs, goal, cem, args, spec, fast, device, precision)
            entry["speedup_vs_fp32"] = round(
                float(np.median(fp32_seconds)) / float(np.median(p_seconds)), 2
            )
            fp32_best = max(kernel_rates(timed["fp32"][3]).values())
            entry["kernel_speedup_vs_fp32"] = round(
                max(entry["matmul_gflops_by_kernel"].values()) / fp32_best, 2
            )  # the best this precision's matmuls allow on these shapes
            diff = np.abs(np.stack(p_actions) - np.stack(fp32_actions)) / (high - low)
            entry["action_diff_vs_fp32_max_frac_of_range"] = round(float(diff.max()), 4)
        by_precision[precision] = entry
    primary = args.precision[0]
    seconds, iters_run, _, refs = timed[primary]
    extra = {}
    if primary != "fp32":
        extra = {k: v for k, v in by_precision[primary].items() if k != "s_per_action"}
        extra["fp32_s_per_action"] = by_precision["fp32"]["s_per_action"]

    s_per_action = float(np.median(seconds))
    flops = flops_per_step * H * float(np.median(iters_run))
    achieved = [flops_per_step * H * i / s / 1e9 for i, s in zip(iters_run, seconds, strict=True)]
    best = [max(ref.values()) for ref in refs]  # the best kernel next to each action
    fraction = [a / b for a, b in zip(achieved, best, strict=True)]
    fraction_bmm = [a / ref["bmm"] for a, ref in zip(achieved, refs, strict=True)]
    kernels = {k: round(float(np.median([ref[k] for ref in refs])), 1) for k in refs[0]}
    paper_size = (N, P, H, iters, E, args.model, args.prop) == (
        paper.ctrl_cfg.opt_cfg.cfg.popsize, paper.ctrl_cfg.prop_cfg.npart,
        paper.ctrl_cfg.opt_cfg.plan_hor, paper.ctrl_cfg.opt_cfg.cfg.max_iters,
        paper.ctrl_cfg.prop_cfg.model_init_cfg.num_nets, "PE", "TSinf",
    )  # fmt: skip
    baseline = BASELINE_S_PER_ACTION.get(args.env) if paper_size else None
    predictor = _predictor_name(model, task, fast)
    result = {
        "env": args.env,
        "variant": f"{args.model}-{args.prop}-CEM",
        "s_per_action": round(s_per_action, 4),
        "s_per_action_all": [round(s, 4) for s in seconds],
        "s_per_action_min": round(min(seconds), 4),
        "flops_per_action": flops,
        "achieved_gflops": round(float(np.median(achieved)), 1),
        "matmul_gflops": round(float(np.median(best)), 1),
        "fraction_of_matmul": round(float(np.median(fraction)), 3),
        "fraction_of_matmul_all": [round(f, 3) for f in fraction],
        "fraction_of_bmm": round(float(np.median(fraction_bmm)), 3),
        "cpu_share_during_actions": [round(c, 2) for c in cpu_share[: args.repeats]],
        "matmul_gflops_by_kernel": kernels,
        "paper_size": paper_size,
        "baseline_s_per_action": baseline,
        "speedup_vs_baseline": round(baseline / s_per_action, 2) if baseline else None,
        "popsize": N, "elites": K, "particles": P, "horizon": H, "iters": iters,
        "iters_run": iters_run, "ensemble_size": E,
        "predictor": predictor,
        "graph": graph,
        "device": _device_name(device),
        "threads": torch.get_num_threads(),
        "precision": primary,
        "precisions": by_precision,
        "loadavg": os.getloadavg(),
        "torch": torch.__version__,
    } | extra  # fmt: skip
    print(json.dumps(result))
    return 0


def _sized_config(args: argparse.Namespace, paper: PetsConfig, variant) -> PetsConfig:
    """The paper's config with the sizes given on the command line (validated by the config)."""
    cem, prop = paper.ctrl_cfg.opt_cfg.cfg, paper.ctrl_cfg.prop_cfg

    def given(value, default):
        return default if value is None else value

    N = given(args.popsize, cem.popsize)
    K = given(args.elites, max(1, N * cem.num_elites // cem.popsize))
    if K > N:
        raise UsageError(f"argument --elites: must be <= the population N = {N}, got {K}")
    num_nets = ensemble_size(args.model, given(args.num_nets, prop.model_init_cfg.num_nets))
    if args.prop == "E":
        if args.particles not in (None, 1):
            raise UsageError(
                f"argument --particles: --prop E uses 1 particle, got {args.particles}"
            )
    elif args.prop in ("TS1", "TSinf") and given(args.particles, prop.npart) % num_nets:
        raise UsageError(
            f"argument --particles: --prop {args.prop} needs a multiple of the ensemble size "
            f"E = {num_nets}, got {given(args.particles, prop.npart)}"
        )
    sizes = {
        "ctrl_cfg.opt_cfg.cfg.popsize": N,
        "ctrl_cfg.opt_cfg.cfg.num_elites": K,
        "ctrl_cfg.opt_cfg.cfg.max_iters": given(args.iters, cem.max_iters),
        "ctrl_cfg.opt_cfg.plan_hor": given(args.horizon, paper.ctrl_cfg.opt_cfg.plan_hor),
    }
    if args.prop != "E":
        sizes["ctrl_cfg.prop_cfg.npart"] = given(args.particles, prop.npart)
    if is_ensemble(args.model):
        sizes["ctrl_cfg.prop_cfg.model_init_cfg.num_nets"] = num_nets
    try:
        return load_config(args.env, variant, [(k, str(v)) for k, v in sizes.items()])
    except ConfigError as err:
        raise UsageError(str(err)) from None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()})"


def _agreement(model, task, obs, goal, cem, args, spec, fast, device, precision) -> dict:
    """``precision`` vs fp32 on the same candidates (CEM's first population from the mid-point):
    cost rank correlation, elite-set overlap and the largest relative cost difference."""
    from pets_core.planning import predicted_costs

    obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
    goal_t = None if goal is None else torch.as_tensor(goal, dtype=torch.float32, device=device)
    mid = (cem.lower + cem.upper) / 2
    var = (cem.upper - cem.lower).square() / 16
    seqs = cem.sample(mid, var, torch.Generator(device=device).manual_seed(args.seed))
    costs = {}
    for name in ("fp32", precision):
        with matmul_precision(name):
            costs[name] = predicted_costs(
                model,
                task,
                obs_t,
                seqs,
                spec=spec,
                goal=goal_t,
                generator=torch.Generator(device=device).manual_seed(1),
                fast=fast,
                precision=storage_precision(name),
            )
    ranks = {k: v.argsort().argsort().double() for k, v in costs.items()}
    rank_corr = torch.corrcoef(torch.stack(list(ranks.values())))[0, 1]
    K = cem.num_elites
    elites = [set(v.argsort()[:K].tolist()) for v in costs.values()]
    return {
        "cost_rank_corr_vs_fp32": round(float(rank_corr), 4),
        "elite_overlap_vs_fp32": round(len(elites[0] & elites[1]) / K, 3),
        "cost_max_rel_diff_vs_fp32": round(
            float(((costs[precision] - costs["fp32"]).abs() / costs["fp32"].abs()).max()), 5
        ),
    }


def _predictor_name(model, task, fast) -> str:
    from pets_core.planning.forward import make_predictor

    predictor = make_predictor(model, task.act_dim, fast)
    return getattr(predictor, "backend", type(predictor).__name__)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
