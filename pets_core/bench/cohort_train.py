"""`python -m pets_core.bench train-cohort`: seconds per train() call, S seeds in lockstep vs S
sequential single calls.

For each cohort size S (``--seeds``), three sets of S twin trainers (same init seeds, PE, E = 5)
train on the same S datasets (random rows of the env's model dims, one dataset per seed) with
generators of the same seeds, interleaved within each repeat so that all three see the same load:

* ``sequential``: ``trainers[s].train(...)`` for s = 1..S (what S single runs do);
* ``cohort``: one ``train_cohort`` call, each seed's matmuls on their own (bit for bit the
  sequential calls, checked here on the trained weights and Adam moments: ``exact``);
* ``cohort_batched``: one ``train_cohort(batched_matmuls=True)`` call, all S * E members in
  each matmul (``batched_max_abs_diff``: its largest weight difference to the sequential calls).

Reported per S: median wall seconds per call of S seeds and per seed, the CPU seconds of the
process (with ``--threads 1`` on a shared machine, the wall time an idle core would give) and the
speedups over sequential. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

from pets_core.bench.cli import Parser, UsageError, int_at_least, int_list, run
from pets_core.bench.train import ENSEMBLE_SIZE, env_network
from pets_core.config import env_names
from pets_core.models import ModelTrainer, make_model
from pets_core.models.cohort import train_cohort

PROG = "python -m pets_core.bench train-cohort"
MODES = ("sequential", "cohort", "cohort_batched")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog=PROG, description=__doc__)
    parser.add_argument("--env", choices=env_names(), default="cartpole")
    parser.add_argument(
        "--hidden", type=int_list(1), default=None,
        help="hidden widths, e.g. 128,128,128 (the quick config's cartpole); default: the paper's",
    )  # fmt: skip
    parser.add_argument("--n", type=int_at_least(1), default=1000, help="rows per seed")
    parser.add_argument("--epochs", type=int_at_least(1), default=5)
    parser.add_argument("--seeds", type=int_list(1), default=[1, 2, 4], help="cohort sizes S")
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    parser.add_argument("--repeats", type=int_at_least(1), default=3, help="median reported")
    args = parser.parse_args(argv)
    depth = len(env_network(args.env)["hidden_dims"])
    if args.hidden is not None and len(args.hidden) != depth:
        raise UsageError(
            f"argument --hidden: {args.env}'s network has {depth} hidden layers (one weight "
            f"decay each), got {len(args.hidden)}"
        )
    return args


def _train(mode: str, trainers: list[ModelTrainer], data: list, rngs: list, kw: dict) -> None:
    if mode == "sequential":
        for trainer, d, rng in zip(trainers, data, rngs, strict=True):
            trainer.train(*d, rng=rng, **kw)
    else:
        train_cohort(trainers, data, rngs, batched_matmuls=mode == "cohort_batched", **kw)


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _main(argv or []))


def _main(argv: list[str]) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    net = env_network(args.env)
    hidden = args.hidden or net["hidden_dims"]
    decays = net["weight_decays"]  # one per layer of the paper's depth
    kw = {"epochs": args.epochs, "batch_size": 32, "holdout_ratio": 0.0, "max_logging": 5000}

    def trainers(S: int) -> list[ModelTrainer]:
        return [
            ModelTrainer(
                make_model(
                    "PE",
                    in_dim=net["in_dim"],
                    out_dim=net["out_dim"],
                    hidden_dims=hidden,
                    weight_decays=decays,
                    num_nets=ENSEMBLE_SIZE,
                    seed=s,
                ),
                net["learning_rate"],
            )
            for s in range(S)
        ]

    results = []
    for S in args.seeds:
        data = []
        for s in range(S):
            g = np.random.default_rng([1, s])
            data.append(
                (
                    g.normal(size=(args.n, net["in_dim"])).astype(np.float32),
                    g.normal(size=(args.n, net["out_dim"])).astype(np.float32),
                )
            )
        sets = {mode: trainers(S) for mode in MODES}
        wall: dict[str, list[float]] = {m: [] for m in MODES}
        cpu: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                rngs = [np.random.default_rng(100 + s) for s in range(S)]
                t0, c0 = time.perf_counter(), time.process_time()
                _train(mode, sets[mode], data, rngs, kw)
                wall[mode].append(time.perf_counter() - t0)
                cpu[mode].append(time.process_time() - c0)
        ref = sets["sequential"]
        exact = all(
            all(torch.equal(a, b) for a, b in zip(x.flat_vectors(), y.flat_vectors(), strict=True))
            for x, y in zip(ref, sets["cohort"], strict=True)
        )
        batched_diff = max(
            float((a - b).abs().max())
            for x, y in zip(ref, sets["cohort_batched"], strict=True)
            for a, b in zip(x.flat_vectors()[:1], y.flat_vectors()[:1], strict=True)
        )
        row: dict = {"seeds": S, "exact": exact, "batched_max_abs_diff": batched_diff}
        for mode in MODES:
            row[f"{mode}_s_per_call"] = round(statistics.median(wall[mode]), 4)
            row[f"{mode}_s_per_seed"] = round(statistics.median(wall[mode]) / S, 4)
            row[f"{mode}_cpu_s_per_call"] = round(statistics.median(cpu[mode]), 4)
        for mode in MODES[1:]:
            row[f"{mode}_speedup"] = round(
                statistics.median(wall["sequential"]) / statistics.median(wall[mode]), 3
            )
            row[f"{mode}_cpu_speedup"] = round(
                statistics.median(cpu["sequential"]) / statistics.median(cpu[mode]), 3
            )
        print(json.dumps({"env": args.env, **row}), flush=True)
        results.append(row)

    steps = args.epochs * -(-args.n // 32)
    print(
        json.dumps(
            {
                "env": args.env,
                "model": "PE",
                "ensemble_size": ENSEMBLE_SIZE,
                "hidden_dims": hidden,
                "in_dim": net["in_dim"],
                "out_dim": net["out_dim"],
                "n_per_seed": args.n,
                "epochs": args.epochs,
                "steps_per_call": steps,
                "threads": torch.get_num_threads(),
                "repeats": args.repeats,
                "loadavg": os.getloadavg()[0],
                "torch": torch.__version__,
                "results": results,
            }
        )
    )
    return 0
