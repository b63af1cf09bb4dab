"""Real workflow runs in a temp directory: config/test.yaml end to end, figures from logs.mat alone,
and a killed training job that resumes from its checkpoint when the workflow runs again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_analysis import make_run
from test_workflow import REPO, copy_workflow, snakemake

pytestmark = pytest.mark.slow

FIGURES = ["best_so_far_trials", "best_so_far_steps", "ablation", "raw_returns"]


@pytest.fixture(scope="module")
def test_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config/test.yaml (1 env, 2 variants x 4 seeds, 2 trials) run for real, plus its report.

    --cores 8: all 8 training jobs run (and write to the one MLflow store) at the same time.
    """
    workdir = copy_workflow(tmp_path_factory.mktemp("e2e"))
    result = snakemake("--configfile", "config/test.yaml", "--cores", "8", cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = snakemake(
        "--configfile", "config/test.yaml", "--report", "results/report.html", cwd=workdir
    )
    assert report.returncode == 0, report.stderr[-3000:]
    return workdir


def test_every_job_wrote_a_complete_run_dir(test_run: Path) -> None:
    run_dirs = sorted((test_run / "results/runs/cartpole").glob("*/seed*"))
    assert [d.relative_to(test_run / "results/runs").as_posix() for d in run_dirs] == [
        f"cartpole/{variant}/seed{seed}"
        for variant in ("D-E-CEM", "PE-TSinf-CEM")
        for seed in (1, 2, 3, 4)
    ]
    for run_dir in run_dirs:
        for name in ("done.json", "logs.mat", "metrics.csv", "config.yaml", "checkpoint.pt"):
            assert (run_dir / name).is_file(), run_dir / name
    benchmarks = sorted((test_run / "results/benchmarks/train").glob("*/*/seed*.tsv"))
    assert len(benchmarks) == 8


def test_tables_figures_and_report(test_run: Path) -> None:
    tidy = pd.read_csv(test_run / "results/tables/returns.csv")
    assert list(tidy.columns) == [
        "env", "variant", "seed", "iteration", "env_steps", "return", "best_so_far"
    ]  # fmt: skip
    assert len(tidy) == 2 * 4 * 2  # variants x seeds x iterations
    assert tidy["env_steps"].tolist()[:2] == [40, 60]  # 20-step trials after 1 random one
    summary = pd.read_csv(test_run / "results/tables/final_returns.csv")
    assert sorted(summary["variant"]) == ["D-E-CEM", "PE-TSinf-CEM"]
    assert (summary["wall_h_per_run"] > 0).all()
    assert (
        "| cartpole | PE-TSinf-CEM | 4 |"
        in (test_run / "results/tables/final_returns.md").read_text()
    )
    assert r"\begin{tabular}" in (test_run / "results/tables/final_returns.tex").read_text()
    for name in FIGURES:
        for ext in ("pdf", "png"):
            assert (test_run / f"results/figures/{name}.{ext}").stat().st_size > 1000
    report = (test_run / "results/report.html").read_text(errors="replace")
    assert "best_so_far_trials.png" in report and "final_returns.csv" in report


def test_mlflow_has_every_run_once_with_all_metrics_and_ingest_is_idempotent(
    test_run: Path,
) -> None:
    """8 concurrent writers lost no metric; a second ingest adds no run."""
    import mlflow

    uri = f"sqlite:///{test_run}/results/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)

    def runs() -> list:
        experiment = client.get_experiment_by_name("pets-cartpole")
        return client.search_runs([experiment.experiment_id])

    before = runs()
    assert sorted((r.data.tags["variant"], int(r.data.tags["seed"])) for r in before) == [
        (variant, seed) for variant in ("D-E-CEM", "PE-TSinf-CEM") for seed in (1, 2, 3, 4)
    ]
    keys_of: dict[str, set[str]] = {}  # per variant; system/* are sampled in time, not per step
    for run in before:
        keys = {k for k in run.data.metrics if not k.startswith("system/")}
        assert keys_of.setdefault(run.data.tags["variant"], keys) == keys
        for key in keys:  # one point per iteration, for every metric of every run
            assert len(client.get_metric_history(run.info.run_id, key)) == 2, (run, key)
    assert {"return", "best_so_far", "env_steps", "time/wall_s"} <= keys_of["D-E-CEM"]
    assert keys_of["PE-TSinf-CEM"] - keys_of["D-E-CEM"] == {"train/nll"}
    again = subprocess.run(
        [sys.executable, "-m", "pets_core.ingest", "results/runs", "--mlflow-uri", uri],
        cwd=test_run,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert sorted(r.info.run_id for r in runs()) == sorted(r.info.run_id for r in before)


def test_figures_from_logs_mat_alone_train_nothing(tmp_path: Path) -> None:
    """Someone else's results: only {env}/{variant}/seed{N}/logs.mat, no done.json, no config."""
    workdir = copy_workflow(tmp_path / "work")
    for env, task_hor in (("cartpole", 200), ("reacher", 150)):
        for variant in ("PE-TSinf-CEM", "D-E-CEM", "PE-E-CEM"):
            for seed in (1, 2, 3):
                returns = [float(seed + i) for i in range(5)]
                make_run(tmp_path / "theirs", env, variant, seed, returns, task_hor=task_hor)
    result = snakemake(
        "figures",
        "--cores",
        "2",
        "--configfile",
        "config/test.yaml",
        "--config",
        f"existing_runs={tmp_path / 'theirs' / 'runs'}",
        "envs=[cartpole,reacher]",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rule train" not in result.stdout + result.stderr
    assert not (workdir / "results/runs").exists()
    tidy = pd.read_csv(workdir / "results/tables/returns.csv")
    assert len(tidy) == 2 * 3 * 3 * 5
    assert set(tidy["env"]) == {"cartpole", "reacher"}
    for name in FIGURES:
        assert (workdir / f"results/figures/{name}.pdf").is_file()


def test_killed_training_job_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """SIGKILL Snakemake and its job mid-run; the next workflow run resumes the run dir."""
    workdir = copy_workflow(tmp_path / "work")
    config = workdir / "config/one.yaml"
    config.write_text(
        (REPO / "config/test.yaml")
        .read_text()
        .replace("variants: [PE-TSinf-CEM, D-E-CEM]", "variants: [D-E-CEM]")
        .replace("seeds: [1, 2, 3, 4]", "seeds: [1]")
        .replace("ntrain_iters: 2", "ntrain_iters: 6")
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run_dir = workdir / "results/runs/cartpole/D-E-CEM/seed1"
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--configfile", str(config), "--cores", "1"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoint.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # Snakemake and the training job, no cleanup
    process.wait()
    assert not (run_dir / "done.json").exists()
    # a killed Snakemake leaves its lock: the documented recovery is --unlock, then run again
    assert snakemake("--configfile", str(config), "--unlock", cwd=workdir).returncode == 0
    target = str(run_dir.relative_to(workdir) / "done.json")  # just the job, not the figures
    result = snakemake("--configfile", str(config), "--cores", "1", target, cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (run_dir / "done.json").is_file()
    log = (workdir / "results/logs/train/cartpole/D-E-CEM/seed1.log").read_text()
    assert "resum" in log.lower(), log[-2000:]
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 6
