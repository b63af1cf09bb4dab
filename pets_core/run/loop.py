"""The PETS experiment loop (§loop, ``MBExperiment.run_experiment``), resumable.

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
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from pets_core.config import PetsConfig, fingerprint
from pets_core.envs import get_task, make_env
from pets_core.results.artifacts import save_model, write_video
from pets_core.results.files import write_json
from pets_core.results.identity import read_run_info
from pets_core.results.logs import write_logs_mat, write_predictions_mat
from pets_core.results.metrics import (
    best_so_far,
    env_steps,
    episodes_per_iteration,
    write_metrics_csv,
)
from pets_core.results.reader import read_checkpoint
from pets_core.results.rundir import DONE_JSON, RunDir
from pets_core.results.tracking import Tracker
from pets_core.run.builders import make_model, make_mpc
from pets_core.run.checkpoint import RunState, restore_run_state, save_run_state
from pets_core.run.data import Episode, TrainingSet
from pets_core.run.device import seed_everything
from pets_core.run.failures import Diverged
from pets_core.run.progress import PLAIN_EVERY_S, Progress
from pets_core.seeding import RunSeeds


def run_experiment(
    cfg: PetsConfig,
    run_dir: Path,
    *,
    device: torch.device,
    tracker: Tracker | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    progress_every_s: float = PLAIN_EVERY_S,
    status: IO[str] | None = None,
) -> dict[str, Any]:
    """Run (or resume) one PETS experiment in ``run_dir``; returns the done.json content.

    ``progress``: live progress (a bar on a terminal, a line every ``progress_every_s`` seconds
    in a log file); the one-line summary of each iteration is printed either way. ``status``: a
    stream that also gets each iteration as one line naming the run (the workflow's terminal).
    """
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
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
    model, trainer = make_model(cfg, task, device)
    mpc = make_mpc(cfg, env, task, model, device)
    data = TrainingSet(task)
    state = RunState()

    for stale in run.stale_temp_files():
        stale.unlink(missing_ok=True)
    ckpt = read_checkpoint(run_dir)  # a damaged one: DamagedFile, naming it and the fix
    if ckpt is not None:
        # a checkpoint that ends a shorter run has no training after its last iteration (step 2g)
        ended = 0 < ckpt["run"]["iteration"] and not ckpt["run"].get("last_train")
        ran = dataclasses.replace(loop, ntrain_iters=ckpt["run"]["iteration"]) if ended else loop
        replay_state = RunState()  # a slim checkpoint's replayed trainings report nothing
        state = restore_run_state(
            ckpt,
            trainer,
            mpc,
            env,
            train_rng,
            noise_rng,
            data,
            retrain=lambda d, rng: train(cfg, trainer, d, rng, replay_state, mpc, iteration=None),
            schedule=lambda s: training_schedule(ran, s),
        )
        echo(f"resuming {run_dir} after iteration {state.iteration} of {loop.ntrain_iters}")
        if "trainer" not in ckpt:
            exact = state.replays[-1]["exact"]
            echo(
                "slim checkpoint: model training replayed on the logged episodes; "
                + (
                    "the trainer equals the one that ran, bit for bit"
                    if exact
                    else "the trainer differs from the one that ran in rounding (another CPU?); "
                    "the run goes on from the replayed one (done.json: replays)"
                )
            )
        if ended and state.iteration < loop.ntrain_iters:
            # the checkpoint ends a shorter run, which skips training after its last iteration
            # (step 2g): train now, as a run of ntrain_iters trials did then (same data, RNGs)
            train(cfg, trainer, data, train_rng, state, mpc, iteration=state.iteration)
    else:
        # 1. initial rollouts with the untrained controller: uniform random actions
        state.model_trained = cfg.ctrl_cfg.prop_cfg.model_pretrained
        mpc.model_trained = state.model_trained
        t0 = time.perf_counter()
        for _ in range(loop.ninit_rollouts):
            episode, _ = run_episode(env, mpc, sim, noise_rng, state, record=False, seed=seeds.env)
            state.episodes.append(episode)
            data.append(episode)
        mpc.pop_prediction_log()  # random actions: nothing planned
        if loop.ninit_rollouts > 0:
            train(cfg, trainer, data, train_rng, state, mpc, iteration=0)
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
        status=status,
    )
    shown.last_train_s = state.last_train_s
    for i in range(state.iteration + 1, loop.ntrain_iters + 1):
        t0 = time.perf_counter()
        shown.start_iteration(i)
        iter_dir = run.iter_dir(i)
        iter_dir.mkdir(exist_ok=True)
        # 2b. nrecord recorded episodes, then the rest up to max(neval, nrollouts_per_iter)
        episodes = []
        nrecord = elog.nrecord if records(i, loop.ntrain_iters, elog.record_iters) else 0
        for j in range(episodes_per_iter):
            episode, frames = run_episode(
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
                write_video(run.video(i, j), frames, fps=1.0 / env.unwrapped.dt)
        # 2c. returns of the first neval; the first nrollouts_per_iter become data and logs
        state.returns.extend(ep.ret for ep in episodes[: elog.neval])
        for episode in episodes[: loop.nrollouts_per_iter]:
            state.episodes.append(episode)
            data.append(episode)
        # 2d-e. the model that acted, prediction logs, logs.mat, metrics
        save_model(model, iter_dir if cfg.ctrl_cfg.log_cfg.save_all_models else run_dir)
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
            train(cfg, trainer, data, train_rng, state, mpc, iteration=i)
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
        "settings_fingerprint": fingerprint(cfg),
        **({"replays": state.replays} if state.replays else {}),
    }
    if tracker is not None:
        tracker.log_rows(state.rows)  # anything a kill left unlogged
        tracker.finish(run.artifacts())
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
def records(i: int, ntrain_iters: int, record_iters: tuple[int, ...]) -> bool:
    """Does iteration i (1-based) record its first nrecord episodes? () = every iteration."""
    return not record_iters or any(
        i == (r if r > 0 else ntrain_iters + 1 + r) for r in record_iters
    )


def run_episode(
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
    for _ in range(sim.task_hor):
        t0 = time.perf_counter()
        action = np.asarray(mpc.act(obs), dtype=np.float64)
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
    episode = Episode(
        observations=np.asarray(observations, dtype=np.float64),  # [T + 1, O]
        actions=np.asarray(actions, dtype=np.float64),  # [T, A]
        rewards=np.asarray(rewards, dtype=np.float64),  # [T]
        seconds_per_action=act_s / sim.task_hor,
    )
    return episode, frames


def training_schedule(loop, state: RunState) -> list[int]:
    """Episodes the model had trained on at each training call up to ``state.iteration``: after
    the initial rollouts (if any), then after every iteration but the last (step 2g)."""
    n0, per = loop.ninit_rollouts, loop.nrollouts_per_iter
    sizes = [n0] if n0 > 0 else []
    return sizes + [n0 + i * per for i in range(1, state.iteration + 1) if i < loop.ntrain_iters]


def train(
    cfg: PetsConfig, trainer, data: TrainingSet, rng, state: RunState, mpc, *, iteration: int | None
) -> None:
    """Train on all data (after iteration ``iteration``'s episodes; 0: the random ones; None: a
    slim checkpoint's replayed training)."""
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
    check_finite(trainer.model, losses, iteration)
    state.model_trained = True
    mpc.model_trained = True


def check_finite(model: torch.nn.Module, losses: list[float], iteration: int | None) -> None:
    """Raise Diverged if a training loss (of the epochs just run) or any weight is nan / inf."""
    tensors = model.state_dict()
    bad = [name for name, t in tensors.items() if not bool(torch.isfinite(t).all())]
    loss = float(np.mean(losses)) if losses else float("nan")
    if bad or (losses and not np.isfinite(losses).all()):
        if iteration is None:
            when, kept = "the replayed training of a slim checkpoint", "checkpoint.pt is unchanged"
        elif iteration == 0:
            when, kept = "the training on the initial random episodes", "no checkpoint was written"
        else:
            when = f"the training after iteration {iteration}"
            kept = f"checkpoint.pt keeps iteration {iteration - 1}"
        raise Diverged(
            f"the model diverged in {when}: train loss {loss}, {len(bad)} of {len(tensors)} "
            f"weight tensors non-finite; {kept}, no done.json. Lower "
            "ctrl_cfg.prop_cfg.model_init_cfg.learning_rate (or check the weight decays)"
        )


def _checkpoint(run_dir, state, trainer, mpc, env, train_rng, noise_rng, tracker) -> None:
    save_run_state(
        run_dir,
        state,
        trainer,
        mpc,
        env,
        train_rng,
        noise_rng,
        mlflow_run_id=tracker.run_id if tracker is not None else None,
    )
    if tracker is not None:
        tracker.log_rows(state.rows)  # after the checkpoint: a resumed run never logs twice
