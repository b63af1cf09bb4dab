"""One seed of a cohort: every object that makes it a run of its own.

A cohort runs S seeds of one (env, variant, settings) in one process, in lockstep
(:mod:`pets_core.run.loop`). Each seed keeps exactly what a single run has: its env, its data, its
RNG streams, its model + trainer (weights, normaliser, Adam state), its MPC (warm start, action
buffer, generator), its :class:`RunState`, its run directory and MLflow run. These per-seed
objects are the truth: the batched training (:mod:`pets_core.models.cohort`) and planning
(:mod:`pets_core.planning.cohort`) read them, stack what they need and write the results back,
so checkpoints, model files and resume read one seed exactly as they read a single run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pets_core.config import PetsConfig
from pets_core.envs import get_task, make_env
from pets_core.results.reader import read_checkpoint
from pets_core.results.rundir import RunDir
from pets_core.results.tracking import Tracker
from pets_core.run.builders import make_model, make_mpc
from pets_core.run.checkpoint import RunState, restore_run_state, save_run_state
from pets_core.run.data import TrainingSet
from pets_core.seeding import RunSeeds


@dataclasses.dataclass
class SeedRun:
    """One seed's run: config, directory, env, data, RNG streams, model, trainer, MPC, state."""

    cfg: PetsConfig
    run: RunDir
    device: torch.device
    seeds: RunSeeds
    env: object
    task: object
    model: torch.nn.Module
    trainer: object
    mpc: object
    data: TrainingSet
    train_rng: np.random.Generator
    """Bootstraps, holdout split, shuffles."""
    noise_rng: np.random.Generator
    """``sim_cfg.stochastic`` action noise."""
    state: RunState
    tracker: Tracker | None = None
    checkpoint: dict | None = None
    """The checkpoint this run was restored from (None: a fresh run)."""

    @classmethod
    def open(
        cls, cfg: PetsConfig, run_dir: Path, *, device: torch.device, tracker: Tracker | None
    ) -> SeedRun:
        """Build the seed's objects from ``cfg``; a run with a checkpoint is restored by
        :func:`restore` (the loop calls it: restoring a slim checkpoint trains)."""
        run = RunDir(Path(run_dir))
        seeds = RunSeeds.from_seed(cfg.seed)  # independent streams; MPC and model derive theirs
        if cfg.exp_cfg.log_cfg.nrecord > 0:
            os.environ.setdefault("MUJOCO_GL", "egl")  # headless; read when the renderer is made
        env = make_env(cfg.env, render_mode="rgb_array" if cfg.exp_cfg.log_cfg.nrecord else None)
        task = get_task(cfg.env)
        model, trainer = make_model(cfg, task, device)
        for stale in run.stale_temp_files():
            stale.unlink(missing_ok=True)
        return cls(
            cfg=cfg,
            run=run,
            device=device,
            seeds=seeds,
            env=env,
            task=task,
            model=model,
            trainer=trainer,
            mpc=make_mpc(cfg, env, task, model, device),
            data=TrainingSet(task),
            train_rng=np.random.default_rng(seeds.train),
            noise_rng=np.random.default_rng(seeds.noise),
            state=RunState(),
            tracker=tracker,
            checkpoint=read_checkpoint(run.path),  # a damaged one: DamagedFile, naming the fix
        )

    @property
    def label(self) -> str:
        """How progress lines name the run: ``cartpole PE-TSinf-CEM seed 2``."""
        return f"{self.cfg.env} {self.cfg.variant} seed {self.cfg.seed}"

    def restore(self, retrain: Callable, schedule: Callable) -> None:
        """Put the checkpoint back (a slim one replays its trainings: ``retrain(data, rng)``
        once per ``schedule(state)`` entry)."""
        self.state = restore_run_state(
            self.checkpoint,
            self.trainer,
            self.mpc,
            self.env,
            self.train_rng,
            self.noise_rng,
            self.data,
            retrain=retrain,
            schedule=schedule,
        )

    def save_checkpoint(self) -> None:
        """checkpoint.pt, atomically; then the MLflow rows (a resumed run never logs twice)."""
        save_run_state(
            self.run.path,
            self.state,
            self.trainer,
            self.mpc,
            self.env,
            self.train_rng,
            self.noise_rng,
            mlflow_run_id=self.tracker.run_id if self.tracker is not None else None,
        )
        if self.tracker is not None:
            self.tracker.log_rows(self.state.rows)
