"""Real workflow runs in a temp directory: config/test.yaml end to end, figures from logs.mat alone,
and a killed training job that resumes from its checkpoint when the workflow runs again."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.runs import _tiny_run, make_run
from support.workflow import REPO, copy_workflow, job_counts, snakemake

from pets_core.config import fingerprint, from_yaml

pytestmark = pytest.mark.slow

FIGURES = ["best_so_far_trials", "best_so_far_steps", "ablation", "raw_returns"]


@pytest.fixture(scope="module")
def test_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config/test.yaml (1 env, 2 variants x 4 seeds, 2 trials) run for real, report included.

    --cores 8: all 8 training jobs run (and write to the one MLflow store) at the same time.
    """
    workdir = copy_workflow(tmp_path_factory.mktemp("e2e"))
    # 8 jobs at once, then tables, figures and the report: generous on a loaded 2-core machine
    result = snakemake("--configfile", "config/test.yaml", "--cores", "8", cwd=workdir, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (workdir / "terminal.txt").write_text(result.stdout + result.stderr)  # what the user saw
    return workdir


def test_the_terminal_shows_one_line_per_run_per_iteration(test_run: Path) -> None:
    """The runs' lines reach Snakemake's terminal (the oracle: each run's metrics.csv); the
    detailed lines stay in the job logs; the closing summary links each experiment's runs."""
    import mlflow

    terminal = (test_run / "terminal.txt").read_text()
    for metrics in sorted((test_run / "results/test/runs/cartpole").glob("*/seed*/metrics.csv")):
        variant, seed = metrics.parts[-3], metrics.parts[-2].removeprefix("seed")
        for row in list(csv.DictReader(metrics.open())):
            ret, best = float(row["return"]), float(row["best_so_far"])
            line = (
                f"cartpole {variant} seed {seed}  iter {row['iteration']}/2  return {ret:.1f}  "
                f"best {best:.1f}  {float(row['plan_s_per_action']):.2f} s/action  ETA "
            )
            assert terminal.count(line) == 1, (line, terminal[-3000:])
    assert "train nll" not in terminal and "step 1/20" not in terminal  # those are in the logs
    log = (test_run / "results/test/logs/train/cartpole/PE-TSinf-CEM/seed1.log").read_text()
    assert "train nll" in log
    uri = f"sqlite:///{test_run / 'results/mlflow.db'}"
    exp = mlflow.MlflowClient(uri).get_experiment_by_name("pets-cartpole")
    page = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}?workflowType=machine_learning"
    assert f"          {page}  (pets-cartpole)" in terminal.splitlines()


def test_every_job_wrote_a_complete_run_dir(test_run: Path) -> None:
    run_dirs = sorted((test_run / "results/test/runs/cartpole").glob("*/seed*"))
    assert [d.relative_to(test_run / "results/test/runs").as_posix() for d in run_dirs] == [
        f"cartpole/{variant}/seed{seed}"
        for variant in ("D-E-CEM", "PE-TSinf-CEM")
        for seed in (1, 2, 3, 4)
    ]
    for run_dir in run_dirs:
        for name in ("done.json", "logs.mat", "metrics.csv", "config.yaml", "checkpoint.pt"):
            assert (run_dir / name).is_file(), run_dir / name
    benchmarks = sorted((test_run / "results/test/benchmarks/train").glob("*/*/seed*.tsv"))
    assert len(benchmarks) == 8


def test_tables_figures_and_report(test_run: Path) -> None:
    tidy = pd.read_csv(test_run / "results/test/tables/returns.csv")
    assert list(tidy.columns) == [
        "env", "variant", "seed", "iteration", "env_steps", "mpc_env_steps", "return",
        "best_so_far", "partial", "settings",
    ]  # fmt: skip
    assert len(tidy) == 2 * 4 * 2  # variants x seeds x iterations
    assert tidy["env_steps"].tolist()[:2] == [40, 60]  # 20-step trials after 1 random one
    assert tidy["mpc_env_steps"].tolist()[:2] == [
        20,
        40,
    ]  # the original's x: random one not counted
    summary = pd.read_csv(
        test_run / "results/test/tables/final_returns.csv", dtype={"settings": str}
    )
    assert sorted(summary["variant"]) == ["D-E-CEM", "PE-TSinf-CEM"]
    for row in summary.itertuples():  # the mean of the runs' done.json wall_s, in hours
        seeds = list(
            (test_run / "results/test/runs/cartpole" / row.variant).glob("seed*/done.json")
        )
        walls = [json.loads(done.read_text())["wall_s"] for done in seeds]
        assert len(walls) == 4 and row.wall_h_per_run == pytest.approx(sum(walls) / 4 / 3600)
        # the settings fingerprint, as run.json and done.json hold it, in the table
        stored = {json.loads(done.read_text())["settings_fingerprint"] for done in seeds}
        assert stored == {row.settings} == {fingerprint(from_yaml(seeds[0].parent / "config.yaml"))}
        assert (
            f"| {row.settings} |" in (test_run / "results/test/tables/final_returns.md").read_text()
        )
    assert (
        "| cartpole | PE-TSinf-CEM | 4 |"
        in (test_run / "results/test/tables/final_returns.md").read_text()
    )
    assert r"\begin{tabular}" in (test_run / "results/test/tables/final_returns.tex").read_text()
    for name in FIGURES:
        for ext in ("pdf", "png"):
            assert (test_run / f"results/test/figures/{name}.{ext}").stat().st_size > 1000
    # the main command built the report, with the tables rendered as HTML
    report = (test_run / "results/test/report.html").read_text(errors="replace")
    for name in ("best_so_far_trials.png", "final_returns.html", "configuration.html"):
        assert name in report, name
    assert "(['cartpole'])" not in report and "Environments: cartpole." in report
    assert "2000 resamples" in report  # the captions state the CI as the code computes it
    configuration = (test_run / "results/test/tables/configuration.md").read_text()
    assert "| cartpole | D-E-CEM | 1, 2, 3, 4 | the paper's settings except " in configuration
    assert "popsize 20 (paper 400)" in configuration and "trials 2 (paper 50)" in configuration


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
        [sys.executable, "-m", "pets_core.ingest", "results/test/runs", "--mlflow-uri", uri],
        cwd=test_run,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert sorted(r.info.run_id for r in runs()) == sorted(r.info.run_id for r in before)


def existing_out(workdir: Path, name: str) -> Path:
    """Where `figures` of existing runs wrote for config <name>: the one folder under
    results/<name>/existing/ (named after the existing_runs path)."""
    (out,) = (workdir / "results" / name / "existing").iterdir()
    return out


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
    assert not (workdir / "results/test/runs").exists()
    out = existing_out(workdir, "test")
    assert out.name == "-".join((tmp_path / "theirs" / "runs").parts[1:])
    tidy = pd.read_csv(out / "tables/returns.csv")
    assert len(tidy) == 2 * 3 * 3 * 5
    assert set(tidy["env"]) == {"cartpole", "reacher"}
    for name in FIGURES:
        assert (out / f"figures/{name}.pdf").is_file()


def _tiny_runs(root: Path, seeds: dict[int, int]) -> Path:
    """Real runs of the runner at support.runs' tiny settings: seed -> iterations."""
    for seed, iters in seeds.items():
        _tiny_run(
            root / f"cartpole/PE-TSinf-CEM/seed{seed}", "cartpole", iters, "--seed", str(seed)
        )
    return root


def test_partial_runs_are_left_out_or_marked_and_the_report_states_the_settings(
    tmp_path: Path,
) -> None:
    """Real run dirs: 3 complete, one killed (no done.json). (A complete run with a shorter plan
    is no longer partial: tests/analysis/test_analysis.py, one setting of several lengths.)"""
    runs = _tiny_runs(tmp_path / "theirs", {1: 3, 2: 3, 3: 3, 4: 3})
    (runs / "cartpole/PE-TSinf-CEM/seed4/done.json").unlink()
    workdir = copy_workflow(tmp_path / "work")
    args = [
        "--cores",
        "2",
        "--configfile",
        "config/quick.yaml",
        "--config",
        f"existing_runs={runs}",
    ]
    result = snakemake(*args, cwd=workdir)  # the main command: tables, figures, report
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rule train" not in result.stdout + result.stderr
    for seed, why in ((4, "no done.json (killed or still running), 3 iterations"),):
        line = (
            f"partial run {runs}/cartpole/PE-TSinf-CEM/seed{seed}: {why}; left out "
            "(include it with --config include_partial=true)"
        )
        assert line in result.stderr, result.stderr[-3000:]
    table = (existing_out(workdir, "quick") / "tables/final_returns.md").read_text()
    assert "| cartpole | PE-TSinf-CEM | 3 |" in table
    configuration = (existing_out(workdir, "quick") / "tables/configuration.md").read_text()
    assert configuration.count("| cartpole | PE-TSinf-CEM |") == 1  # the partial runs left out
    assert "| cartpole | PE-TSinf-CEM | 1, 2, 3 | the paper's settings except " in configuration
    assert "popsize 8 (paper 400)" in configuration
    report = (existing_out(workdir, "quick") / "report.html").read_text(errors="replace")
    assert "configuration.html" in report and "popsize 8 (paper 400)" in report
    # the fidelity table and figure belong to a config with a preregistered block only
    assert not list(workdir.glob("results/quick/**/fidelity.md"))
    assert not list(workdir.glob("results/quick/**/fidelity.png"))

    marked = snakemake(*args, "include_partial=true", "--forceall", "figures", cwd=workdir)
    assert marked.returncode == 0, marked.stdout[-3000:] + marked.stderr[-3000:]
    assert f"partial run {runs}/cartpole/PE-TSinf-CEM/seed4" in marked.stderr
    assert "included, marked partial" in marked.stderr
    table = (existing_out(workdir, "quick") / "tables/final_returns.md").read_text()
    assert "| cartpole | PE-TSinf-CEM | 4 (1 partial) |" in table
    tidy = pd.read_csv(existing_out(workdir, "quick") / "tables/returns.csv")
    assert tidy.groupby("seed")["partial"].all().to_dict() == {
        1: False, 2: False, 3: False, 4: True
    }  # fmt: skip


REFERENCE_RUNS = REPO / "results/reference/fidelity"


@pytest.mark.skipif(
    not REFERENCE_RUNS.is_dir(),
    reason="results/reference/fidelity not committed yet (the paper-setting runs of issue 9)",
)
def test_fidelity_figure_and_table_regenerate_from_the_committed_reference_runs(
    tmp_path: Path,
) -> None:
    """The README's command, from logs.mat / metrics.csv / config.yaml / done.json alone."""
    workdir = copy_workflow(tmp_path / "work")
    result = snakemake(
        "figures", "--cores", "2", "--configfile", "config/fidelity.yaml",
        "--config", f"existing_runs={REFERENCE_RUNS}",
        cwd=workdir, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rule train" not in result.stdout + result.stderr
    # (in-progress runs are committed without done.json: the generic tables leave them out with
    # a notice, the fidelity table lists them as partial)
    out = existing_out(workdir, "fidelity")
    for name in ("best_so_far_trials", "best_so_far_steps", "fidelity"):
        assert (out / f"figures/{name}.png").stat().st_size > 1000
    fidelity = (out / "tables/fidelity.md").read_text()
    committed = sorted(REFERENCE_RUNS.glob("*/PE-TSinf-CEM/seed*/logs.mat"))
    for env in sorted({p.parts[-4] for p in committed}):
        # accepted at the paper's settings: only the number of trials differs
        line = re.search(rf"\*\*{env}\*\*: the paper's settings but the trial count .*", fidelity)
        assert line, fidelity
        for seed in (p.parts[-2].removeprefix("seed") for p in committed if p.parts[-4] == env):
            assert re.search(rf"seeds [\d, ]*\b{seed}\b[\d, ]* \(", line[0]), (seed, line[0])
    # every cell from metrics.csv, an independent record of each trial's best-so-far; a block
    # "env, group" holds the runs of the group's own directory beside the fidelity runs
    cells = pd.read_csv(out / "tables/fidelity.csv")
    for row in cells[cells["seeds"] > 0].itertuples():
        env, _, group = row.block.partition(", ")
        root = REFERENCE_RUNS.parent / group if group else REFERENCE_RUNS
        best = [
            metrics.loc[metrics["iteration"] == row.trials, "best_so_far"].item()
            for path in sorted(root.glob(f"{env}/PE-TSinf-CEM/seed*/metrics.csv"))
            if len(metrics := pd.read_csv(path)) >= row.trials
        ]
        assert row.seeds == len(best) and row.mean == pytest.approx(sum(best) / len(best))
        if row.seeds < 5:  # the range of the seeds (from 5: a bootstrap CI of the mean)
            assert (row.spread_low, row.spread_high) == pytest.approx((min(best), max(best)))
    # the README's table is this file, not hand-typed numbers
    readme = (REPO / "README.md").read_text()
    start, end = "<!-- fidelity-table: start -->\n", "<!-- fidelity-table: end -->"
    assert readme.split(start, 1)[1].split(end, 1)[0].strip() == fidelity.strip()


def test_killed_group_job_resumes_and_a_partial_group_reruns_its_unfinished_seed(
    tmp_path: Path,
) -> None:
    """seeds_per_job 2: D-E-CEM seeds 1 and 2 in one job. SIGKILL Snakemake and its job mid-run;
    the next workflow run resumes both seeds from their checkpoints. Then seed 2's run is
    deleted: the group job runs again, leaves seed 1 as it was (done.json kept, nothing
    recomputed) and remakes seed 2, the same run as before (same machine, same seed)."""
    workdir = copy_workflow(tmp_path / "work")
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config.update(name="one", seeds_per_job=2)
    config["experiments"] = {"one": {"variants": ["D-E-CEM"], "seeds": [1, 2]}}
    config["overrides"]["all"]["exp_cfg.exp_cfg.ntrain_iters"] = 6
    (workdir / "config/one.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    runs = workdir / "results/one/runs/cartpole/D-E-CEM"
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--configfile", "config/one.yaml", "--cores", "2"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while not (runs / "seed2/checkpoint.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # Snakemake and the training job, no cleanup
    process.wait()
    assert not any((runs / f"seed{s}/done.json").exists() for s in (1, 2))
    # a killed Snakemake leaves its lock: the documented recovery is --unlock, then run again
    assert snakemake("--configfile", "config/one.yaml", "--unlock", cwd=workdir).returncode == 0
    targets = [f"results/one/runs/cartpole/D-E-CEM/seed{s}/done.json" for s in (1, 2)]
    result = snakemake("--configfile", "config/one.yaml", "--cores", "2", *targets, cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rule train_seeds1_2:" in result.stdout + result.stderr  # one job for both seeds
    log = workdir / "results/one/logs/train/cartpole/D-E-CEM/seeds1-2.log"
    assert "resum" in log.read_text().lower(), log.read_text()[-2000:]
    returns = {s: list(pd.read_csv(runs / f"seed{s}/metrics.csv")["return"]) for s in (1, 2)}
    assert len(returns[1]) == len(returns[2]) == 6 and returns[1] != returns[2]

    def files(run_dir: Path) -> dict[str, tuple[bytes, int]]:
        """name -> (bytes, mtime) of a run's files; done.json's mtime left out: Snakemake touches
        every declared output of a job when it ends."""
        return {
            p.name: (p.read_bytes(), 0 if p.name == "done.json" else p.stat().st_mtime_ns)
            for p in run_dir.iterdir()
            if p.is_file()
        }

    seed1 = files(runs / "seed1")
    shutil.rmtree(runs / "seed2")
    result = snakemake("--configfile", "config/one.yaml", "--cores", "2", *targets, cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rule train_seeds1_2:" in result.stdout + result.stderr
    assert files(runs / "seed1") == seed1 and "done.json" in seed1  # kept, nothing recomputed
    assert "seed1 is already complete (done.json present); nothing to do" in log.read_text()
    assert list(pd.read_csv(runs / "seed2/metrics.csv")["return"]) == returns[2]


@pytest.mark.slow
def test_experiments_never_share_runs_or_outputs(tmp_path: Path) -> None:
    """Issue 28, cases 1 and 5, with a real one-job main command (config "one"):

    * after it, the paper matrix's dry run still shows all its jobs (it showed 1 when both wrote
      results/runs/cartpole/<variant>/seed<N>);
    * `snakemake figures` of another config (two.yaml, from one's runs) writes its own folder and
      leaves one's figures, tables and report alone; its closing lines name its own report.
    """
    workdir = copy_workflow(tmp_path / "w")
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["experiments"] = {"one": {"variants": ["D-E-CEM"], "seeds": [1]}}
    config["figures"]["best_so_far_variants"] = ["D-E-CEM"]
    (workdir / "one.yaml").write_text(yaml.safe_dump(config))
    fresh = snakemake("-n", "--nolock", cwd=workdir)
    assert fresh.returncode == 0, fresh.stderr
    paper_jobs = job_counts(fresh.stdout)
    # 360 runs + 12 other jobs (the fidelity table belongs to configs with a preregistered block)
    assert paper_jobs["train"] == 360 and paper_jobs["total"] == 372

    main = snakemake("--configfile", "one.yaml", "--cores", "1", cwd=workdir, timeout=600)
    assert main.returncode == 0, main.stdout[-3000:] + main.stderr[-3000:]
    one = workdir / "results/one"
    assert (one / "runs/cartpole/D-E-CEM/seed1/done.json").is_file()
    outputs = {p: p.read_bytes() for p in [*one.glob("figures/*"), *one.glob("tables/*")]}
    outputs[one / "report.html"] = (one / "report.html").read_bytes()
    assert len(outputs) > 10
    after = snakemake("-n", "--nolock", cwd=workdir)
    assert after.returncode == 0, after.stderr
    assert job_counts(after.stdout) == paper_jobs

    config["name"] = "two"
    config["figures"]["thresholds"] = {"cartpole": 5}
    (workdir / "two.yaml").write_text(yaml.safe_dump(config))
    figures = snakemake(
        "figures", "--cores", "1", "--configfile", "two.yaml",
        "--config", "existing_runs=results/one/runs", cwd=workdir,
    )  # fmt: skip
    output = figures.stdout + figures.stderr
    assert figures.returncode == 0, output[-3000:]
    assert "rule train" not in output
    two = workdir / "results/two/existing/one-runs"
    assert (two / "tables/final_returns.md").is_file() and (
        two / "figures/raw_returns.png"
    ).is_file()
    assert {p: p.read_bytes() for p in outputs} == outputs  # one's outputs untouched
    assert (
        "report:   snakemake --report results/two/existing/one-runs/report.html "
        "--configfile two.yaml --config existing_runs=results/one/runs"
    ) in output


def test_figures_refuse_runs_of_different_settings(tmp_path: Path) -> None:
    """Issue 28, case 3: existing_runs holding cartpole seeds of two task horizons made one curve
    and one "4 seeds" row, exit 0. Now the aggregate job fails naming both groups."""
    runs = tmp_path / "theirs"
    for seed, task_hor in ((1, 8), (2, 8), (3, 9), (4, 9)):
        _tiny_run(
            runs / f"cartpole/PE-TSinf-CEM/seed{seed}", "cartpole", 1, "--seed", str(seed),
            "-o", "exp_cfg.sim_cfg.task_hor", str(task_hor),
        )  # fmt: skip
    fp = {
        s: fingerprint(from_yaml(runs / f"cartpole/PE-TSinf-CEM/seed{s}/config.yaml"))
        for s in (1, 3)
    }
    workdir = copy_workflow(tmp_path / "work")
    result = snakemake(
        "figures", "--cores", "1", "--configfile", "config/quick.yaml",
        "--config", f"existing_runs={runs}", cwd=workdir,
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        "aggregate: error: runs of different settings are never averaged into one curve; "
        "aggregate each setting from its own folder:\n"
        "  cartpole PE-TSinf-CEM: 2 different settings\n"
    ) in result.stderr, result.stderr[-3000:]
    for seeds, s, task_hor in (("1, 2", 1, 8), ("3, 4", 3, 9)):
        line = f"    settings {fp[s]} (seeds {seeds}): exp_cfg.sim_cfg.task_hor {task_hor}\n"
        assert line in result.stderr
    assert not list(workdir.glob("results/quick/existing/*/figures/*"))


def test_one_setting_of_several_lengths_is_one_curve(tmp_path: Path) -> None:
    """The fidelity evidence's case (reacher / pusher seeds 1-3 at 17 trials, 4-6 at 25, one
    setting): complete runs of one setting and different lengths aggregate into one curve, all
    seeds up to the shortest, the longer after; the table's final is at the shared trial."""
    runs = _tiny_runs(tmp_path / "theirs", {1: 2, 2: 2, 3: 3})
    workdir = copy_workflow(tmp_path / "work")
    result = snakemake(
        "figures", "--cores", "1", "--configfile", "config/quick.yaml",
        "--config", f"existing_runs={runs}", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "partial run" not in result.stderr
    out = existing_out(workdir, "quick")
    tidy = pd.read_csv(out / "tables/returns.csv", dtype={"settings": str})
    assert tidy.groupby("iteration")["seed"].nunique().to_dict() == {1: 3, 2: 3, 3: 1}
    setting = fingerprint(from_yaml(runs / "cartpole/PE-TSinf-CEM/seed3/config.yaml"))
    assert set(tidy["settings"]) == {setting}
    summary = pd.read_csv(out / "tables/final_returns.csv").iloc[0]
    assert (summary["seeds"], summary["iterations"]) == (3, 2)
    at_2 = tidy[tidy["iteration"] == 2]["best_so_far"]
    assert summary["mean"] == pytest.approx(at_2.mean())


def test_fidelity_table_lists_partial_and_reduced_runs_and_refuses_other_settings(
    tmp_path: Path,
) -> None:
    """The runs still to come, faked beside copies of the committed ones: reacher seeds 4-5 at 25
    trials, seed 6 partial (no done.json, 12 of 25), the reduced half-cheetah check in its own
    directory; then a run at other settings, refused before any job."""
    from support.runs import fake_fidelity_run

    from pets_core.analysis.preregistration import read

    runs = tmp_path / "reference"
    shutil.copytree(REFERENCE_RUNS, runs / "fidelity")
    prereg = read(yaml.safe_load((REPO / "config/fidelity.yaml").read_text()))
    jump, reduced = (next(g for g in prereg.groups if g.name == n) for n in ("jump", "reduced"))
    for seed, trials in ((4, 25), (5, 25), (6, 12)):
        settings = prereg.settings(jump, "reacher", seed)
        fake_fidelity_run(runs / "fidelity", settings, [-60.0 + t + seed for t in range(trials)],
                          done=trials == 25)  # fmt: skip
    for seed in (1, 2, 3):
        settings = prereg.settings(reduced, "halfcheetah", seed)
        fake_fidelity_run(runs / "reduced", settings, [100.0 * t for t in range(15)])
    targets = ["figures"]
    args = [
        "--configfile",
        "config/fidelity.yaml",
        "--config",
        f"existing_runs={runs / 'fidelity'}",
    ]
    workdir = copy_workflow(tmp_path / "work")
    result = snakemake(*targets, "--cores", "1", *args, cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (existing_out(workdir, "fidelity") / "tables/fidelity.md").read_text()
    assert (
        "4, 5 complete (device cpu, wall time 1.0 h per run), 6 partial (12 of 25 trials)" in table
    )
    assert "; 6 (partial): -47.0 (-47.0) |" in table  # trial 8 of seed 6: -60 + 7 + 6
    assert "| 16 (2,400) | 5 |" in table  # 1-5: seed 6 never averaged beyond its trial 12
    assert "| 25 (3,750) | 2 | -31.5 | range of 2 seeds [-32.0, -31.0] |" in table
    assert "**halfcheetah, reduced**: preregistered.reduced: the paper's settings except " in table
    assert "| 15 (15,000) | 3 | 1400.0 | range of 3 seeds [1400.0, 1400.0] |" in table

    bad = runs / "fidelity/pusher/PE-TSinf-CEM/seed2"
    text = (bad / "config.yaml").read_text()
    (bad / "config.yaml").write_text(text.replace("npart: 20", "npart: 5"))
    workdir = copy_workflow(tmp_path / "work2")
    refused = snakemake(*targets, "--cores", "1", *args, cwd=workdir)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    assert (
        f"refused run {bad}: its config.yaml differs from config/fidelity.yaml + "
        "experiments.fidelity at ctrl_cfg.prop_cfg.npart: 5 != 20 (the run's value first)"
    ) in output
    assert "Job stats" not in output and not (workdir / "results").exists()
