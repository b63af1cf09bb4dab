"""The Snakemake workflow: lint, dry runs of the paper matrix, config errors before any job."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "environment.yml"]


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run Snakemake with this interpreter's environment first on PATH (the jobs call python)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_workflow(dest: Path) -> Path:
    """A fresh working directory holding the workflow and configs (results/ stays empty)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    return dest


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run -> {rule: count}."""
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


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
    assert "--seed 2 --run-dir results/runs/cartpole/D-E-CEM/seed2" in de
    assert "ctrl_cfg.prop_cfg.npart" not in de  # read-only under prop-type E: left out
    pets = next(c for c in commands if "PE-TSinf-CEM/seed1" in c)
    assert "-o ctrl_cfg.prop_cfg.npart 5" in pets


SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA_ERRORS = {
    "unknown env": ({"envs": ["walker"]}, "'walker' is not one of"),
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
    "override for an unknown env": ({"overrides": {"walker": {}}}, "'walker' is not one of"),
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


WORKFLOW_ERRORS = {
    "unknown env": ({"envs": ["walker"]}, "'walker' is not one of"),
    "invalid combination": (
        {"experiments": {"x": {"variants": ["D-TS1-CEM"], "seeds": [1]}}},
        "config experiments.x.variants[0]: model-type D needs prop-type E (got TS1)",
    ),
    "unknown override path": (
        {"overrides": {"cartpole": {"ctrl_cfg.opt_cfg.cfg.popsiz": 3}}},
        "overrides.cartpole: unknown -o path 'ctrl_cfg.opt_cfg.cfg.popsiz'",
    ),
}


@pytest.mark.parametrize("case", list(WORKFLOW_ERRORS))
def test_bad_config_fails_before_any_job_naming_the_key(case: str, tmp_path: Path) -> None:
    change, message = WORKFLOW_ERRORS[case]
    config = {**yaml.safe_load((REPO / "config/test.yaml").read_text()), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--nolock", "--configfile", str(path))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output
    assert "Job stats" not in output


def test_slurm_profile_maps_training_jobs_to_gpu_partition() -> None:
    result = snakemake("-n", "--nolock", "--workflow-profile", "workflow/profiles/slurm")
    assert result.returncode == 0, result.stderr
    train = [line for line in result.stdout.splitlines() if "slurm_partition=gpu" in line]
    assert len(train) == 360 and all("gpu=1" in line for line in train)


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
