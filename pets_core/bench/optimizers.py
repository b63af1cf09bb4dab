"""`python -m pets_core.bench.optimizers --env ENV`: planning cost per action of each optimiser.

For every opt-type (CEM, iCEM, MPPI, Random) at its default settings (config/pets/default.yaml +
config/envs/ENV.yaml, PE-TSinf), builds the controller exactly as the runner does
(``run.builders.make_model`` / ``make_mpc``: paper-size ensemble, real task, real env reset
observation) and times whole ``MPC.act`` calls after a warm-up, counting what the optimiser asks
of the model: candidate action sequences per action, and model evaluations per action
(candidates x particles x horizon one-step predictions of one ensemble member). The model is
untrained (random weights): the cost of a plan does not depend on the weights, except CEM's
eps test, which can stop it earlier on a trained model (its count here is the one measured).
The last stdout line is one JSON object; ``--out FILE`` also writes it there (atomically).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pets_core.config.variants import OPT_TYPES, parse_variant
from pets_core.envs import ENV_NAMES


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pets_core.bench.optimizers", description=__doc__)
    p.add_argument("--env", required=True, choices=ENV_NAMES)
    p.add_argument("--opts", nargs="+", default=list(OPT_TYPES), choices=list(OPT_TYPES))
    p.add_argument(
        "-o", nargs=2, action="append", default=[], metavar=("PATH", "VALUE"),
        help="config override for every optimiser, e.g. -o ctrl_cfg.prop_cfg.npart 5",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--warmup", type=int, default=1, help="untimed actions first")
    p.add_argument("--repeats", type=int, default=3, help="timed actions (median reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the JSON here")
    return p.parse_args(argv)


def bench_optimizer(env_name: str, opt: str, overrides, device, *, warmup, repeats, seed) -> dict:
    """Seconds and model evaluations per planned action of ``PE-TSinf-<opt>`` on ``env_name``."""
    from pets_core.analysis.optimizers import candidates_per_plan
    from pets_core.config import load_config, read_only_reason
    from pets_core.envs import get_task, make_env
    from pets_core.run.builders import make_model, make_mpc

    variant = parse_variant(f"PE-TSinf-{opt}")
    # one override list for every optimiser: another optimiser's leaves are skipped (as the matrix)
    overrides = [(p, v) for p, v in overrides if read_only_reason(p, variant) is None]
    cfg = load_config(env_name, [("opt-type", opt)], overrides, seed=seed)
    task, env = get_task(env_name), make_env(env_name)
    model, _ = make_model(cfg, task, device)
    mpc = make_mpc(cfg, env, task, model, device)
    obs, _ = env.reset(seed=seed)
    mpc.model_trained = True
    mpc.reset(getattr(env.unwrapped, "goal", None))
    per = cfg.ctrl_cfg.per
    for _ in range(warmup):
        mpc.act(obs)
        mpc.action_buffer.clear()  # every call plans
    seconds, candidates = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        mpc.act(obs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        mpc.action_buffer.clear()
        candidates.append(mpc.optimizer.num_evaluated)
    env.close()
    P, H = cfg.ctrl_cfg.prop_cfg.npart, cfg.ctrl_cfg.opt_cfg.plan_hor
    per_action = float(np.median(candidates)) / per
    return {
        "variant": cfg.variant,
        "settings": dict(vars(cfg.ctrl_cfg.opt_cfg.cfg)),
        "plan_hor": H,
        "npart": P,
        "s_per_action": round(float(np.median(seconds)) / per, 4),
        "s_per_action_all": [round(s / per, 4) for s in seconds],
        "candidates_per_action": per_action,
        "nominal_candidates_per_action": candidates_per_plan(cfg.ctrl_cfg.opt_cfg.cfg) / per,
        "model_evals_per_action": per_action * P * H,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv or [])
    from pets_core.results.files import write_text
    from pets_core.run.device import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    overrides = [tuple(o) for o in args.o]
    from pets_core.config import ConfigError

    try:
        results = {
            opt: bench_optimizer(
                args.env,
                opt,
                overrides,
                device,
                warmup=args.warmup,
                repeats=args.repeats,
                seed=args.seed,
            )
            for opt in args.opts
        }
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = {
        "env": args.env,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": args.threads,
        "overrides": [list(o) for o in overrides],
        "optimizers": results,
    }
    line = json.dumps(report)
    if args.out:
        write_text(args.out, line + "\n")
    for opt, r in results.items():
        print(
            f"{opt:>7}: {r['s_per_action']:.3f} s/action, {r['candidates_per_action']:.0f} "
            f"candidates, {r['model_evals_per_action']:.3g} model evaluations per action"
        )
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
