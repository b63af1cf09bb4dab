"""Factories: config -> model + trainer, optimiser, MPC (the objects the loop and render drive).

Each builder reads one config node and nothing else; ``make_mpc`` is the one place an MPC is
constructed from a config (the runner, render and the optimiser benchmark all use it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pets_core import models
from pets_core.config import CEMCfg, ConfigError, ICEMCfg, MPPICfg, PetsConfig, RandomCfg
from pets_core.envs import TaskSpec
from pets_core.planning import (
    MPC,
    CEMOptimizer,
    ICEMOptimizer,
    MPPIOptimizer,
    PropagationSpec,
    RandomShooting,
    tile_bounds,
)
from pets_core.planning.forward import FastPredictor
from pets_core.planning.optimizer import Optimizer, OptimizerCfg
from pets_core.results.rundir import MODEL_PT


def make_model(cfg: PetsConfig, task: TaskSpec, device: torch.device):
    """(model, trainer) of ``ctrl_cfg.prop_cfg.model_init_cfg``: a fresh ensemble seeded from the
    run's seed, or the one in ``model_dir`` (model.pt, else the original's model.mat / .nns)."""
    init = cfg.ctrl_cfg.prop_cfg.model_init_cfg
    if init.load_model:
        model_dir = Path(init.model_dir or ".")
        if (model_dir / MODEL_PT).exists():
            model = models.load_model(model_dir / MODEL_PT, device)
        else:
            model = models.load_original(model_dir, device)
    else:
        model = models.make_model(
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
    trainer = models.ModelTrainer(
        model, learning_rate=init.learning_rate, graph=use_graphs(cfg, model, device)
    )
    return model, trainer


def use_graphs(cfg: PetsConfig, model, device: torch.device) -> bool:
    """``ctrl_cfg.graph``: always, never, or (auto) exactly when the run is on CUDA. Captured steps
    need the model's MLP layout (every model type here has it)."""
    mode = cfg.ctrl_cfg.graph
    on = device.type == "cuda" if mode == "auto" else mode == "always"
    if on and not FastPredictor.supports(model):
        raise ConfigError(
            f"ctrl_cfg.graph {mode}: the model ({type(model).__name__}) has no MLP layout to "
            "capture; valid: never"
        )
    return on


OPTIMIZERS: dict[type, type[Optimizer]] = {
    CEMCfg: CEMOptimizer,
    ICEMCfg: ICEMOptimizer,
    MPPICfg: MPPIOptimizer,
    RandomCfg: RandomShooting,
}
"""Each optimiser config (``ctrl_cfg.opt_cfg.cfg``) -> the optimiser built from it."""


def make_optimizer(
    opt_cfg: OptimizerCfg,
    lower: torch.Tensor,  # (H, A)
    upper: torch.Tensor,  # (H, A)
    *,
    per: int = 1,
) -> Optimizer:
    """The optimiser of ``ctrl_cfg.opt_cfg.cfg`` over the box ``[lower, upper]``.

    ``per`` (actions executed per plan) tells iCEM how far to shift the last plan's elites.
    """
    return OPTIMIZERS[type(opt_cfg)].from_config(opt_cfg, lower, upper, per=per)


def make_mpc(cfg: PetsConfig, env, task: TaskSpec, model, device: torch.device) -> MPC:
    """The controller of ``ctrl_cfg`` for ``env``'s action box: optimiser + propagation + logs."""
    opt = cfg.ctrl_cfg.opt_cfg
    low = np.asarray(env.action_space.low, dtype=np.float64)
    high = np.asarray(env.action_space.high, dtype=np.float64)
    lower, upper = tile_bounds(low, high, opt.plan_hor, device)  # (H, A) each
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
        precision=cfg.ctrl_cfg.precision,
        graph=use_graphs(cfg, model, device),
        log_traj_preds=log.log_traj_preds,
        log_particles=log.log_particles,
    )
