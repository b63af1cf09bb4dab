"""What a run writes (§loop steps 2c-2f, the completion marker), one seed at a time.

Per iteration: the returns of the first ``neval`` episodes, the first ``nrollouts_per_iter`` as
data and logs, videos of the recorded ones, the model that acted (model.pt / .mat / .nns),
the prediction logs, logs.mat and metrics.csv. At the end done.json, written last. The
checkpoint and the MLflow rows are :meth:`SeedRun.save_checkpoint`. Every file is written
atomically (pets_core.results.files).
"""

from __future__ import annotations

import numpy as np
import torch

from pets_core.config import fingerprint
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
from pets_core.results.rundir import DONE_JSON
from pets_core.run.data import Episode
from pets_core.run.seed_run import SeedRun


def record_iteration(
    seed_run: SeedRun,
    i: int,
    episodes: list[Episode],
    videos: list[list[np.ndarray]],
    acting_s: float,
) -> dict[str, float]:
    """Log iteration ``i``'s episodes of one seed (steps 2c-2f); returns its metrics row.

    ``videos``: the frames of the first len(videos) episodes; ``acting_s``: the seed's share of
    the iteration's wall time so far."""
    cfg, state, run = seed_run.cfg, seed_run.state, seed_run.run
    loop, elog = cfg.exp_cfg.exp_cfg, cfg.exp_cfg.log_cfg
    iter_dir = run.iter_dir(i)
    iter_dir.mkdir(exist_ok=True)
    for j, frames in enumerate(videos):
        write_video(run.video(i, j), frames, fps=1.0 / seed_run.env.unwrapped.dt)
    # 2c. returns of the first neval; the first nrollouts_per_iter become data and logs
    state.returns.extend(ep.ret for ep in episodes[: elog.neval])
    for episode in episodes[: loop.nrollouts_per_iter]:
        state.episodes.append(episode)
        seed_run.data.append(episode)
    # 2d-e. the model that acted, prediction logs, logs.mat, metrics
    save_model(seed_run.model, iter_dir if cfg.ctrl_cfg.log_cfg.save_all_models else run.path)
    write_predictions_mat(iter_dir, seed_run.mpc.pop_prediction_log())
    write_logs_mat(
        run.path,
        [ep.observations for ep in state.episodes],
        [ep.actions for ep in state.episodes],
        [ep.rewards for ep in state.episodes],
        state.returns,
    )
    per_iter = episodes_per_iteration(
        nrecord=elog.nrecord, neval=elog.neval, nrollouts_per_iter=loop.nrollouts_per_iter
    )
    row = {
        "iteration": i,
        "env_steps": env_steps(
            i,
            task_hor=cfg.exp_cfg.sim_cfg.task_hor,
            ninit_rollouts=loop.ninit_rollouts,
            episodes_per_iter=per_iter,
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
    write_metrics_csv(run.path, state.rows)
    if not any(iter_dir.iterdir()):  # 2f
        iter_dir.rmdir()
    return row


def record_done(seed_run: SeedRun, cohort: list[int]) -> dict:
    """done.json, the completion marker, last and atomically (after MLflow's final rows).

    ``cohort``: the seeds that ran in lockstep with this one (itself included); a cohort seed's
    ``wall_s`` and ``plan_s_per_action`` are its share (the cohort's time / its size)."""
    cfg, state = seed_run.cfg, seed_run.state
    done = {
        "env": cfg.env,
        "variant": cfg.variant,
        "seed": cfg.seed,
        "iterations": state.iteration,
        "final_best_so_far": state.best_so_far,
        "wall_s": state.wall_s,
        "device": device_name(seed_run.device),
        "run_uid": read_run_info(seed_run.run.path)["run_uid"],
        "settings_fingerprint": fingerprint(cfg),
        **({"cohort": cohort} if len(cohort) > 1 else {}),
        **({"replays": state.replays} if state.replays else {}),
    }
    if seed_run.tracker is not None:
        seed_run.tracker.log_rows(state.rows)  # anything a kill left unlogged
        seed_run.tracker.finish(seed_run.run.artifacts())
    write_json(seed_run.run.path / DONE_JSON, done)
    return done


def device_name(device: torch.device) -> str:
    """done.json's "device": the torch device the run used, "cpu" or "cuda:<index>"."""
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return str(device)
