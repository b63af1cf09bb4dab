"""`python -m pets_core.bench replay --run RUN_DIR [--object-density D] [--actions zero]`: a run's
logged episodes replayed open-loop in this process's MuJoCo: how far its physics is from the physics
that made them, or (``--actions zero``) what doing nothing would have scored in each.

Each logged episode k starts from the run's own reset k (replayed from the run's seed and checked
against logs.mat, as in ``true-dynamics``) and steps the logged actions, ignoring the logged
observations. Under the MuJoCo that made the run, every replayed observation equals the logged one
(the test suite checks this to 1e-9); under another MuJoCo version, or with the pusher object at
another density (``--object-density``; the original XML's is 1e-5, ours 1), the replay shows where
and by how much the physics differs: per episode the largest observation error, the replayed and
logged returns and, for the pusher, how far the object moved (L1, m) in each. This is how the
pusher's density deviation is compared with the last MuJoCo before 3.0, on which the original XML
still works: install that MuJoCo into a separate folder and put it first on PYTHONPATH (README,
Deviations).

``--actions zero`` steps zero actions instead of the logged ones from the same resets: each
episode's ``return_replayed`` is then its do-nothing return, the score of its own start and goal
before any control (on the reacher, whose arm rests in zero gravity, exactly -T |EE(s_0) - goal|^2).
Set against the logged return, it separates how hard an episode's draw was from how well the run
controlled it. The last stdout line is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pets_core.bench.cli import Parser, UsageError, run
from pets_core.results.rundir import CONFIG_YAML, LOGS_MAT

PROG = "python -m pets_core.bench replay"

ACTIONS = ("logged", "zero")
"""What each replayed episode steps: the run's logged actions, or zeros (the do-nothing return)."""

PUSHER_OBJECT = slice(17, 20)
"""The pusher observation's object position (subtree COM, m): obs[17:20]."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _parse(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, type=Path, help="run directory (config.yaml, logs.mat)")
    p.add_argument(
        "--object-density",
        type=_positive_float,
        help="pusher only: the object cylinder's density, kg/m^3 (default: ours, 1)",
    )
    p.add_argument(
        "--actions",
        choices=ACTIONS,
        default="logged",
        help="step the logged actions (default) or zeros: each episode's do-nothing return",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(PROG, lambda: _main(argv or []))


def _load(run_dir: Path):
    """(config, logs) of a run directory; UsageError naming --run else."""
    import scipy.io

    from pets_core.bench.agreement import load_run_config

    cfg = load_run_config(run_dir, "--run", (CONFIG_YAML, LOGS_MAT))
    try:
        logs = scipy.io.loadmat(run_dir / LOGS_MAT)
    except (OSError, ValueError) as err:
        raise UsageError(f"argument --run: unreadable {run_dir / LOGS_MAT} ({err})") from None
    return cfg, logs


def _main(argv: list[str]) -> int:
    import mujoco

    from pets_core.bench.agreement import replayed_resets

    args = _parse(argv)
    cfg, logs = _load(args.run)
    env_kwargs = {}
    if args.object_density is not None:
        if cfg.env != "pusher":
            raise UsageError(
                f"argument --object-density: the run in {args.run} is {cfg.env}; valid: a "
                "pusher run, or no --object-density"
            )
        env_kwargs["object_density"] = args.object_density
    observations = np.asarray(logs["observations"])  # [n, T+1, O]
    actions = np.asarray(logs["actions"])  # [n, T, A]
    rewards = np.asarray(logs["rewards"])  # [n, T]
    start = time.perf_counter()
    episodes = []
    for k, env, obs, _ in replayed_resets(cfg, observations, "--run", **env_kwargs):
        replayed, ret = [obs], 0.0
        for action in actions[k] if args.actions == "logged" else np.zeros_like(actions[k]):
            obs, reward, *_ = env.step(action)
            replayed.append(obs)
            ret += float(reward)
        episode = replay_summary(cfg.env, observations[k], np.asarray(replayed))
        episode |= {
            "episode": k,
            "return_logged": round(float(rewards[k].sum()), 4),
            "return_replayed": round(ret, 4),
        }
        episodes.append(episode)
        print(
            f"episode {k}: max |obs error| {episode['max_obs_err']:.3g}, "
            f"{'return' if args.actions == 'logged' else 'do-nothing return'} {ret:.2f} "
            f"(logged {episode['return_logged']:.2f})",
            file=sys.stderr,
            flush=True,
        )
    summary = {
        "mujoco": mujoco.__version__,
        "run": str(args.run),
        "env": cfg.env,
        "object_density": env_kwargs.get("object_density"),
        "actions": args.actions,
        "episodes": episodes,
        "max_obs_err": max(e["max_obs_err"] for e in episodes),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if cfg.env == "pusher":
        summary["object_travel_logged"] = round(sum(e["object_travel_logged"] for e in episodes), 4)
        summary["object_travel_replayed"] = round(
            sum(e["object_travel_replayed"] for e in episodes), 4
        )
        summary["episodes_object_moved"] = {  # by more than 1 cm (L1)
            "logged": sum(e["object_travel_logged"] > 0.01 for e in episodes),
            "replayed": sum(e["object_travel_replayed"] > 0.01 for e in episodes),
            "both": sum(
                min(e["object_travel_logged"], e["object_travel_replayed"]) > 0.01 for e in episodes
            ),
        }
    print(json.dumps(summary))
    return 0


def replay_summary(env: str, logged: np.ndarray, replayed: np.ndarray) -> dict:
    """One episode's logged ``[T+1, O]`` against its replay ``[T+1, O]``: the largest observation
    error and, for the pusher, the object's net travel (L1, m) in each and its largest position
    error."""
    out = {"max_obs_err": float(np.abs(replayed - logged).max())}
    if env == "pusher":
        obj_logged, obj_replayed = logged[:, PUSHER_OBJECT], replayed[:, PUSHER_OBJECT]
        out |= {
            "object_travel_logged": round(float(np.abs(obj_logged[-1] - obj_logged[0]).sum()), 4),
            "object_travel_replayed": round(
                float(np.abs(obj_replayed[-1] - obj_replayed[0]).sum()), 4
            ),
            "max_object_err": round(float(np.abs(obj_replayed - obj_logged).max()), 4),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
