"""The Snakemake workflow: lint, dry runs of the paper matrix, config errors before any job."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml
from support.faults import BOMB
from support.workflow import REPO, copy_workflow, job_counts, snakemake


def expected_jobs(config_path: Path) -> set[tuple[str, str, int]]:
    config = yaml.safe_load(config_path.read_text())
    return {
        (env, variant, seed)
        for env in config["envs"]
        for group in config["experiments"].values()
        for variant in group["variants"]
        for seed in group["seeds"]
    }


def test_lint_clean() -> None:
    result = snakemake("--lint", "--nolock")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_dry_run_paper_matrix_has_one_job_per_env_variant_seed() -> None:
    jobs = expected_jobs(REPO / "config" / "config.yaml")
    # 4 envs x (PE-TSinf-CEM x 10 seeds + 13 other ablation variants x 5
    #          + PE-TSinf-{Random, iCEM, MPPI} x 5)
    assert len(jobs) == 4 * (10 + 13 * 5 + 3 * 5) == 360
    result = snakemake("-n", "--nolock")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["train"] == len(jobs)
    assert counts["init_mlflow"] == 1 and counts["aggregate"] == 1 and counts["ingest_mlflow"] == 1


def test_dry_run_commands_are_runner_invocations() -> None:
    result = snakemake("-n", "-p", "--nolock", "--configfile", "config/test.yaml")
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout)["train"] == len(expected_jobs(REPO / "config/test.yaml"))
    commands = [line for line in result.stdout.splitlines() if "pets_core.mbexp" in line]
    assert len(commands) == 8
    de = next(c for c in commands if "D-E-CEM/seed2" in c)
    assert "-ca model-type D -ca prop-type E -ca opt-type CEM" in de
    assert "--seed 2 --run-dir results/test/runs/cartpole/D-E-CEM/seed2" in de
    assert "ctrl_cfg.prop_cfg.npart" not in de  # read-only under prop-type E: left out
    pets = next(c for c in commands if "PE-TSinf-CEM/seed1" in c)
    assert "-o ctrl_cfg.prop_cfg.npart 5" in pets


def test_dry_run_with_seeds_per_job_runs_each_seed_group_in_one_job(tmp_path: Path) -> None:
    """config/test.yaml's 4 seeds in groups of 3: seeds 1-3 in one runner, seed 4 alone (the
    smaller last group); each job declares every run's done.json, sizes threads and memory by its
    seeds, and logs to one file."""
    result = snakemake("-n", "-p", "--nolock", "--cores", "8", "--configfile", "config/test.yaml",
                       "--config", "seeds_per_job=3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert (counts["train_seeds1_2_3"], counts["train_seed4"]) == (2, 2) and "train" not in counts
    jobs = {}  # log file -> the job's dry-run block
    for block in result.stdout.split("\nrule ")[1:]:
        if block.startswith("train_"):
            jobs[re.search(r"^    log: (\S+)$", block, re.MULTILINE)[1]] = block
    logs = "results/test/logs/train/cartpole"
    assert sorted(jobs) == [f"{logs}/{v}/{label}.log" for v in ("D-E-CEM", "PE-TSinf-CEM")
                            for label in ("seed4", "seeds1-2-3")]  # fmt: skip
    group = jobs[f"{logs}/D-E-CEM/seeds1-2-3.log"]
    runs = "results/test/runs/cartpole/D-E-CEM"
    assert (
        f"    output: {', '.join(f'{runs}/seed{s}/done.json (update)' for s in (1, 2, 3))}\n"
        in group
    )
    assert "    threads: 3\n" in group and "mem_mb=3000," in group and "runtime=10," in group
    assert f"--seeds 1,2,3 --run-dir '{runs}/seed{{seed}}' --device cpu --threads 3 " in group
    assert f">> {logs}/D-E-CEM/seeds1-2-3.log 2>&1" in group
    alone = jobs[f"{logs}/D-E-CEM/seed4.log"]
    assert "mem_mb=1000," in alone and f"--seed 4 --run-dir {runs}/seed4 --device" in alone


SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA_ERRORS = {
    "unknown variant": (
        {"experiments": {"x": {"variants": ["XX-E-CEM"], "seeds": [1]}}},
        "'XX-E-CEM' does not match",
    ),
    "seed not positive": (
        {"experiments": {"x": {"variants": ["PE-E-CEM"], "seeds": [0]}}},
        "0 is less than the minimum of 1",
    ),
    "seed wrong type": (
        {"experiments": {"x": {"variants": ["PE-E-CEM"], "seeds": ["one"]}}},
        "'one' is not of type 'integer'",
    ),
    "threads wrong type": ({"train": {"threads": "two"}}, "'two' is not of type 'integer'"),
    "seeds_per_job not positive": ({"seeds_per_job": 0}, "0 is less than the minimum of 1"),
    "seeds_per_job wrong type": ({"seeds_per_job": "two"}, "'two' is not of type 'integer'"),
}


def test_good_configs_pass_the_schema_with_defaults_filled() -> None:
    from snakemake.utils import validate

    for name in ("config", "quick", "test"):
        config = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
        validate(config, str(SCHEMA))
        assert config["mlflow"]["tracking_uri"] == "sqlite:///results/mlflow.db"
        assert config["existing_runs"] is None


@pytest.mark.parametrize("case", list(SCHEMA_ERRORS))
def test_schema_rejects_bad_values_naming_them(case: str) -> None:
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    change, message = SCHEMA_ERRORS[case]
    config = {**yaml.safe_load((REPO / "config/test.yaml").read_text()), **change}
    with pytest.raises(WorkflowError) as info:
        validate(config, str(SCHEMA))
    assert message in str(info.value.args[0]) + "".join(map(str, info.value.args[1:]))


WORKFLOW_ERRORS = {  # env names: the schema's enums come from pets_core.envs.ENV_NAMES
    "unknown env": ({"envs": ["walker"]}, "'walker' is not one of"),
    "override for an unknown env": ({"overrides": {"walker": {}}}, "'walker' is not one of"),
    "runtime for an unknown env": (
        {"train": {"runtime": {"default": 5, "walker": 3}}},
        "config key train.runtime: 'walker' is not one of ['default', 'cartpole', 'reacher', "
        "'pusher', 'halfcheetah']",
    ),
    "invalid combination": (
        {"experiments": {"x": {"variants": ["D-TS1-CEM"], "seeds": [1]}}},
        "config experiments.x.variants[0]: model-type D needs prop-type E (got TS1)",
    ),
    "non-finite learning rate": (
        {"overrides": {"all": {"ctrl_cfg.prop_cfg.model_init_cfg.learning_rate": "inf"}}},
        "ctrl_cfg.prop_cfg.model_init_cfg.learning_rate must be a finite number (got inf)",
    ),
    "unknown override path": (
        {"overrides": {"cartpole": {"ctrl_cfg.opt_cfg.cfg.popsiz": 3}}},
        "overrides.cartpole: unknown -o path 'ctrl_cfg.opt_cfg.cfg.popsiz'",
    ),
    "seeds_per_job not positive": (
        {"seeds_per_job": -2},
        "config key seeds_per_job: -2 is less than the minimum of 1",
    ),
    "seeds_per_job a fraction": (
        {"seeds_per_job": 1.5},
        "config key seeds_per_job: 1.5 is not of type 'integer'",
    ),
    "seeds_per_job a float JSON Schema counts as an integer": (
        {"seeds_per_job": 2.0},
        "config key seeds_per_job: 2.0 is not an integer >= 1",
    ),
    "pre-registered group without seeds": (
        {"preregistered": {"jump": {"envs": ["cartpole"]}}},
        "config key preregistered.jump: 'seeds' is a required property",
    ),
    "pre-registered group with an unknown override path": (
        {
            "preregistered": {
                "jump": {
                    "envs": ["cartpole"],
                    "seeds": [4],
                    "overrides": {"ctrl_cfg.prop_cfg.npar": 5},
                }
            }
        },
        "preregistered.jump on cartpole: unknown -o path 'ctrl_cfg.prop_cfg.npar'",
    ),
}


@pytest.mark.parametrize("case", list(WORKFLOW_ERRORS))
def test_bad_config_fails_before_any_job_naming_the_key(case: str, tmp_path: Path) -> None:
    change, message = WORKFLOW_ERRORS[case]
    config = {**yaml.safe_load((REPO / "config/test.yaml").read_text()), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--nolock", "--configfile", str(path))
    assert result.returncode == 1  # Snakemake's exit status for a workflow error
    output = result.stdout + result.stderr
    assert message in output, output
    assert "Job stats" not in output


def test_an_alias_bomb_config_is_one_line_fast(tmp_path: Path) -> None:
    """Before: 10^8 expansions under envs: hung the dry run, 3.7 GB and growing."""
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    t0 = time.monotonic()
    result = snakemake("-n", "--nolock", "--configfile", str(path), timeout=120)
    assert time.monotonic() - t0 < 60
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"config: {path}: expands to more than 100,000 values" in output, output
    assert "Job stats" not in output


def test_analysis_modules_import_no_torch_or_models() -> None:
    """Figures must be regenerable without the learning stack: the analysis code reads files."""
    import ast

    for path in sorted((REPO / "pets_core" / "analysis").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names.append(getattr(node, "module", None) or "")
                for name in names:
                    assert not name.startswith(
                        ("torch", "pets_core.models", "pets_core.planning")
                    ), f"{path.name} imports {name}"


SEED_ERRORS = {
    "seed 2**32": ([2**32], "config key experiments.x.seeds[0]: 4294967296 is greater than the "),
    "seed 0": ([0], "config key experiments.x.seeds[0]: 0 is less than the minimum of 1"),
    "seed -3": ([5, -3], "config key experiments.x.seeds[1]: -3 is less than the minimum of 1"),
}


@pytest.mark.parametrize("case", list(SEED_ERRORS))
def test_seed_out_of_range_fails_in_the_dry_run_naming_it(case: str, tmp_path: Path) -> None:
    seeds, message = SEED_ERRORS[case]
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["experiments"] = {"x": {"variants": ["PE-E-CEM"], "seeds": seeds}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--nolock", "--configfile", str(path))
    output = result.stdout + result.stderr
    assert result.returncode == 1  # Snakemake's exit status for a workflow error
    assert message in output, output
    assert "Job stats" not in output and "Failed validating" not in output
    assert len(output.splitlines()) <= 4, output  # the message and Snakemake's location lines


def test_largest_seed_passes_the_dry_run_and_the_schema_says_max_seed(tmp_path: Path) -> None:
    from pets_core.seeding import MAX_SEED

    schema = yaml.safe_load(SCHEMA.read_text())
    seeds = schema["properties"]["experiments"]["additionalProperties"]["properties"]["seeds"]
    assert seeds["items"]["maximum"] == MAX_SEED == 4294967295
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["experiments"] = {"x": {"variants": ["PE-E-CEM"], "seeds": [MAX_SEED]}}
    path = tmp_path / "max.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "-p", "--nolock", "--configfile", str(path))
    assert result.returncode == 0, result.stderr
    assert "--seed 4294967295 --run-dir results/max/runs/cartpole/PE-E-CEM/seed4294967295" in (
        result.stdout
    )


def test_runner_rejects_the_seeds_the_schema_rejects(tmp_path: Path, capsys) -> None:
    from pets_core.cli import mbexp

    for seed in ("4294967296", "-1"):
        run_dir = tmp_path / f"seed{seed}"
        argv = [
            "-env",
            "cartpole",
            "--seed",
            seed,
            "--run-dir",
            str(run_dir),
            "--mlflow-uri",
            "none",
        ]
        assert mbexp.main(argv) == 2
        err = capsys.readouterr().err
        assert err == f"mbexp: error: --seed must be in 0..4294967295 (got {seed})\n"
        assert not run_dir.exists()


MISSPELT = {
    "top level": (
        {"devise": "cpu"},
        "config: unknown key 'devise' (did you mean 'device'?); valid keys: name, envs, "
        "experiments, overrides, seeds_per_job, device, mlflow, train, preregistered, "
        "existing_runs, include_partial, figures\n",
    ),
    "nested": (
        {"train": {"thread": 2}},
        "config key train: unknown key 'thread' (did you mean 'threads'?); valid keys: threads, "
        "gpu, mem_mb, runtime\n",
    ),
    "two unknown": (
        {"envz": ["cartpole"], "seedz": [1]},
        "config: unknown keys 'envz', 'seedz'; valid keys: name, envs, experiments, overrides, "
        "seeds_per_job, device, mlflow, train, preregistered, existing_runs, include_partial, "
        "figures\n",
    ),
}


@pytest.mark.parametrize("case", list(MISSPELT))
def test_misspelt_key_is_named_with_the_valid_keys_not_the_schema(case, tmp_path: Path) -> None:
    change, message = MISSPELT[case]
    config = {**yaml.safe_load((REPO / "config/test.yaml").read_text()), **change}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--nolock", "--configfile", str(path))
    output = result.stdout + result.stderr
    assert result.returncode == 1  # Snakemake's exit status for a workflow error
    assert message in output, output
    assert len(output.splitlines()) <= 4, output  # was 219 lines: the whole schema


def test_quick_config_records_a_video_of_the_last_iteration_only() -> None:
    result = snakemake("-n", "-p", "--nolock", "--configfile", "config/quick.yaml")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "pets_core.mbexp" in line]
    assert len(commands) == 6
    assert all(
        "-o exp_cfg.log_cfg.nrecord 1 -o exp_cfg.log_cfg.record_iters '[-1]'" in c for c in commands
    )


@pytest.mark.slow
def test_workflow_ends_with_a_summary_table_and_clean_job_logs(tmp_path, monkeypatch) -> None:
    """A real one-job workflow: the job's log has plain lines (no carriage returns) and one
    summary line per iteration; Snakemake's onsuccess prints the closing table."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the jobs import this checkout's pets_core
    workdir = copy_workflow(tmp_path / "w")
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["experiments"] = {"one": {"variants": ["D-E-CEM"], "seeds": [1]}}
    config["figures"]["best_so_far_variants"] = ["D-E-CEM"]
    (workdir / "one.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("--configfile", "one.yaml", "--cores", "1", cwd=workdir, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    log = (workdir / "results/one/logs/train/cartpole/D-E-CEM/seed1.log").read_text()
    assert "\r" not in log
    assert [ln[:9] for ln in log.splitlines() if ln.startswith("iter ")] == [
        "iter 1/2 ",
        "iter 2/2 ",
    ]
    done = json.loads((workdir / "results/one/runs/cartpole/D-E-CEM/seed1/done.json").read_text())
    best = done["final_best_so_far"]
    table = output[output.index("PETS workflow: 1 complete run(s)") :].splitlines()
    assert re.split(r"\s{2,}", table[2].strip())[:5] == [
        "cartpole",
        "D-E-CEM",
        "1",
        "2",
        f"{best:.2f} [{best:.2f}, {best:.2f}]",
    ]
    assert "report:   snakemake --report results/one/report.html --configfile one.yaml" in table
