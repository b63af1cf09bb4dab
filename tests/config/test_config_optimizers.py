"""opt-type iCEM / MPPI in the config tree: defaults, -o, validation, overrides, round trip."""

import pytest
import torch

from pets_core.config import (
    ConfigError,
    ICEMCfg,
    MPPICfg,
    build,
    env_names,
    load_config,
    read_only_reason,
    to_dict,
)
from pets_core.config.variants import parse_variant
from pets_core.planning import CEMOptimizer, ICEMOptimizer, MPPIOptimizer, RandomShooting
from pets_core.run.builders import make_optimizer


@pytest.mark.parametrize("env", env_names())
def test_icem_and_mppi_defaults_per_env(env):
    cem = load_config(env).ctrl_cfg.opt_cfg.cfg
    icem = load_config(env, [("opt-type", "iCEM")])
    assert icem.variant == "PE-TSinf-iCEM" and icem.ctrl_cfg.opt_cfg.mode == "iCEM"
    # Pinneri et al. 2020: K = 10, 3 iterations, alpha 0.1, gamma 1.25, xi 0.3; beta per task
    # (their half-cheetah running: 0.25; 2.0 elsewhere here)
    assert icem.ctrl_cfg.opt_cfg.cfg == ICEMCfg(
        popsize=cem.popsize,
        num_elites=10,
        max_iters=3,
        alpha=0.1,
        noise_beta=0.25 if env == "halfcheetah" else 2.0,
        pop_decay=1.25,
        keep_elites_frac=0.3,
    )
    mppi = load_config(env, [("opt-type", "MPPI")])
    assert mppi.variant == "PE-TSinf-MPPI"
    assert mppi.ctrl_cfg.opt_cfg.cfg == MPPICfg(
        popsize=cem.popsize, num_iters=5, temperature=1.0, sigma=1.0, smoothing=0.0
    )


def test_overrides_address_the_chosen_optimisers_leaves():
    cfg = load_config(
        "cartpole",
        [("opt-type", "iCEM")],
        [("ctrl_cfg.opt_cfg.cfg.noise_beta", "3.5"), ("ctrl_cfg.opt_cfg.cfg.popsize", "64")],
    )
    assert (cfg.ctrl_cfg.opt_cfg.cfg.noise_beta, cfg.ctrl_cfg.opt_cfg.cfg.popsize) == (3.5, 64)
    cfg = load_config(
        "cartpole", [("opt-type", "MPPI")], [("ctrl_cfg.opt_cfg.cfg.temperature", "0.25")]
    )
    assert cfg.ctrl_cfg.opt_cfg.cfg.temperature == 0.25
    with pytest.raises(ConfigError, match=r"'num_elites' is not in ctrl_cfg\.opt_cfg\.cfg"):
        load_config("cartpole", [("opt-type", "MPPI")], [("ctrl_cfg.opt_cfg.cfg.num_elites", "3")])


@pytest.mark.parametrize(
    ("opt", "path", "value", "message"),
    [
        ("iCEM", "num_elites", "500", "num_elites must be in 1..popsize=400 (got 500)"),
        ("iCEM", "pop_decay", "0.5", "pop_decay must be >= 1 (got 0.5)"),
        ("iCEM", "noise_beta", "-1", "noise_beta must be >= 0 (got -1.0)"),
        ("iCEM", "keep_elites_frac", "1.5", "keep_elites_frac must be in [0, 1] (got 1.5)"),
        ("iCEM", "alpha", "1", "alpha must be in [0, 1) (got 1.0)"),
        ("iCEM", "max_iters", "0", "max_iters must be >= 1 (got 0)"),
        ("MPPI", "temperature", "0", "temperature must be > 0 (got 0.0)"),
        ("MPPI", "sigma", "-2", "sigma must be > 0 (got -2.0)"),
        ("MPPI", "smoothing", "1", "smoothing must be in [0, 1) (got 1.0)"),
        ("MPPI", "num_iters", "0", "num_iters must be >= 1 (got 0)"),
        ("MPPI", "popsize", "0", "popsize must be > 0 (got 0)"),
    ],
)
def test_bad_optimiser_values_are_refused_naming_the_leaf(opt, path, value, message):
    with pytest.raises(ConfigError) as err:
        load_config("cartpole", [("opt-type", opt)], [(f"ctrl_cfg.opt_cfg.cfg.{path}", value)])
    assert str(err.value) == f"ctrl_cfg.opt_cfg.cfg.{message}"


def test_another_optimisers_leaf_is_read_only_so_one_override_list_serves_the_matrix():
    mppi, cem = parse_variant("PE-TSinf-MPPI"), parse_variant("PE-TSinf-CEM")
    assert read_only_reason("ctrl_cfg.opt_cfg.cfg.num_elites", mppi) == (
        "opt-type MPPI has no num_elites (it belongs to CEM, iCEM)"
    )
    assert read_only_reason("ctrl_cfg.opt_cfg.cfg.num_elites", cem) is None
    assert read_only_reason("ctrl_cfg.opt_cfg.cfg.popsize", mppi) is None  # every optimiser's
    assert "belongs to MPPI" in read_only_reason("ctrl_cfg.opt_cfg.cfg.temperature", cem)


@pytest.mark.parametrize("opt", ["CEM", "Random", "iCEM", "MPPI"])
def test_saved_config_round_trips_and_builds_its_optimiser(opt):
    cfg = load_config("reacher", [("opt-type", opt)], [("ctrl_cfg.per", "2")])
    assert build(to_dict(cfg)) == cfg
    lower, upper = -torch.ones(25, 3), torch.ones(25, 3)
    optimizer = make_optimizer(cfg.ctrl_cfg.opt_cfg.cfg, lower, upper, per=cfg.ctrl_cfg.per)
    kind = {
        "CEM": CEMOptimizer,
        "Random": RandomShooting,
        "iCEM": ICEMOptimizer,
        "MPPI": MPPIOptimizer,
    }[opt]
    assert type(optimizer) is kind and optimizer.popsize == cfg.ctrl_cfg.opt_cfg.cfg.popsize
    if opt == "iCEM":
        assert (optimizer.per, optimizer.num_keep, optimizer.noise_beta) == (2, 3, 2.0)
    if opt == "MPPI":
        assert (optimizer.num_iters, optimizer.temperature, optimizer.sigma) == (5, 1.0, 1.0)


def test_unknown_saved_optimiser_mode_is_one_clear_error():
    tree = to_dict(load_config("cartpole"))
    tree["ctrl_cfg"]["opt_cfg"]["mode"] = "PSO"
    with pytest.raises(ConfigError, match=r"unknown ctrl_cfg\.opt_cfg\.mode 'PSO'; valid: CEM"):
        build(tree)
