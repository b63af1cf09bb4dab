"""Settings the math cannot use are one line before anything runs; YAML is read within limits."""

import resource
import subprocess
import sys
import time

import pytest
from support.faults import BOMB
from support.runs import tiny_args

from pets_core.cli import mbexp
from pets_core.config import ConfigError, from_yaml, load_config
from pets_core.config.bounded_yaml import MAX_ALIASES, load_yaml

LR = "ctrl_cfg.prop_cfg.model_init_cfg.learning_rate"
INIT = "ctrl_cfg.prop_cfg.model_init_cfg"
CFG = "ctrl_cfg.opt_cfg.cfg"

REFUSED = [  # (-o path, value, the one line's text)
    (LR, "inf", f"{LR} must be a finite number (got inf)"),
    (LR, "nan", f"{LR} must be a finite number (got nan)"),
    (LR, "0", f"{LR} must be > 0 (got 0.0)"),
    (f"{INIT}.weight_decays", "[nan, 0, 0, 0, 0]", f"{INIT}.weight_decays[0] must be a finite"),
    (f"{INIT}.weight_decays", "[0, -1, 0, 0, 0]", f"{INIT}.weight_decays must be >= 0 (got -1.0)"),
    (f"{INIT}.max_logvar_init", "nan", f"{INIT}.max_logvar_init must be a finite number"),
    (f"{INIT}.max_logvar_init", "inf", f"{INIT}.max_logvar_init must be a finite number"),
    (f"{INIT}.min_logvar_init", "0.5", f"{INIT}.min_logvar_init must be < max_logvar_init"),
    ("ctrl_cfg.prop_cfg.npart", "0", "ctrl_cfg.prop_cfg.npart must be > 0 (got 0)"),
    (f"{CFG}.popsize", "0", f"{CFG}.popsize must be > 0 (got 0)"),
    (f"{CFG}.num_elites", "0", f"{CFG}.num_elites must be in 1..popsize=400 (got 0)"),
    (f"{CFG}.alpha", "1.5", f"{CFG}.alpha must be in [0, 1) (got 1.5)"),
    (f"{CFG}.alpha", "nan", f"{CFG}.alpha must be a finite number (got nan)"),
    (f"{CFG}.epsilon", "inf", f"{CFG}.epsilon must be a finite number (got inf)"),
    ("ctrl_cfg.opt_cfg.plan_hor", "0", "ctrl_cfg.opt_cfg.plan_hor must be > 0 (got 0)"),
    ("ctrl_cfg.prop_cfg.model_train_cfg.max_logging", "0", "max_logging must be > 0 (got 0)"),
]


@pytest.mark.parametrize(("path", "value", "message"), REFUSED)
def test_out_of_range_settings_are_one_line_exit_2(path, value, message, tmp_path, capsys):
    """Before: learning_rate inf, weight_decays [nan, ...], max_logvar_init nan ran to exit 0."""
    argv = ["-env", "cartpole", "-o", path, value, "--mlflow-uri", "none"]
    assert mbexp.main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mbexp: error: ") and message in err, err
    assert err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (LR, "-1e-3", f"{LR} must be > 0 (got -0.001)"),
        (f"{INIT}.min_logvar_init", "-inf", f"{INIT}.min_logvar_init must be a finite number"),
        (f"{CFG}.epsilon", "-1", f"{CFG}.epsilon must be >= 0 (got -1.0)"),
    ],
)
def test_negative_values_are_refused(path, value, message):
    """(argparse reads "-1" after -o as an option, so these go to load_config directly)"""
    with pytest.raises(ConfigError) as caught:
        load_config("cartpole", (), [(path, value)])
    assert message in str(caught.value)


def test_mppi_and_icem_floats_must_be_finite_too():
    for opt, leaf in (("MPPI", "temperature"), ("iCEM", "noise_beta")):
        with pytest.raises(ConfigError, match=f"{CFG}.{leaf} must be a finite number"):
            load_config("cartpole", [("opt-type", opt)], [(f"{CFG}.{leaf}", "inf")])


def test_the_paper_settings_of_every_env_pass():
    for env in ("cartpole", "reacher", "pusher", "halfcheetah"):
        load_config(env)


def test_an_alias_bomb_is_one_line_fast_and_small(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        from_yaml(path)
    assert time.perf_counter() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # kB
    assert str(caught.value) == (
        f"{path}: expands to more than 100,000 values (YAML aliases of aliases?); a config may "
        "have that many at most"
    )


def test_alias_count_size_and_self_reference_limits():
    many = "x: &x 1\ny: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(ConfigError, match="more than 1,000 YAML aliases"):
        load_yaml(many, "many.yaml")
    with pytest.raises(ConfigError, match="characters; a config may have 1,000,000 at most"):
        load_yaml("#" * 1_000_001, "big.yaml")
    with pytest.raises(ConfigError, match="a YAML alias refers to itself"):
        load_yaml("a: &a [1, *a]\n", "loop.yaml")
    assert load_yaml("a: &a [1, 2]\nb: *a\n", "fine.yaml") == {"a": [1, 2], "b": [1, 2]}


def test_a_bomb_as_a_batch_configfile_is_one_line(tmp_path):
    (tmp_path / "bomb.yaml").write_text(BOMB)
    result = subprocess.run(
        [sys.executable, "-m", "pets_core.batch", "--configfile", "bomb.yaml", "--out", "o"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "bomb.yaml: expands to more than 100,000 values" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_bomb_in_a_run_dirs_config_yaml_is_named_with_the_fix(tmp_path, capsys):
    argv = tiny_args("cartpole")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(BOMB)
    (run_dir / "checkpoint.pt").write_bytes(b"")  # a started run: its config.yaml is compared
    assert mbexp.main([*argv, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir}/config.yaml is damaged ({run_dir}/config.yaml: expands" not in err
    assert f"{run_dir}/config.yaml is damaged (expands to more than 100,000 values" in err, err
    assert "restore it (config.txt holds the same settings)" in err
