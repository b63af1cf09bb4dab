"""`python -m pets_core.bench train`: seconds per training epoch of the paper network (batch 32).

Times one epoch (``ceil(N / 32)`` Adam steps of the whole E = 5 PE ensemble, each member on its own
bootstrap rows) after a warm-up epoch, repeated ``--repeats`` times (median reported), on random
data of the env's model dims. ``--autograd`` also times the plain autograd + torch.optim.Adam path
(the same maths) for a before/after on the same machine. Last stdout line: one JSON object.

Baseline (mbrl-lib 0.2.0 on this machine, from the issue): cartpole 0.79 / 3.86 s, halfcheetah
0.22 / 1.15 s per epoch at N = 2,000 / 10,000.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import statistics
import time

import numpy as np
import torch

from pets_core.bench.cli import Parser, UsageError, int_at_least, int_list, run
from pets_core.config import env_names, load_config
from pets_core.envs.tasks import get_task
from pets_core.models import ModelTrainer, make_model
from pets_core.models.backprop import with_ones_column
from pets_core.models.loss import training_loss

BASELINE_S_PER_EPOCH = {  # mbrl-lib 0.2.0, N -> s/epoch (issue 3)
    "cartpole": {2000: 0.79, 10000: 3.86},
    "halfcheetah": {2000: 0.22, 10000: 1.15},
}
ENSEMBLE_SIZE, BATCH_SIZE = 5, 32


def env_network(env: str) -> dict:
    """The env's paper network (config/pets/default.yaml + config/envs/ENV.yaml, via the config
    module) and its model dims (the env's task)."""
    init = load_config(env).ctrl_cfg.prop_cfg.model_init_cfg
    task = get_task(env)
    return {
        "hidden_dims": list(init.hidden_dims),
        "weight_decays": list(init.weight_decays),
        "learning_rate": float(init.learning_rate),
        "in_dim": task.in_dim,
        "out_dim": task.out_dim,
    }


def flops_per_step(in_dim: int, hidden: list[int], head: int, E: int, B: int) -> int:
    """Forward 2BDD' per layer; backward twice that, minus the input-gradient of layer 0."""
    dims = [in_dim, *hidden, head]
    macs = sum(a * b for a, b in itertools.pairwise(dims))
    return 2 * E * B * (3 * macs - dims[0] * dims[1])


def _time_fast(trainer: ModelTrainer, x: torch.Tensor, y: torch.Tensor, idxs, repeats: int):
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    trainer.run_epoch(x, y, idxs, BATCH_SIZE)  # warm-up
    sync()
    times, cpu_times = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.run_epoch(x, y, idxs, BATCH_SIZE)
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    return times, cpu_times


def _step_times(trainer: ModelTrainer, x: torch.Tensor, y: torch.Tensor, idxs) -> np.ndarray:
    """Wall time of every step of one epoch, timed one by one (CPU only: no device sync).

    On a shared machine a single ~1 ms step often runs without being preempted, so a low
    percentile of these times estimates the step time of an idle machine.
    """
    g, adam = trainer.gradient, trainer.adam
    xs, ys = x[idxs], y[idxs]  # (E, N, I + 1), (E, N, T)
    times = []
    for b0 in range(0, idxs.shape[1], BATCH_SIZE):
        t0 = time.perf_counter()
        g(xs[:, b0 : b0 + BATCH_SIZE], ys[:, b0 : b0 + BATCH_SIZE])
        adam.step()
        times.append(time.perf_counter() - t0)
    return np.asarray(times)


def _time_floor(trainer: ModelTrainer, x: torch.Tensor, steps: int, repeats: int):
    """The same step's matmuls alone (the FLOP floor), then its Adam kernels alone.

    A physical-limit reference taken in the same process and moment as the epoch timing: no
    implementation of the same maths can beat the GEMM time on this CPU unless its GEMMs are
    faster, and Adam must touch every float of p, g, m and v once per step.
    """
    g, adam = trainer.gradient, trainer.adam
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    xb = x[:BATCH_SIZE].expand(ENSEMBLE_SIZE, BATCH_SIZE, x.shape[1]).contiguous()

    def matmuls():
        g.matmuls(xb)

    results = []
    for fn in (matmuls, adam.step):
        for _ in range(min(steps, 20)):  # warm-up
            fn()
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            sync()
            times.append(time.perf_counter() - t0)
        results.append(statistics.median(times))
    return results


def _time_autograd(model, lr: float, x_raw: torch.Tensor, y: torch.Tensor, idxs, repeats: int):
    """Plain path: model(x) -> training_loss -> backward -> torch.optim.Adam (same maths)."""
    sync = torch.cuda.synchronize if x_raw.device.type == "cuda" else (lambda: None)
    opt = torch.optim.Adam(model.trainable_parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    N = idxs.shape[1]
    idxs = idxs.to(x_raw.device)

    def epoch():
        for b0 in range(0, N, BATCH_SIZE):
            cols = idxs[:, b0 : b0 + BATCH_SIZE]
            opt.zero_grad(set_to_none=True)
            training_loss(model, x_raw[cols], y[cols]).backward()
            opt.step()

    epoch()
    sync()
    times, cpu_times = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        epoch()
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    return times, cpu_times


PROG = "python -m pets_core.bench train"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog=PROG, description=__doc__)
    parser.add_argument("--env", choices=env_names(), default="cartpole")
    parser.add_argument(
        "--n", default=[2000, 10000], type=int_list(1), help="comma-separated dataset sizes"
    )
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--repeats", type=int_at_least(1), default=5, help="timed epochs (median reported)"
    )
    parser.add_argument("--autograd", action="store_true", help="also time the autograd path")
    parser.add_argument(
        "--graph", choices=["off", "on"], default="off",
        help="on: also time the step with forward + backward replayed as one CUDA graph",
    )  # fmt: skip
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("argument --device: cuda requested but no GPU is visible; valid: cpu")
    return args


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _main(argv or []))


def _main(argv: list[str]) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    net = env_network(args.env)
    in_dim, out_dim = net["in_dim"], net["out_dim"]
    rng = np.random.default_rng(args.seed)
    flops = flops_per_step(in_dim, net["hidden_dims"], 2 * out_dim, ENSEMBLE_SIZE, BATCH_SIZE)

    runs = []
    for n in args.n:
        model = make_model(
            "PE",
            in_dim=in_dim,
            out_dim=out_dim,
            hidden_dims=net["hidden_dims"],
            weight_decays=net["weight_decays"],
            num_nets=ENSEMBLE_SIZE,
            device=device,
            seed=args.seed,
        )
        trainer = ModelTrainer(model, net["learning_rate"])
        num_params = sum(p.numel() for p in model.trainable_parameters())
        inputs = rng.standard_normal((n, in_dim)).astype(np.float32)
        targets = rng.standard_normal((n, out_dim)).astype(np.float32)
        model.normalizer.fit(inputs)
        x_raw = torch.as_tensor(inputs, device=device)
        x = with_ones_column(model.normalizer(x_raw))  # the trainer's input layout
        y = torch.as_tensor(targets, device=device)
        idxs = torch.from_numpy(rng.integers(n, size=(ENSEMBLE_SIZE, n)))
        steps = math.ceil(n / BATCH_SIZE)
        with torch.no_grad():
            times, cpu_times = _time_fast(trainer, x, y, idxs, args.repeats)
        s_per_epoch = statistics.median(times)
        graphed = {}
        if args.graph == "on":  # a second trainer on the same model (its own Adam state)
            with torch.no_grad():
                g_times, _ = _time_fast(
                    ModelTrainer(model, net["learning_rate"], graph=True), x, y, idxs, args.repeats
                )
            graphed["graph_s_per_epoch"] = round(statistics.median(g_times), 5)
            graphed["graph_speedup"] = round(s_per_epoch / statistics.median(g_times), 2)
        run = {
            "n": n,
            "s_per_epoch": round(s_per_epoch, 5),
            "s_per_epoch_min": round(min(times), 5),
            # CPU seconds the process used per epoch: with --threads 1 on a shared machine this
            # is what the wall time would be on an idle core (time slices lost to others excluded)
            "cpu_s_per_epoch": round(statistics.median(cpu_times), 5),
            "steps_per_s": round(steps / s_per_epoch, 1),
            "gflop_per_s": round(flops * steps / s_per_epoch / 1e9, 1),
        } | graphed
        if device.type == "cpu":
            with torch.no_grad():
                per_step = np.concatenate([_step_times(trainer, x, y, idxs) for _ in range(2)])
            # full-size steps only (the short last batch would bias the low percentiles)
            full = per_step.reshape(2, -1)[:, : n // BATCH_SIZE].ravel()
            run["step_ms_p10"] = round(float(np.percentile(full, 10)) * 1e3, 4)
            run["step_ms_median"] = round(float(np.median(full)) * 1e3, 4)
            run["s_per_epoch_from_p10_step"] = round(float(np.percentile(full, 10)) * steps, 5)
        with torch.no_grad():
            gemm_s, adam_s = _time_floor(trainer, x, steps, args.repeats)
        run["gemm_s_per_epoch"] = round(gemm_s, 5)
        run["adam_s_per_epoch"] = round(adam_s, 5)
        run["gemm_gflop_per_s"] = round(flops * steps / gemm_s / 1e9, 1)
        run["adam_gb_per_s"] = round(28 * num_params * steps / adam_s / 1e9, 1)
        run["overhead_s_per_epoch"] = round(s_per_epoch - gemm_s - adam_s, 5)
        base = BASELINE_S_PER_EPOCH.get(args.env, {}).get(n)
        run["baseline_s_per_epoch"] = base
        run["speedup"] = round(base / s_per_epoch, 2) if base else None
        # the best any implementation of this maths could do here: GEMMs + Adam traffic only
        run["speedup_bound"] = round(base / (gemm_s + adam_s), 2) if base else None
        if args.autograd:
            ag, ag_cpu = _time_autograd(model, net["learning_rate"], x_raw, y, idxs, 3)
            run["autograd_s_per_epoch"] = round(statistics.median(ag), 5)
            run["autograd_cpu_s_per_epoch"] = round(statistics.median(ag_cpu), 5)
            run["speedup_vs_autograd"] = round(statistics.median(ag) / s_per_epoch, 2)
        print(json.dumps({"env": args.env, **run}), flush=True)
        runs.append(run)

    summary: dict = {
        "env": args.env,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "ensemble_size": ENSEMBLE_SIZE,
        "batch_size": BATCH_SIZE,
        "num_params": num_params,
        "flop_per_step": flops,
        "adam_bytes_per_step": 28 * num_params,  # read p, g, m, v + write p, m, v (float32)
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loadavg": os.getloadavg()[0],
        # libgomp spins by default; on a machine shared by more busy threads than cores set
        # OMP_WAIT_POLICY=PASSIVE before starting Python (measured: 4x faster 2-thread steps at
        # load 5 on 2 cores), on an idle machine leave it unset
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
    }
    keys = sorted({k for run in runs for k in run})
    for key in keys:
        values = [run.get(key) for run in runs]
        summary[key] = values[0] if len(values) == 1 else values
    print(json.dumps(summary))
    return 0
