"""The PETS experiment loop (§loop, ``MBExperiment.run_experiment``) for a cohort of seeds.

1. ``ninit_rollouts`` random-action episodes; train on them.
2. For i = 1..ntrain_iters: run max(nrecord, neval, nrollouts_per_iter) MPC episodes; record
   them (pets_core.run.recorder); train on all data (not after the last iteration); checkpoint.

A cohort is S seeds of one setting (pets_core.run.seed_run), run in lockstep: their envs step
together, one batched plan chooses all S actions (pets_core.planning.cohort) and one batched
training fits all S models (pets_core.models.cohort); each seed's numbers equal its single run's.
S = 1 is the single run. Seeds that resume from different iterations catch up first: each pass
advances the seeds furthest behind. There is no separate evaluation: the returns are those of
the MPC episodes that become training data.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np

from pets_core.models.cohort import train_cohort
from pets_core.planning.cohort import CohortMPC
from pets_core.run.data import Episode
from pets_core.run.device import seed_everything
from pets_core.run.failures import Diverged
from pets_core.run.progress import PLAIN_EVERY_S, Progress
from pets_core.run.recorder import record_done, record_iteration
from pets_core.run.seed_run import SeedRun


def run_cohort(
    runs: Sequence[SeedRun],
    *,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    progress_every_s: float = PLAIN_EVERY_S,
    status: IO[str] | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) the cohort to ``ntrain_iters``; returns each finished seed's done.json.

    A seed whose model diverges stops there (its checkpoint kept, no done.json, its MLflow run
    FAILED); the others go on, and :class:`Diverged` naming every such seed is raised at the end.
    """
    cfg = runs[0].cfg
    loop, sim = cfg.exp_cfg.exp_cfg, cfg.exp_cfg.sim_cfg
    t_session = time.perf_counter()
    seed_everything(runs[0].seeds.fallback)  # third-party code's global RNGs (the first seed's)
    for run in runs:
        if run.checkpoint is not None:
            resume(run, echo)
    failed: dict[int, str] = {}  # seed -> why it stopped
    live = list(runs)
    fresh = [run for run in live if run.checkpoint is None]
    if fresh:  # 1. random-action episodes (the untrained controller), then the first training
        t0 = time.perf_counter()
        for run in fresh:
            run.state.model_trained = run.mpc.model_trained = cfg.ctrl_cfg.prop_cfg.model_pretrained
        for _ in range(loop.ninit_rollouts):
            for run, (episode, _) in zip(fresh, rollouts(fresh, record=False), strict=True):
                run.state.episodes.append(episode)
                run.data.append(episode)
        for run in fresh:
            run.mpc.pop_prediction_log()  # random actions: nothing planned
        if loop.ninit_rollouts > 0:
            failed |= train(fresh, iteration=0)
        for run in fresh:
            run.state.wall_s += (time.perf_counter() - t0) / len(fresh)
            if run.cfg.seed not in failed:
                run.save_checkpoint()
        live = [run for run in live if run.cfg.seed not in failed]

    shown = Progress(
        label=_label(live) if live else "",
        ntrain_iters=loop.ntrain_iters,
        steps_per_iter=episodes_per_iteration(cfg) * sim.task_hor,
        loss_name="train nll" if cfg.parsed_variant.is_probabilistic_net else "train mse",
        enabled=progress,
        every_s=progress_every_s,
        status=status,
    )
    shown.last_train_s = max((run.state.last_train_s for run in live), default=0.0)
    while behind := [run for run in live if run.state.iteration < loop.ntrain_iters]:
        i = 1 + min(run.state.iteration for run in behind)  # the seeds furthest behind go first
        group = [run for run in behind if run.state.iteration == i - 1]
        failed |= iterate(group, i, shown)
        live = [run for run in live if run.cfg.seed not in failed]
    shown.close()
    for run in runs:
        run.env.close()
    cohort = [run.cfg.seed for run in runs]
    done = [record_done(run, cohort) for run in live]
    for d in done:
        echo(
            f"done: {d['env']} {d['variant']} seed {d['seed']} best-so-far "
            f"{d['final_best_so_far']:.2f} after {d['iterations']} iterations "
            f"({time.perf_counter() - t_session:.1f} s this session)"
        )
    if failed:
        raise Diverged(
            "; ".join(failed.values())
            if len(runs) == 1
            else "; ".join(f"seed {seed}: {why}" for seed, why in failed.items())
        )
    return done


def iterate(group: list[SeedRun], i: int, shown: Progress) -> dict[int, str]:
    """Iteration ``i`` (step 2) for seeds that all completed ``i - 1``; returns the seeds whose
    model diverged (seed -> why)."""
    cfg = group[0].cfg
    loop, elog = cfg.exp_cfg.exp_cfg, cfg.exp_cfg.log_cfg
    t0 = time.perf_counter()
    shown.start_iteration(i)
    # 2b. nrecord recorded episodes, then the rest up to max(neval, nrollouts_per_iter)
    nrecord = elog.nrecord if records(i, loop.ntrain_iters, elog.record_iters) else 0
    episodes: list[list] = [[] for _ in group]
    videos: list[list] = [[] for _ in group]
    for j in range(episodes_per_iteration(cfg)):
        for k, (episode, frames) in enumerate(rollouts(group, j < nrecord, on_step=shown.step)):
            episodes[k].append(episode)
            if frames:
                videos[k].append(frames)
    acting_s = (time.perf_counter() - t0) / len(group)
    rows = [
        record_iteration(run, i, eps, vids, acting_s)
        for run, eps, vids in zip(group, episodes, videos, strict=True)
    ]
    # 2g. train on all data, except after the last iteration
    for run in group:
        run.state.last_train, run.state.last_train_s = {}, 0.0
    failed: dict[int, str] = {}
    if i < loop.ntrain_iters:
        shown.training(len(group[0].data))
        failed = train(group, iteration=i)
    for run, row in zip(group, rows, strict=True):
        if run.cfg.seed in failed:
            continue
        run.state.iteration = i
        run.state.wall_s += (time.perf_counter() - t0) / len(group)
        run.save_checkpoint()
        shown.end_iteration(
            label=run.label if len(group) > 1 else None,
            ret=row["return"],
            best=row["best_so_far"],
            train_loss=row["train_loss"],
            s_per_action=row["plan_s_per_action"],
            train_s=run.state.last_train_s,
        )
    return failed


def resume(run: SeedRun, echo: Callable[[str], None]) -> None:
    """Restore a seed from its checkpoint (a slim one replays its trainings)."""
    loop = run.cfg.exp_cfg.exp_cfg
    ckpt = run.checkpoint
    # a checkpoint that ends a shorter run has no training after its last iteration (step 2g)
    ended = 0 < ckpt["run"]["iteration"] and not ckpt["run"].get("last_train")
    ran = dataclasses.replace(loop, ntrain_iters=ckpt["run"]["iteration"]) if ended else loop

    def retrain(data, rng) -> None:
        train_one(run, data, rng, iteration=None, replay=True)

    run.restore(retrain, schedule=lambda s: training_schedule(ran, s))
    echo(f"resuming {run.run.path} after iteration {run.state.iteration} of {loop.ntrain_iters}")
    if "trainer" not in ckpt:
        echo(
            "slim checkpoint: model training replayed on the logged episodes; "
            + (
                "the trainer equals the one that ran, bit for bit"
                if run.state.replays[-1]["exact"]
                else "the trainer differs from the one that ran in rounding (another CPU?); "
                "the run goes on from the replayed one (done.json: replays)"
            )
        )
    if ended and run.state.iteration < loop.ntrain_iters:
        # the checkpoint ends a shorter run, which skips training after its last iteration
        # (step 2g): train now, as a run of ntrain_iters trials did then (same data, RNGs)
        train_one(run, run.data, run.train_rng, iteration=run.state.iteration)


# ----------------------------------------------------------------------------- building blocks
def episodes_per_iteration(cfg) -> int:
    """max(nrecord, neval, nrollouts_per_iter): the MPC episodes of one iteration (step 2b)."""
    elog, loop = cfg.exp_cfg.log_cfg, cfg.exp_cfg.exp_cfg
    return max(elog.nrecord, elog.neval, loop.nrollouts_per_iter)


def records(i: int, ntrain_iters: int, record_iters: tuple[int, ...]) -> bool:
    """Does iteration i (1-based) record its first nrecord episodes? () = every iteration."""
    return not record_iters or any(
        i == (r if r > 0 else ntrain_iters + 1 + r) for r in record_iters
    )


def rollouts(group: Sequence[SeedRun], record: bool, on_step=None) -> list[tuple[Any, list]]:
    """One episode per seed, in lockstep: [(Episode, frames)] in the group's order."""
    return run_episodes(
        [run.env for run in group],
        CohortMPC([run.mpc for run in group]),
        group[0].cfg.exp_cfg.sim_cfg,
        [run.noise_rng for run in group],
        [run.state for run in group],
        record=record,
        seeds=[run.seeds.env for run in group],
        on_step=on_step,
    )


def run_episodes(envs, planner, sim, noise_rngs, states, *, record: bool, seeds, on_step=None):
    """env.reset, policy.reset, task_hor steps, for every seed at once; the stored action is the
    noise-free one. ``planner.act(observations)`` plans all seeds' actions in one call.

    ``on_step(seconds the planner took per seed)`` after every step (progress display)."""
    S = len(envs)
    obs = []
    for env, state, seed in zip(envs, states, seeds, strict=True):
        if state.env_seeded:
            obs.append(env.reset()[0])
        else:
            obs.append(env.reset(seed=seed)[0])  # once; later resets continue the env's own RNG
            state.env_seeded = True
    for env, mpc in zip(envs, planner.mpcs, strict=True):
        mpc.reset(env.unwrapped.goal)
    observations = [[o] for o in obs]  # per seed: [T + 1] of (O,)
    actions: list[list] = [[] for _ in range(S)]
    rewards: list[list] = [[] for _ in range(S)]
    frames = [[env.render()] if record else [] for env in envs]
    act_s = 0.0
    for _ in range(sim.task_hor):
        t0 = time.perf_counter()
        chosen = [np.asarray(a, dtype=np.float64) for a in planner.act(obs)]
        dt = (time.perf_counter() - t0) / S  # each seed's share of the batched plan
        act_s += dt
        for s, (env, action) in enumerate(zip(envs, chosen, strict=True)):
            executed = action
            if sim.stochastic:
                low, high = env.action_space.low, env.action_space.high
                noise = noise_rngs[s].normal(0.0, sim.noise_std, action.shape)
                executed = np.clip(action + noise, low, high)
            obs[s], reward, _, _, _ = env.step(executed)
            observations[s].append(obs[s])
            actions[s].append(action)
            rewards[s].append(reward)
            if record:
                frames[s].append(env.render())
        if on_step is not None:
            on_step(dt)
    return [
        (
            Episode(
                observations=np.asarray(observations[s], dtype=np.float64),  # [T + 1, O]
                actions=np.asarray(actions[s], dtype=np.float64),  # [T, A]
                rewards=np.asarray(rewards[s], dtype=np.float64),  # [T]
                seconds_per_action=act_s / sim.task_hor,
            ),
            frames[s],
        )
        for s in range(S)
    ]


def run_episode(env, mpc, sim, noise_rng, state, *, record: bool, seed: int, on_step=None):
    """One seed's episode (``run_episodes`` with S = 1): ``(Episode, frames)``."""
    return run_episodes(
        [env],
        CohortMPC([mpc]),
        sim,
        [noise_rng],
        [state],
        record=record,
        seeds=[seed],
        on_step=on_step,
    )[0]


def training_schedule(loop, state) -> list[int]:
    """Episodes the model had trained on at each training call up to ``state.iteration``: after
    the initial rollouts (if any), then after every iteration but the last (step 2g)."""
    n0, per = loop.ninit_rollouts, loop.nrollouts_per_iter
    sizes = [n0] if n0 > 0 else []
    return sizes + [n0 + i * per for i in range(1, state.iteration + 1) if i < loop.ntrain_iters]


def train(group: Sequence[SeedRun], *, iteration: int) -> dict[int, str]:
    """One batched training of every seed's model on all its data (after iteration
    ``iteration``'s episodes; 0: the random ones). Returns the seeds that diverged (seed ->
    why); their MLflow runs are closed FAILED."""
    train_cfg = group[0].cfg.ctrl_cfg.prop_cfg.model_train_cfg
    t0 = time.perf_counter()
    all_stats = train_cohort(
        [run.trainer for run in group],
        [(run.data.inputs, run.data.targets) for run in group],
        [run.train_rng for run in group],
        epochs=train_cfg.epochs,
        batch_size=train_cfg.batch_size,
        holdout_ratio=train_cfg.holdout_ratio,
        max_logging=train_cfg.max_logging,
    )
    seconds = (time.perf_counter() - t0) / len(group)
    failed = {}
    for run, stats in zip(group, all_stats, strict=True):
        try:
            report(run, stats, seconds, iteration)
        except Diverged as err:
            if run.tracker is not None:
                run.tracker.finish([], status="FAILED")
            failed[run.cfg.seed] = str(err)
    return failed


def train_one(run: SeedRun, data, rng, *, iteration: int | None, replay: bool = False) -> None:
    """One seed's training alone (resume: a slim checkpoint's replay, an extended run's
    missing training); raises Diverged."""
    train_cfg = run.cfg.ctrl_cfg.prop_cfg.model_train_cfg
    t0 = time.perf_counter()
    stats = run.trainer.train(
        data.inputs,
        data.targets,
        epochs=train_cfg.epochs,
        batch_size=train_cfg.batch_size,
        holdout_ratio=train_cfg.holdout_ratio,
        max_logging=train_cfg.max_logging,
        rng=rng,
    )
    seconds = time.perf_counter() - t0
    if not replay:
        report(run, stats, seconds, iteration)
    else:  # a slim checkpoint's replayed trainings report nothing
        check_finite(run.trainer.model, stats.train_nll or stats.train_mse, iteration)
        run.state.model_trained = run.mpc.model_trained = True


def report(run: SeedRun, stats, seconds: float, iteration: int | None) -> None:
    """A training's numbers into the seed's state; Diverged if a loss or weight is not finite."""
    losses = stats.train_nll or stats.train_mse
    run.state.last_train_s = seconds
    run.state.last_train = {
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        "holdout_mse": float("nan") if stats.holdout_mse is None else float(stats.holdout_mse),
        "train_mse": float(np.mean(stats.train_mse)) if stats.train_mse else float("nan"),
    }
    check_finite(run.trainer.model, losses, iteration)
    run.state.model_trained = run.mpc.model_trained = True


def check_finite(model, losses: list[float], iteration: int | None) -> None:
    """Raise Diverged if a training loss (of the epochs just run) or any weight is nan / inf."""
    import torch

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


def _label(runs: Sequence[SeedRun]) -> str:
    """``cartpole PE-TSinf-CEM seed 2``, or ``... seeds 1,2,3`` for a cohort."""
    if len(runs) == 1:
        return runs[0].label
    cfg = runs[0].cfg
    return f"{cfg.env} {cfg.variant} seeds {','.join(str(run.cfg.seed) for run in runs)}"
