"""The original's -ca / -o config semantics (§cli) on the frozen config tree."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

import pets_core
import pets_core.config
import pets_core.config.variants
from pets_core.config import (
    CONFIG_DIR,
    CEMCfg,
    ConfigError,
    RandomCfg,
    build,
    env_names,
    flatten,
    from_yaml,
    load_config,
    to_dict,
    to_yaml,
)


def test_paper_defaults_per_env():
    cfg = load_config("halfcheetah")
    assert cfg.variant == "PE-TSinf-CEM"
    assert cfg.exp_cfg.sim_cfg.task_hor == 1000
    assert cfg.exp_cfg.exp_cfg.ntrain_iters == 300
    assert cfg.ctrl_cfg.opt_cfg.plan_hor == 30
    assert cfg.ctrl_cfg.opt_cfg.cfg == CEMCfg(popsize=500, num_elites=50)
    assert cfg.ctrl_cfg.prop_cfg.npart == 20
    assert cfg.ctrl_cfg.prop_cfg.model_init_cfg.num_nets == 5
    assert cfg.ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims == (200, 200, 200, 200)
    reacher = load_config("reacher")
    assert reacher.ctrl_cfg.prop_cfg.model_init_cfg.learning_rate == 7.5e-4
    assert reacher.exp_cfg.sim_cfg.task_hor == 150


def test_ca_selects_optimiser_dict_like_the_original():
    cfg = load_config("pusher", [("opt-type", "Random")])
    assert cfg.ctrl_cfg.opt_cfg.mode == "Random"
    assert cfg.ctrl_cfg.opt_cfg.cfg == RandomCfg(popsize=2500)
    cfg = load_config("pusher", [("opt-type", "Random")], [("ctrl_cfg.opt_cfg.cfg.popsize", "7")])
    assert cfg.ctrl_cfg.opt_cfg.cfg.popsize == 7
    with pytest.raises(
        ConfigError, match=r"'num_elites' is not in ctrl_cfg\.opt_cfg\.cfg; valid: popsize"
    ):
        load_config("pusher", [("opt-type", "Random")], [("ctrl_cfg.opt_cfg.cfg.num_elites", "3")])


def test_ca_forced_leaves():
    e = load_config("cartpole", [("model-type", "D"), ("prop-type", "E")])
    assert (e.ctrl_cfg.prop_cfg.npart, e.ctrl_cfg.prop_cfg.model_init_cfg.num_nets) == (1, 1)
    de = load_config("cartpole", [("model-type", "DE"), ("prop-type", "TS1")])
    assert de.ctrl_cfg.prop_cfg.ign_var is True
    pe = load_config("cartpole", [("model-type", "PE"), ("prop-type", "TS1")])
    assert pe.ctrl_cfg.prop_cfg.ign_var is False


@pytest.mark.parametrize(
    ("path", "raw", "expected"),
    [
        ("exp_cfg.exp_cfg.ntrain_iters", "5", 5),
        ("exp_cfg.sim_cfg.noise_std", "0.5", 0.5),
        ("ctrl_cfg.opt_cfg.cfg.alpha", "0.25", 0.25),
        ("ctrl_cfg.opt_cfg.cfg.var_update", "elite", "elite"),
        ("ctrl_cfg.precision", "bf16-hidden", "bf16-hidden"),
        ("ctrl_cfg.graph", "always", "always"),
        ("ctrl_cfg.prop_cfg.model_init_cfg.model_dir", "some/dir", "some/dir"),
        ("ctrl_cfg.log_cfg.log_traj_preds", "True", True),
        ("ctrl_cfg.log_cfg.log_traj_preds", "1", True),  # the original's make_bool
        ("ctrl_cfg.log_cfg.log_traj_preds", "False", False),
        ("ctrl_cfg.log_cfg.log_traj_preds", "false", False),
        ("ctrl_cfg.log_cfg.log_traj_preds", "", False),
        ("ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims", "8,8,8", (8, 8, 8)),
        ("ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims", "[16, 16, 16]", (16, 16, 16)),
    ],
)
def test_overrides_are_typed(path, raw, expected):
    value = load_config("cartpole", [], [(path, raw)])
    for key in path.split("."):
        value = getattr(value, key)
    assert value == expected and type(value) is type(expected)


def test_overrides_apply_in_command_line_order():
    o = [("ctrl_cfg.prop_cfg.npart", "10"), ("ctrl_cfg.prop_cfg.npart", "15")]
    assert load_config("cartpole", [], o).ctrl_cfg.prop_cfg.npart == 15


@pytest.mark.parametrize(
    ("ca", "o", "message"),
    [
        ([], [("exp_cfg.nope.task_hor", "3")], "'nope' is not in exp_cfg; valid: sim_cfg, exp_cfg"),
        ([], [("exp_cfg.sim_cfg.task_hr", "3")], "valid: task_hor, stochastic, noise_std"),
        (
            [],
            [("ctrl_cfg.opt_cfg.cem.popsize", "3")],
            "'cem' is not in ctrl_cfg.opt_cfg; valid: mode, plan_hor, cfg (did you mean "
            "'ctrl_cfg.opt_cfg.cfg.popsize'? -ca opt-type picks the optimiser)",
        ),
        (
            [("opt-type", "Random")],
            [("ctrl_cfg.opt_cfg.cfg.Random.popsize", "3")],
            "'Random' is not in ctrl_cfg.opt_cfg.cfg; valid: popsize (did you mean "
            "'ctrl_cfg.opt_cfg.cfg.popsize'? -ca opt-type picks the optimiser)",
        ),
        ([], [("ctrl_cfg.per.x", "3")], "ctrl_cfg.per is a leaf"),
        ([], [("ctrl_cfg.prop_cfg", "3")], "is a section, not a leaf"),
        ([], [("exp_cfg.sim_cfg.task_hor", "1.5")], "exp_cfg.sim_cfg.task_hor expects int"),
        ([], [("ctrl_cfg.opt_cfg.cfg.alpha", "abc")], "expects float, got 'abc'"),
        (
            [],
            [("ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims", "[8,")],
            "hidden_dims expects a list of int (e.g. 8,8 or ",
        ),
        (
            [],
            [("ctrl_cfg.prop_cfg.model_init_cfg.weight_decays", "1e-4,{a")],
            "weight_decays expects a list of float (e.g. 8,8 or ",
        ),
        ([], [("seed", "3")], "read-only: it is set by --seed"),
        ([], [("ctrl_cfg.prop_cfg.mode", "E")], "read-only: it is set by -ca prop-type"),
        (
            [("prop-type", "E"), ("model-type", "D")],
            [("ctrl_cfg.prop_cfg.npart", "5")],
            "npart is read-only: prop-type E uses exactly one particle",
        ),
        (
            [("model-type", "DE"), ("prop-type", "TSinf")],
            [("ctrl_cfg.prop_cfg.ign_var", "False")],
            "ign_var is read-only",
        ),
        (
            [("model-type", "P"), ("prop-type", "DS")],
            [("ctrl_cfg.prop_cfg.model_init_cfg.num_nets", "3")],
            "num_nets is read-only",
        ),
        ([], [("ctrl_cfg.prop_cfg.model_init_cfg.num_nets", "1")], "more than one net"),
        ([], [("ctrl_cfg.prop_cfg.npart", "7")], "npart divisible by num_nets"),
        ([], [("ctrl_cfg.opt_cfg.cfg.popsize", "8")], "num_elites must be in 1..popsize=8"),
        ([], [("ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims", "8,8")], "weight_decays needs"),
        ([], [("exp_cfg.sim_cfg.stochastic", "True")], "needs exp_cfg.sim_cfg.noise_std"),
        (
            [],
            [("ctrl_cfg.precision", "fp16")],
            "ctrl_cfg.precision 'fp16'; valid: fp32, bf16, bf16-hidden, bf16-trunk",
        ),
        ([], [("ctrl_cfg.graph", "on")], "ctrl_cfg.graph 'on'; valid: auto, always, never"),
        ([("model-type", "XL")], [], "unknown -ca model-type 'XL'; valid: D, P, DE, PE"),
        ([("opt-type", "cem")], [], "valid: CEM, Random, iCEM, MPPI"),
        ([("model", "PE")], [], "unknown -ca key 'model'; valid: model-type, prop-type, opt-type"),
        ([("model-type", "D")], [], "model-type D needs prop-type E"),
        ([("model-type", "P"), ("prop-type", "TSinf")], [], "needs an ensemble"),
    ],
)
def test_bad_input_is_refused_with_one_clear_message(ca, o, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config("cartpole", ca, o)
    assert "\n" not in str(err.value)


def test_unknown_env_names_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown env 'hopper'; valid: cartpole, halfcheetah"):
        load_config("hopper")


def test_frozen_and_round_trips_through_yaml(tmp_path):
    cfg = load_config("reacher", [("model-type", "DE"), ("prop-type", "DS")], seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 4  # type: ignore[misc]
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    assert from_yaml(tmp_path / "config.yaml") == cfg
    assert build(to_dict(cfg)) == cfg
    flat = flatten(cfg)
    assert flat["seed"] == 3 and flat["ctrl_cfg.opt_cfg.cfg.num_elites"] == 40
    assert all(not isinstance(v, dict) for v in flat.values())


def test_layers_are_the_repositorys_config_directory():
    # pets_core/config/layers.py is one level deeper than the old pets_core/config.py
    repo = Path(__file__).resolve().parents[2]
    assert CONFIG_DIR == repo / "config"
    assert env_names() == ("cartpole", "halfcheetah", "pusher", "reacher")
    assert (CONFIG_DIR / "pets" / "default.yaml").is_file()


def test_missing_layers_directory_is_one_line_naming_it(tmp_path):
    # e.g. a non-editable install: site-packages has no config/ next to pets_core
    with pytest.raises(ConfigError) as err:
        load_config("cartpole", config_dir=tmp_path)
    assert str(err.value) == (
        f"no YAML layers in {tmp_path / 'envs'}: pets_core reads the repository's config/ "
        "directory, so run it from a source checkout installed with pip install -e ."
    )


OPT_SPELLING = (
    "a YAML layer gives an optimiser's leaves as ctrl_cfg.opt_cfg.cfg.OPT.LEAF, OPT one of CEM, "
    "Random, iCEM, MPPI (-ca opt-type); -o sets the chosen one's as ctrl_cfg.opt_cfg.cfg.LEAF"
)


def test_popsize_is_spelled_as_o_spells_it_in_every_layer():
    """Issue 30: the layers said ctrl_cfg.opt_cfg.cem.popsize, -o ctrl_cfg.opt_cfg.cfg.popsize.
    Every layer file gives the optimisers' leaves under ctrl_cfg.opt_cfg.cfg, one table per
    -ca opt-type, and the chosen table is the run's ctrl_cfg.opt_cfg.cfg."""
    repo = Path(__file__).resolve().parents[2]
    for layer in [repo / "config/pets/default.yaml", *sorted((repo / "config/envs").glob("*"))]:
        opt = yaml.safe_load(layer.read_text())["ctrl_cfg"]["opt_cfg"]
        assert set(opt) == {"plan_hor", "cfg"}, layer
        assert set(opt["cfg"]) == {"CEM", "Random", "iCEM", "MPPI"}, layer
    tables = yaml.safe_load((repo / "config/envs/halfcheetah.yaml").read_text())["ctrl_cfg"]
    for opt, table in tables["opt_cfg"]["cfg"].items():
        cfg = load_config("halfcheetah", [("opt-type", opt)])
        assert flatten(cfg)["ctrl_cfg.opt_cfg.cfg.popsize"] == table["popsize"] > 0
    assert (
        load_config("halfcheetah", [("opt-type", "iCEM")]).ctrl_cfg.opt_cfg.cfg.noise_beta == 0.25
    )


@pytest.mark.parametrize(
    ("before", "layer", "key"),
    [  # the old per-optimiser sections; a table named otherwise than -ca opt-type does (CEM)
        ("    plan_hor: 25\n", "    cem: {popsize: 3}\n", "ctrl_cfg.opt_cfg.cem"),
        ("      CEM: ", "      cem: {popsize: 3}\n", "ctrl_cfg.opt_cfg.cfg.cem"),
    ],
)
def test_a_layer_in_another_spelling_is_one_line_naming_the_right_one(before, layer, key, tmp_path):
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "pets").mkdir()
    (tmp_path / "envs").mkdir()
    (tmp_path / "pets/default.yaml").write_text((repo / "config/pets/default.yaml").read_text())
    env = (repo / "config/envs/cartpole.yaml").read_text()
    assert before in env
    (tmp_path / "envs/cartpole.yaml").write_text(env.replace(before, layer + before))
    with pytest.raises(ConfigError) as err:
        load_config("cartpole", config_dir=tmp_path)
    assert str(err.value) == f"YAML layer key {key}: {OPT_SPELLING}"


def test_public_api_and_the_variants_module():
    for name in pets_core.config.__all__:
        assert getattr(pets_core.config, name) is not None, name
    # the package root re-exports the variant names: the same objects, not copies
    for name in ("Variant", "VariantError", "parse_variant"):
        assert getattr(pets_core, name) is getattr(pets_core.config.variants, name)
