"""Diagnostic (not part of the product): where one half-cheetah MPC action's GPU time goes,
eager vs graphed, through the runner's own builders. argv: OUT DEVICE [tiny]."""

import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from pets_core.config import load_config
from pets_core.envs import make_env
from pets_core.envs.tasks import get_task
from pets_core.run.builders import make_model, make_mpc

out, dev = Path(sys.argv[1]), torch.device(sys.argv[2])
tiny = len(sys.argv) > 3
variant = (("model-type", "PE"), ("prop-type", "TSinf"), ("opt-type", "CEM"))
sizes = (
    [
        ("ctrl_cfg.opt_cfg.cfg.popsize", "20"),
        ("ctrl_cfg.opt_cfg.cfg.num_elites", "4"),
        ("ctrl_cfg.opt_cfg.plan_hor", "3"),
        ("ctrl_cfg.prop_cfg.npart", "5"),
    ]
    if tiny
    else []
)
acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
summary = {}
for mode in ("never", "always"):
    cfg = load_config("halfcheetah", variant, [*sizes, ("ctrl_cfg.graph", mode)])
    task = get_task("halfcheetah")
    model, _ = make_model(cfg, task, dev)
    env = make_env("halfcheetah")
    obs, _ = env.reset(seed=0)
    mpc = make_mpc(cfg, env, task, model, dev)
    mpc.model_trained = True
    mpc.reset(None)
    for _ in range(3):
        mpc.act(obs)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        mpc.act(obs)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / 5
    with profile(activities=acts) as prof:
        mpc.act(obs)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    events = prof.key_averages()
    kern = [
        e
        for e in events
        if getattr(e, "device_type", None) is not None
        and str(e.device_type).endswith("CUDA")
        and e.self_device_time_total > 0
    ]
    summary[mode] = {
        "wall_ms_per_action": round(1e3 * wall, 2),
        "gpu_kernel_ms_per_action": round(sum(e.self_device_time_total for e in kern) / 1e3, 2),
        "kernel_launches_per_action": sum(e.count for e in kern),
        "top": [
            (e.key[:90], e.count, round(e.self_device_time_total / 1e3, 3))
            for e in sorted(kern, key=lambda e: -e.self_device_time_total)[:25]
        ],
    }
    sort = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    (out / f"profile_{mode}.txt").write_text(events.table(sort_by=sort, row_limit=40))
    print(mode, json.dumps({k: v for k, v in summary[mode].items() if k != "top"}), flush=True)
(out / "profile.json").write_text(json.dumps(summary, indent=1))
