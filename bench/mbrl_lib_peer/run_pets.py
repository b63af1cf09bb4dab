"""mbrl-lib 0.2.0's own PETS loop (``pets.train``) at pets_core's reduced half-cheetah settings.

Runs in the peer's venv (see README.md here), never in pets_core's. One seed after another; each
seed's trials land in <out>/seed<S>/results.csv (mbrl-lib's own logger, one row per finished
trial) as they finish, and a seed whose results.csv already holds all its trials is skipped, so a
killed run restarts at the first unfinished seed (that seed from its start: mbrl-lib's loop keeps
no checkpoint).

    python run_pets.py --out DIR --seeds 1 2 3 --trials 10 [--threads 1]
"""

import argparse
import csv
import json
import pathlib
import shutil
import sys
import time

# pets_core's reduced half-cheetah settings, written in mbrl-lib's config tree. README.md here lists
# every value that differs from mbrl-lib's pets_halfcheetah defaults and why.
REDUCED_SETTINGS = [
    "overrides=pets_halfcheetah",
    "action_optimizer=cem",
    "device=cpu",
    "overrides.trial_length=1000",
    "overrides.planning_horizon=30",
    "overrides.cem_num_iters=5",
    "overrides.cem_population_size=50",  # mbrl-lib 400; paper 500, reduced 50
    "overrides.cem_elite_ratio=0.1",  # mbrl-lib 0.16; 5 elites of 50
    "overrides.cem_alpha=0.1",  # mbrl-lib 0.12
    "overrides.cem_clipped_normal=false",  # truncated normal, as the original
    "overrides.model_lr=0.001",  # mbrl-lib 0.00028
    "overrides.model_batch_size=32",
    "overrides.validation_ratio=0",
    "overrides.num_epochs_train_model=5",  # mbrl-lib 12
    "overrides.patience=5",  # mbrl-lib 12 (never reached within 5 epochs either way)
    "overrides.num_elites=5",  # all 5 members used by the planner
    "algorithm.num_particles=5",  # mbrl-lib 20; paper 20, reduced 5
    "algorithm.initial_exploration_steps=1000",  # one random trial first
    "algorithm.freq_train_model=1000",  # train before every trial
    "dynamics_model.ensemble_size=5",  # mbrl-lib 7
    "dynamics_model.num_layers=4",  # 4 hidden layers of 200
    "dynamics_model.hid_size=200",
    "dynamics_model.propagation_method=fixed_model",  # TSinf; mbrl-lib's default random_model = TS1
    "dynamics_model.learn_logvar_bounds=true",  # mbrl-lib false; the original learns them
    # hydra >= 1.1 instantiates nested _target_ nodes by default; 1.0.3 (mbrl-lib's pin) did not,
    # and mbrl-lib instantiates these two nodes' children itself
    "+dynamics_model._recursive_=false",
    "+algorithm.agent._recursive_=false",
]


def peer_config(overrides: list[str]):
    """mbrl-lib's examples/conf composed as its examples/main.py would, with ``overrides``."""
    import mbrl
    from hydra import compose, initialize_config_dir

    conf_dir = pathlib.Path(mbrl.__file__).parent / "examples" / "conf"
    # "1.1": mbrl-lib's YAML uses the `# @package _group_` header that later semantics dropped
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.1"):
        return compose(config_name="main", overrides=overrides)


def trials_done(results: pathlib.Path) -> list[float]:
    if not results.exists():
        return []
    with results.open() as f:
        return [float(row["episode_reward"]) for row in csv.DictReader(f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--trials", type=int, default=10, help="PETS trials after the random one")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="extra hydra overrides (key=value)")
    args = parser.parse_args()

    import mbrl.algorithms.pets as pets
    import mbrl.util.env
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    overrides = [*REDUCED_SETTINGS, f"overrides.num_steps={1000 * args.trials}", *args.set]
    for seed in args.seeds:
        work_dir = args.out / f"seed{seed}"
        done = trials_done(work_dir / "results.csv")
        if len(done) >= args.trials:
            print(f"seed {seed}: {len(done)} trials already done, skipped", flush=True)
            continue
        shutil.rmtree(work_dir, ignore_errors=True)  # no checkpoint: an unfinished seed restarts
        work_dir.mkdir(parents=True)
        cfg = peer_config([*overrides, f"seed={seed}"])
        (work_dir / "settings.json").write_text(
            json.dumps({"overrides": overrides, "seed": seed, "threads": args.threads}, indent=1)
        )
        # the same order as mbrl-lib's examples/main.py: env, then the global seeds, then train
        env, term_fn, reward_fn = mbrl.util.env.EnvHandler.make_env(cfg)
        np.random.seed(cfg.seed)  # noqa: NPY002 (as main.py: the env's resets draw from it)
        torch.manual_seed(cfg.seed)
        start = time.time()
        best = pets.train(env, term_fn, reward_fn, cfg, work_dir=str(work_dir))
        returns = trials_done(work_dir / "results.csv")
        print(
            f"seed {seed}: {len(returns)} trials in {time.time() - start:.0f} s, best {best:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
