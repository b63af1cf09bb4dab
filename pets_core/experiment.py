"""The PETS experiment loop (spec sec. 6.1, ``MBExperiment.run_experiment``), resumable.

1. ``ninit_rollouts`` random-action episodes; train on them.
2. For i = 1..ntrain_iters: run max(nrecord, neval, nrollouts_per_iter) MPC episodes (the first
   nrecord recorded to train_iter<i>/rollout<j>.mp4); record the returns of the first neval; log
   and add the first nrollouts_per_iter to the data; save the model that acted and the prediction
   logs; overwrite logs.mat; train on all data (not after the last iteration); checkpoint.

There is no separate evaluation: the returns are those of the MPC episodes that become training
data. A resumed run restores every RNG and continues after the last checkpointed iteration, so its
logs.mat equals an uninterrupted run's (on CPU).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pets_core.checkpoint import load_checkpoint, save_checkpoint
from pets_core.config import CEMCfg, ICEMCfg, MPPICfg, PetsConfig, RandomCfg
from pets_core.data import Episode, TrainingSet
from pets_core.device import global_rng_state, seed_everything, set_global_rng_state
from pets_core.logs import (
    DONE_JSON,
    atomic_path,
    read_run_info,
    write_json,
    write_logs_mat,
    write_predictions_mat,
)
from pets_core.metrics import best_so_far, env_steps, episodes_per_iteration, write_metrics_csv
from pets_core.progress import PLAIN_EVERY_S, Progress
from pets_core.seeding import RunSeeds
from pets_core.tracking import Tracker, run_artifacts

MODEL_PT = "model.pt"


@dataclasses.dataclass
class RunState:
    """Everything a checkpoint holds besides model / RNG states."""

    iteration: int = 0
    """Last complete iteration (0: initial rollouts done)."""
    episodes: list[Episode] = dataclasses.field(default_factory=list)
    """Logged episodes (initial + nrollouts_per_iter per iteration)."""
    returns: list[float] = dataclasses.field(default_factory=list)
    rows: list[dict[str, float]] = dataclasses.field(default_factory=list)
    env_steps: int = 0
    wall_s: float = 0.0
    model_trained: bool = False
    last_train: dict[str, float] = dataclasses.field(default_factory=dict)
    last_train_s: float = 0.0
    env_seeded: bool = False

    @property
    def best_so_far(self) -> float:
        return float(best_so_far(self.returns)[-1]) if self.returns else float("nan")


def run_experiment(
    cfg: PetsConfig,
    run_dir: Path,
    *,
    device: torch.device,
    tracker: Tracker | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    progress_every_s: float = PLAIN_EVERY_S,
) -> dict[str, Any]:
    """Run (or resume) one PETS experiment in ``run_dir``; returns the done.json content.

    ``progress``: live progress (a bar on a terminal, a line every ``progress_every_s`` seconds
    in a log file); the one-line summary of each iteration is printed either way.
    """
    from pets_core.envs import get_task, make_env

    run_dir = Path(run_dir)
    sim, loop, elog = cfg.exp_cfg.sim_cfg, cfg.exp_cfg.exp_cfg, cfg.exp_cfg.log_cfg
    t_session = time.perf_counter()
    seeds = RunSeeds.from_seed(cfg.seed)  # independent streams; MPC and model derive theirs too
    seed_everything(seeds.fallback)
    train_rng = np.random.default_rng(seeds.train)  # bootstraps / holdout / shuffles
    noise_rng = np.random.default_rng(seeds.noise)  # sim_cfg.stochastic action noise

    if elog.nrecord > 0:
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless; read when the renderer is made
    env = make_env(cfg.env, render_mode="rgb_array" if elog.nrecord > 0 else None)
    task = get_task(cfg.env)
    model, trainer = _make_model(cfg, task, device)
    mpc = _make_mpc(cfg, env, task, model, device)
    data = TrainingSet(task)
    state = RunState()

    for stale in [*run_dir.glob(".*.tmp*"), *run_dir.glob("train_iter*/.*.tmp*")]:
        # temp files of an atomic write that a kill interrupted
        stale.unlink(missing_ok=True)
    ckpt = load_checkpoint(run_dir)
    if ckpt is not None:
        state = _restore(ckpt, trainer, mpc, env, train_rng, noise_rng, data)
        echo(f"resuming {run_dir} after iteration {state.iteration} of {loop.ntrain_iters}")
    else:
        # 1. initial rollouts with the untrained controller: uniform random actions
        state.model_trained = cfg.ctrl_cfg.prop_cfg.model_pretrained
        mpc.model_trained = state.model_trained
        t0 = time.perf_counter()
        for _ in range(loop.ninit_rollouts):
            episode, _ = _run_episode(env, mpc, sim, noise_rng, state, record=False, seed=seeds.env)
            state.episodes.append(episode)
            data.append(episode)
        mpc.pop_prediction_log()  # random actions: nothing planned
        if loop.ninit_rollouts > 0:
            _train(cfg, trainer, data, train_rng, state, mpc)
        state.wall_s += time.perf_counter() - t0
        _checkpoint(run_dir, state, trainer, mpc, env, train_rng, noise_rng, tracker)

    episodes_per_iter = max(elog.nrecord, elog.neval, loop.nrollouts_per_iter)
    shown = Progress(
        label=f"{cfg.env} {cfg.variant} seed {cfg.seed}",
        ntrain_iters=loop.ntrain_iters,
        steps_per_iter=episodes_per_iter * sim.task_hor,
        loss_name="train nll" if cfg.parsed_variant.is_probabilistic_net else "train mse",
        enabled=progress,
        every_s=progress_every_s,
    )
    shown.last_train_s = state.last_train_s
    for i in range(state.iteration + 1, loop.ntrain_iters + 1):
        t0 = time.perf_counter()
        shown.start_iteration(i)
        iter_dir = run_dir / f"train_iter{i}"
        iter_dir.mkdir(exist_ok=True)
        # 2b. nrecord recorded episodes, then the rest up to max(neval, nrollouts_per_iter)
        episodes = []
        nrecord = elog.nrecord if records(i, loop.ntrain_iters, elog.record_iters) else 0
        for j in range(episodes_per_iter):
            episode, frames = _run_episode(
                env,
                mpc,
                sim,
                noise_rng,
                state,
                record=j < nrecord,
                seed=seeds.env,
                on_step=shown.step,
            )
            episodes.append(episode)
            if frames:
                _write_video(video_path(run_dir, i, j), frames, fps=1.0 / env.unwrapped.dt)
        # 2c. returns of the first neval; the first nrollouts_per_iter become data and logs
        state.returns.extend(ep.ret for ep in episodes[: elog.neval])
        for episode in episodes[: loop.nrollouts_per_iter]:
            state.episodes.append(episode)
            data.append(episode)
        # 2d-e. the model that acted, prediction logs, logs.mat, metrics
        _save_model(cfg, model, iter_dir if cfg.ctrl_cfg.log_cfg.save_all_models else run_dir)
        write_predictions_mat(iter_dir, mpc.pop_prediction_log())
        write_logs_mat(
            run_dir,
            [ep.observations for ep in state.episodes],
            [ep.actions for ep in state.episodes],
            [ep.rewards for ep in state.episodes],
            state.returns,
        )
        acting_s = time.perf_counter() - t0
        row = {
            "iteration": i,
            "env_steps": env_steps(
                i,
                task_hor=sim.task_hor,
                ninit_rollouts=loop.ninit_rollouts,
                episodes_per_iter=episodes_per_iteration(
                    nrecord=elog.nrecord,
                    neval=elog.neval,
                    nrollouts_per_iter=loop.nrollouts_per_iter,
                ),
            ),
            "return": float(np.mean([ep.ret for ep in episodes[: elog.neval]])),
            "best_so_far": float(best_so_far(state.returns, elog.neval)[-1]),
            "train_loss": state.last_train.get("train_loss", float("nan")),
            "holdout_mse": state.last_train.get("holdout_mse", float("nan")),
            "train_mse": state.last_train.get("train_mse", float("nan")),  # MLflow only
            "plan_s_per_action": float(np.mean([ep.seconds_per_action for ep in episodes])),
            "wall_s": state.last_train_s + acting_s,
        }
        state.rows.append(row)
        write_metrics_csv(run_dir, state.rows)
        if not any(iter_dir.iterdir()):  # 2f
            iter_dir.rmdir()
        # 2g. train on all data, except after the last iteration
        state.last_train, state.last_train_s = {}, 0.0
        if i < loop.ntrain_iters:
            shown.training(len(data))
            _train(cfg, trainer, data, train_rng, state, mpc)
        state.iteration = i
        state.wall_s += time.perf_counter() - t0
        _checkpoint(run_dir, state, trainer, mpc, env, train_rng, noise_rng, tracker)
        shown.end_iteration(
            ret=row["return"],
            best=row["best_so_far"],
            train_loss=row["train_loss"],
            s_per_action=row["plan_s_per_action"],
            train_s=state.last_train_s,
        )
    shown.close()
    env.close()

    done = {
        "env": cfg.env,
        "variant": cfg.variant,
        "seed": cfg.seed,
        "iterations": state.iteration,
        "final_best_so_far": state.best_so_far,
        "wall_s": state.wall_s,
        "device": _device_name(device),
        "run_uid": read_run_info(run_dir)["run_uid"],
    }
    if tracker is not None:
        tracker.log_rows(state.rows)  # anything a kill left unlogged
        tracker.finish(run_artifacts(run_dir))
    write_json(run_dir / DONE_JSON, done)  # the completion marker: last, atomically
    echo(
        f"done: {run_dir} best-so-far {state.best_so_far:.2f} after {state.iteration} iterations "
        f"({time.perf_counter() - t_session:.1f} s this session)"
    )
    return done


def _device_name(device: torch.device) -> str:
    """done.json's "device": the torch device the run used, "cpu" or "cuda:<index>"."""
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return str(device)


# ----------------------------------------------------------------------------- building blocks
def video_path(run_dir: Path, iteration: int, episode: int = 0) -> Path:
    """<run_dir>/train_iter<i>/rollout<j>.mp4: recorded episode j of iteration i (1-based)."""
    return Path(run_dir) / f"train_iter{iteration}" / f"rollout{episode}.mp4"


def records(i: int, ntrain_iters: int, record_iters: tuple[int, ...]) -> bool:
    """Does iteration i (1-based) record its first nrecord episodes? () = every iteration."""
    return not record_iters or any(
        i == (r if r > 0 else ntrain_iters + 1 + r) for r in record_iters
    )


def _make_model(cfg: PetsConfig, task, device: torch.device):
    from pets_core.models import ModelTrainer, load_model, load_original, make_model

    init = cfg.ctrl_cfg.prop_cfg.model_init_cfg
    if init.load_model:
        model_dir = Path(init.model_dir or ".")
        if (model_dir / MODEL_PT).exists():
            model = load_model(model_dir / MODEL_PT, device)
        else:
            model = load_original(model_dir, device)
    else:
        model = make_model(
            init.model_type,
            in_dim=task.in_dim,
            out_dim=task.out_dim,
            hidden_dims=list(init.hidden_dims),
            weight_decays=list(init.weight_decays),
            num_nets=init.num_nets,
            max_logvar_init=init.max_logvar_init,
            min_logvar_init=init.min_logvar_init,
            device=device,
            seed=cfg.seed,
        )
    return model, ModelTrainer(model, learning_rate=init.learning_rate)


def make_optimizer(
    opt_cfg: CEMCfg | RandomCfg | ICEMCfg | MPPICfg,
    lower: torch.Tensor,  # (H, A)
    upper: torch.Tensor,  # (H, A)
    *,
    per: int = 1,
):
    """The optimiser of ``ctrl_cfg.opt_cfg.cfg`` over the box ``[lower, upper]``.

    ``per`` (actions executed per plan) tells iCEM how far to shift the last plan's elites.
    """
    from pets_core.planning import CEMOptimizer, ICEMOptimizer, MPPIOptimizer, RandomShooting

    c = opt_cfg
    if isinstance(c, CEMCfg):
        return CEMOptimizer(
            popsize=c.popsize,
            num_elites=c.num_elites,
            max_iters=c.max_iters,
            epsilon=c.epsilon,
            alpha=c.alpha,
            lower=lower,
            upper=upper,
            var_update=c.var_update,
        )
    if isinstance(c, ICEMCfg):
        return ICEMOptimizer(
            popsize=c.popsize,
            num_elites=c.num_elites,
            max_iters=c.max_iters,
            alpha=c.alpha,
            noise_beta=c.noise_beta,
            pop_decay=c.pop_decay,
            keep_elites_frac=c.keep_elites_frac,
            lower=lower,
            upper=upper,
            per=per,
        )
    if isinstance(c, MPPICfg):
        return MPPIOptimizer(
            popsize=c.popsize,
            num_iters=c.num_iters,
            temperature=c.temperature,
            sigma=c.sigma,
            smoothing=c.smoothing,
            lower=lower,
            upper=upper,
        )
    return RandomShooting(popsize=c.popsize, lower=lower, upper=upper)


def _make_mpc(cfg: PetsConfig, env, task, model, device: torch.device):
    from pets_core.planning import MPC, PropagationSpec

    opt = cfg.ctrl_cfg.opt_cfg
    low = np.asarray(env.action_space.low, dtype=np.float64)
    high = np.asarray(env.action_space.high, dtype=np.float64)
    lower = torch.as_tensor(np.tile(low, (opt.plan_hor, 1)), dtype=torch.float32, device=device)
    upper = torch.as_tensor(np.tile(high, (opt.plan_hor, 1)), dtype=torch.float32, device=device)
    optimizer = make_optimizer(opt.cfg, lower, upper, per=cfg.ctrl_cfg.per)
    prop = cfg.ctrl_cfg.prop_cfg
    log = cfg.ctrl_cfg.log_cfg
    return MPC(
        model=model,
        task=task,
        optimizer=optimizer,
        plan_hor=opt.plan_hor,
        per=cfg.ctrl_cfg.per,
        propagation=PropagationSpec.from_prop_cfg(prop),
        action_low=low,
        action_high=high,
        device=device,
        seed=cfg.seed,
        log_traj_preds=log.log_traj_preds,
        log_particles=log.log_particles,
    )


def _run_episode(
    env, mpc, sim, noise_rng, state: RunState, *, record: bool, seed: int, on_step=None
):
    """env.reset, policy.reset, task_hor steps; the stored action is the noise-free one.

    ``on_step(seconds the controller took)`` after every step (progress display)."""
    if state.env_seeded:
        obs, _ = env.reset()
    else:
        obs, _ = env.reset(seed=seed)  # once; later resets continue the env's own RNG
        state.env_seeded = True
    mpc.reset(env.unwrapped.goal)
    low, high = env.action_space.low, env.action_space.high
    observations, actions, rewards = [obs], [], []
    frames = [env.render()] if record else []
    act_s = 0.0
    for t in range(sim.task_hor):
        t0 = time.perf_counter()
        action = np.asarray(mpc.act(obs, t), dtype=np.float64)
        dt = time.perf_counter() - t0
        act_s += dt
        executed = action
        if sim.stochastic:
            executed = np.clip(
                action + noise_rng.normal(0.0, sim.noise_std, action.shape), low, high
            )
        obs, reward, _, _, _ = env.step(executed)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        if record:
            frames.append(env.render())
        if on_step is not None:
            on_step(dt)
    state.env_steps += sim.task_hor
    episode = Episode(
        observations=np.asarray(observations, dtype=np.float64),  # [T + 1, O]
        actions=np.asarray(actions, dtype=np.float64),  # [T, A]
        rewards=np.asarray(rewards, dtype=np.float64),  # [T]
        seconds_per_action=act_s / sim.task_hor,
    )
    return episode, frames


def _train(cfg: PetsConfig, trainer, data: TrainingSet, rng, state: RunState, mpc) -> None:
    train = cfg.ctrl_cfg.prop_cfg.model_train_cfg
    t0 = time.perf_counter()
    stats = trainer.train(
        data.inputs,
        data.targets,
        epochs=train.epochs,
        batch_size=train.batch_size,
        holdout_ratio=train.holdout_ratio,
        max_logging=train.max_logging,
        rng=rng,
    )
    state.last_train_s = time.perf_counter() - t0
    losses = stats.train_nll or stats.train_mse
    state.last_train = {
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        "holdout_mse": float("nan") if stats.holdout_mse is None else float(stats.holdout_mse),
        "train_mse": float(np.mean(stats.train_mse)) if stats.train_mse else float("nan"),
    }
    state.model_trained = True
    mpc.model_trained = True


def _save_model(cfg: PetsConfig, model, directory: Path) -> None:
    """model.pt (bit-exact, ours) + model.mat / model.nns (the original's format), atomically."""
    from pets_core.models import export_original, save_model

    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / MODEL_PT) as tmp:
        save_model(model, tmp)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".export-") as tmp_dir:
        export_original(model, Path(tmp_dir))
        for produced in Path(tmp_dir).iterdir():
            os.replace(produced, directory / produced.name)


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v2 as imageio

    with atomic_path(path) as tmp:
        imageio.mimwrite(tmp, frames, fps=fps, codec="libx264", format="FFMPEG", macro_block_size=8)


# ----------------------------------------------------------------------------- checkpoint
def _checkpoint(run_dir, state, trainer, mpc, env, train_rng, noise_rng, tracker) -> None:
    save_checkpoint(
        run_dir,
        {
            "run": {
                **{k: v for k, v in dataclasses.asdict(state).items() if k != "episodes"},
                "episodes": [dataclasses.astuple(ep) for ep in state.episodes],
            },
            "trainer": trainer.state_dict(),
            "mpc": mpc.state_dict(),
            "rng": {
                "global": global_rng_state(),
                "train": train_rng.bit_generator.state,
                "noise": noise_rng.bit_generator.state,
                "env": env.unwrapped.np_random.bit_generator.state,
            },
            "mlflow_run_id": tracker.run_id if tracker is not None else None,
        },
    )
    if tracker is not None:
        tracker.log_rows(state.rows)  # after the checkpoint: a resumed run never logs twice


def _restore(ckpt, trainer, mpc, env, train_rng, noise_rng, data: TrainingSet) -> RunState:
    run = dict(ckpt["run"])
    episodes = [Episode(*fields) for fields in run.pop("episodes")]
    state = RunState(**run, episodes=episodes)
    for episode in episodes:
        data.append(episode)
    trainer.load_state_dict(ckpt["trainer"])
    mpc.load_state_dict(ckpt["mpc"])
    mpc.model_trained = state.model_trained
    set_global_rng_state(ckpt["rng"]["global"])
    train_rng.bit_generator.state = ckpt["rng"]["train"]
    noise_rng.bit_generator.state = ckpt["rng"]["noise"]
    env_rng = np.random.Generator(np.random.PCG64())
    env_rng.bit_generator.state = ckpt["rng"]["env"]
    env.unwrapped.np_random = env_rng
    return state
