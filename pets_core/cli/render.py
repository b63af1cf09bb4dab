"""`python -m pets_core.render`: a video of a trained model planning (the original's ``render.py``).

    python -m pets_core.render -env cartpole -model-dir RUN_DIR [-logdir DIR] [--seed N] \\
        [--episodes N] [--device auto|cpu|cuda] [--threads N] [-ca KEY VALUE] [-o PATH VALUE]

-model-dir is a run directory (or its train_iter<i>/ under save_all_models). By default the episode
is planned exactly as the run planned: the run's config.yaml, its seed and its last model
(model.pt; else the original's model.mat + model.nns; else the newest train_iter<i>/model.pt).
-ca, -o and --seed change that, on top of the run's config. Without a config.yaml (a model from the
original code) the config is the paper's for -env and -ca, seed 0.

Writes only <logdir>/<timestamp>/rollout<j>.mp4 (headless, EGL) and render.json (run dir, model
file, seed, the settings that differ from the run's, frames, mp4 paths), then prints each mp4 path
on stdout. Nothing is trained, copied or written into the run. Bad input exits 2 with one line
naming the argument and the valid choices, and leaves no directory behind.

Length (~320 lines): most of it is the argument checks, each one line naming the culprit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import yaml

from pets_core import config as config_mod
from pets_core.cli.mbexp import new_run_dir
from pets_core.config import ConfigError, PetsConfig
from pets_core.config.variants import Variant, VariantError
from pets_core.envs import ENV_NAMES
from pets_core.results.files import write_json
from pets_core.results.rundir import MODEL_MAT, MODEL_NNS, MODEL_PT
from pets_core.run.device import DeviceError, resolve_device
from pets_core.seeding import MAX_SEED, RunSeeds

PROG = "python -m pets_core.render"
RENDER_JSON = "render.json"


class RenderError(Exception):
    """Bad input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise RenderError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Record a trained PETS model planning one episode.")
    p.add_argument("-env", required=True, help=" | ".join(ENV_NAMES))
    p.add_argument("-model-dir", "--model-dir", dest="model_dir", required=True, type=Path)
    p.add_argument("-logdir", default="log", help="parent of the timestamped output dir")
    p.add_argument("-ca", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    p.add_argument("-o", nargs=2, action="append", default=[], metavar=("DOTTED.PATH", "VALUE"))
    p.add_argument("--seed", type=int, default=None, help="default: the run's seed")
    p.add_argument("--episodes", type=int, default=1, help="episodes to record (default 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return p


# ----------------------------------------------------------------------------- what to load
def find_model(model_dir: Path) -> Path:
    """model.pt, else model.mat (+ model.nns), else the newest train_iter<i>/model.pt."""
    if not model_dir.is_dir():
        raise RenderError(f"-model-dir {model_dir} is not a directory")
    if (model_dir / MODEL_PT).is_file():
        return model_dir / MODEL_PT
    mat, nns = (model_dir / MODEL_MAT).is_file(), (model_dir / MODEL_NNS).is_file()
    if mat and nns:
        return model_dir / MODEL_MAT
    if mat or nns:
        have, lack = (MODEL_MAT, MODEL_NNS) if mat else (MODEL_NNS, MODEL_MAT)
        raise RenderError(
            f"-model-dir {model_dir} has {have} but no {lack}; valid: {MODEL_PT}, or "
            f"{MODEL_MAT} + {MODEL_NNS}"
        )
    iters = sorted(
        (int(p.parent.name.removeprefix("train_iter")), p)
        for p in model_dir.glob(f"train_iter*/{MODEL_PT}")
        if p.parent.name.removeprefix("train_iter").isdigit()
    )
    if iters:
        return iters[-1][1]
    raise RenderError(
        f"-model-dir {model_dir} holds no model; valid: a run directory with {MODEL_PT}, or "
        f"{MODEL_MAT} + {MODEL_NNS}"
    )


def find_run_config(model_dir: Path) -> Path | None:
    """The run's config.yaml: in -model-dir, or its parent for a train_iter<i>/ directory."""
    for where in (model_dir, model_dir.parent):
        if (where / "config.yaml").is_file():
            return where / "config.yaml"
    return None


def read_run_config(args: argparse.Namespace, run_config: Path | None) -> PetsConfig | None:
    """The run's config (None without config.yaml); its env must be -env."""
    if run_config is None:
        return None
    try:
        run_cfg = config_mod.from_yaml(run_config)
    except (ConfigError, OSError, yaml.YAMLError) as err:
        raise RenderError(f"-model-dir: unreadable {run_config} ({err})") from None
    if args.env != run_cfg.env:
        raise RenderError(
            f"-env {args.env} does not match the run in {run_config.parent} "
            f"(its config.yaml says {run_cfg.env}); valid: -env {run_cfg.env}"
        )
    return run_cfg


def ca_pairs(args: argparse.Namespace, run_cfg: PetsConfig | None) -> list[tuple[str, str]]:
    """The run's variant as -ca pairs, then the command line's (later wins)."""
    return [*(_ca_pairs(run_cfg.parsed_variant) if run_cfg else []), *args.ca]


def resolve_config(args: argparse.Namespace, run_cfg: PetsConfig | None) -> PetsConfig:
    """The render config: the run's config (or the paper's) + -ca + -o + --seed."""
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise RenderError(f"--seed must be in 0..{MAX_SEED} (got {args.seed})")
    ca = ca_pairs(args, run_cfg)
    if run_cfg is None:
        return config_mod.load_config(args.env, ca, args.o, seed=args.seed or 0)
    variant = config_mod.load_config(args.env, ca).parsed_variant
    run_leaves = [
        (path, _as_override(value))
        for path, value in config_mod.flatten(run_cfg).items()
        if value is not None and config_mod.read_only_reason(path, variant) is None
    ]
    seed = run_cfg.seed if args.seed is None else args.seed
    return config_mod.load_config(args.env, ca, [*run_leaves, *args.o], seed=seed)


def _ca_pairs(variant: Variant) -> list[tuple[str, str]]:
    return [("model-type", variant.model), ("prop-type", variant.prop), ("opt-type", variant.opt)]


def _as_override(value: Any) -> str:
    """A config.yaml leaf as -o writes it: [128, 128] -> '[128, 128]', 0.001 -> '0.001'."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


MODEL_KIND = {(False, False): "D", (False, True): "P", (True, False): "DE", (True, True): "PE"}


def check_model_type(model, model_file: Path, variant: Variant) -> None:
    """The model's kind (D, P, DE, PE) must be -ca model-type's."""
    kind = MODEL_KIND[(model.ensemble_size > 1, bool(model.is_probabilistic))]
    if kind != variant.model:
        try:
            Variant(kind, variant.prop, variant.opt)  # type: ignore[arg-type]
            valid = f"-ca model-type {kind}"
        except VariantError:
            valid = f"-ca model-type {kind} -ca prop-type E"
        nets = "network" if model.ensemble_size == 1 else "networks"
        how = "probabilistic" if model.is_probabilistic else "deterministic"
        raise RenderError(
            f"-ca model-type {variant.model} does not match {model_file} (a {kind} model: "
            f"{model.ensemble_size} {how} {nets}); valid: {valid}"
        )


def check_model_fits(model, model_file: Path, cfg: PetsConfig) -> None:
    """The model must be of -env and have the config's ensemble size."""
    from pets_core.envs import get_task  # torch: only once the arguments are valid

    task = get_task(cfg.env)
    if (model.in_dim, model.out_dim) != (task.in_dim, task.out_dim):
        fits = [
            e
            for e in ENV_NAMES
            if (get_task(e).in_dim, get_task(e).out_dim) == (model.in_dim, model.out_dim)
        ]
        raise RenderError(
            f"-env {cfg.env}: {model_file} maps {model.in_dim} inputs to {model.out_dim} outputs, "
            f"{cfg.env} needs {task.in_dim} -> {task.out_dim}; valid: "
            + (", ".join(f"-env {e}" for e in fits) or "none of the envs")
        )
    num_nets = cfg.ctrl_cfg.prop_cfg.model_init_cfg.num_nets
    if cfg.parsed_variant.is_ensemble and num_nets != model.ensemble_size:
        raise RenderError(
            f"ctrl_cfg.prop_cfg.model_init_cfg.num_nets is {num_nets} but {model_file} has "
            f"{model.ensemble_size} networks; valid: -o ctrl_cfg.prop_cfg.model_init_cfg.num_nets "
            f"{model.ensemble_size}"
        )


def load_model_file(model_file: Path, device):
    from pets_core.models import load_model, load_original

    try:
        if model_file.name == MODEL_PT:
            return load_model(model_file, device)
        return load_original(model_file.parent, device)
    except Exception as err:  # truncated zip, foreign pickle, wrong arrays: all unreadable
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise RenderError(
            f"-model-dir {model_file.parent}: {model_file.name} is not a readable model "
            f"(truncated or not written by pets_core: {reason}); valid: {MODEL_PT} or "
            f"{MODEL_MAT} + {MODEL_NNS} as a run saves them"
        ) from None


# ----------------------------------------------------------------------------- the episode
def record(cfg: PetsConfig, model, device, out_dir: Path, episodes: int) -> list[dict[str, Any]]:
    """``episodes`` MPC episodes with the loaded model, each to out_dir/rollout<j>.mp4."""
    import numpy as np

    from pets_core.envs import get_task, make_env
    from pets_core.results.artifacts import write_video
    from pets_core.run.builders import make_mpc
    from pets_core.run.checkpoint import RunState
    from pets_core.run.loop import run_episode

    seeds = RunSeeds.from_seed(cfg.seed)  # the run's streams: its first episode's start state
    env = make_env(cfg.env, render_mode="rgb_array")
    try:
        mpc = make_mpc(cfg, env, get_task(cfg.env), model, device)
        mpc.model_trained = True
        noise_rng = np.random.default_rng(seeds.noise)
        state, out = RunState(), []
        for j in range(episodes):
            episode, frames = run_episode(
                env, mpc, cfg.exp_cfg.sim_cfg, noise_rng, state, record=True, seed=seeds.env
            )
            mp4 = out_dir / f"rollout{j}.mp4"
            write_video(mp4, frames, fps=1.0 / env.unwrapped.dt)
            out.append(
                {
                    "mp4": str(mp4.resolve()),
                    "frames": len(frames),
                    "return": float(episode.ret),
                    "seconds_per_action": float(episode.seconds_per_action),
                }
            )
        return out
    finally:
        env.close()


def config_differences(base: PetsConfig | None, cfg: PetsConfig) -> dict[str, list[Any]]:
    """Leaf -> [run's value, render's value] for every leaf that differs (seed included)."""
    if base is None:
        return {}
    a, b = config_mod.flatten(base), config_mod.flatten(cfg)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def main(argv: Sequence[str] | None = None) -> int:
    out_dir: Path | None = None
    try:
        args = build_parser().parse_args(argv)
        if args.episodes < 1:
            raise RenderError(f"--episodes must be >= 1 (got {args.episodes})")
        if args.threads is not None:
            if args.threads < 1:
                raise RenderError(f"--threads must be >= 1 (got {args.threads})")
            import torch

            torch.set_num_threads(args.threads)
        model_dir = Path(args.model_dir)
        model_file = find_model(model_dir)
        run_config = find_run_config(model_dir)
        base = read_run_config(args, run_config)
        device = resolve_device(args.device)
        model = load_model_file(model_file, device)
        variant = config_mod.load_config(args.env, ca_pairs(args, base)).parsed_variant
        check_model_type(model, model_file, variant)
        cfg = resolve_config(args, base)
        check_model_fits(model, model_file, cfg)
        t0 = time.perf_counter()
        try:
            out_dir = new_run_dir(Path(args.logdir))
        except OSError as err:
            raise RenderError(f"-logdir {args.logdir}: cannot create it ({err.strerror})") from None
        videos = record(cfg, model, device, out_dir, args.episodes)
        manifest = {
            "run_dir": None if run_config is None else str(run_config.parent.resolve()),
            "model_file": str(model_file.resolve()),
            "config": None if run_config is None else str(run_config.resolve()),
            "env": cfg.env,
            "variant": cfg.variant,
            "seed": cfg.seed,
            "config_differences": config_differences(base, cfg),
            "device": str(device),
            "wall_s": time.perf_counter() - t0,
            "episodes": videos,
        }
        write_json(out_dir / RENDER_JSON, manifest)
    except (RenderError, ConfigError, DeviceError) as err:
        if out_dir is not None:
            shutil.rmtree(out_dir, ignore_errors=True)
        print(f"render: error: {err}", file=sys.stderr)
        return 2
    except BaseException:
        if out_dir is not None:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    for video in videos:
        print(
            f"render: {cfg.env} {cfg.variant} seed {cfg.seed} from {model_file}: return "
            f"{video['return']:.2f}, {video['seconds_per_action']:.3f} s/action",
            file=sys.stderr,
        )
        print(video["mp4"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
