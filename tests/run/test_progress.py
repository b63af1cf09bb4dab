"""What a run shows while it runs (run.progress): exact lines and ETAs with a fake clock, and
real tiny runs through a pipe (a log file) and through a pty (a terminal)."""

import fcntl
import io
import json
import math
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from support.runs import TASK_HOR, run, tiny_args

from pets_core.config import fingerprint, from_yaml
from pets_core.results import naming
from pets_core.results.metrics import read_metrics_csv
from pets_core.run.progress import Progress, hms, workflow_summary

REPO = Path(__file__).resolve().parents[2]


def test_hms() -> None:
    assert [hms(x) for x in (0, 12.3, 59.6, 61, 3723, -1)] == [
        "0:00",
        "0:12",
        "1:00",
        "1:01",
        "1:02:03",
        "0:00",
    ]
    assert hms(math.nan) == hms(math.inf) == "?"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_every_n_seconds_summary_line_and_etas() -> None:
    clock, out, err = Clock(), io.StringIO(), io.StringIO()
    p = Progress(
        label="cartpole PE-TSinf-CEM seed 1",
        ntrain_iters=2,
        steps_per_iter=4,
        loss_name="train nll",
        live=False,
        every_s=10.0,
        out=out,
        err=err,
        clock=clock,
    )
    p.start_iteration(1)
    for now in (3.0, 6.0, 9.0, 12.0):  # 3 s per step, 2 s of it planning
        clock.now = now
        p.step(2.0)
    # step 4 at 12 s is the first >= 10 s after the start: one line; first iteration ->
    # run ETA = 0 s left here + 1 iteration x (12 s / 4 steps x 4 steps)
    assert err.getvalue() == (
        "cartpole PE-TSinf-CEM seed 1 iter 1/2 step 4/4: 2.000 s/action, iteration ETA 0:00, "
        "run ETA 0:12\n"
    )
    p.training(160)
    clock.now = 15.0
    line = p.end_iteration(ret=1.5, best=2.25, train_loss=math.nan, s_per_action=2.0, train_s=3.0)
    assert line == (
        "iter 1/2  return     1.50  best     2.25  train nll         -  2.000 s/action  0:15  "
        "run ETA 0:15"
    )
    assert out.getvalue() == line + "\n"
    assert err.getvalue().endswith(
        "cartpole PE-TSinf-CEM seed 1 iter 1/2: training on 160 transitions\n"
    )

    p.start_iteration(2)
    clock.now = 17.0
    p.step(1.0)
    # last iteration: 3 steps x 2 s left, no training after it; nothing after it either
    assert (p.iteration_eta(), p.run_eta(), p.s_per_action) == (6.0, 6.0, 1.0)
    clock.now = 19.0
    p.step(1.0)
    assert (p.iteration_eta(), p.run_eta()) == (4.0, 4.0)
    assert "\r" not in err.getvalue() + out.getvalue()
    assert err.getvalue().count("\n") == 2  # under 10 s since the last line: nothing new


def test_middle_iteration_eta_counts_training_and_the_remaining_iterations() -> None:
    clock = Clock()
    p = Progress(
        label="x",
        ntrain_iters=5,
        steps_per_iter=10,
        loss_name="train mse",
        live=False,
        every_s=1e9,
        out=io.StringIO(),
        err=io.StringIO(),
        clock=clock,
    )
    p.start_iteration(1)
    clock.now = 40.0
    for _ in range(10):
        p.step(0.5)
    p.end_iteration(ret=0, best=0, train_loss=0.25, s_per_action=0.5, train_s=5.0)  # 40 s
    clock.now = 100.0
    p.start_iteration(2)
    clock.now = 108.0
    for _ in range(4):
        p.step(0.5)
    # 6 steps x 2 s + 5 s training = 17 s; then 3 iterations x 40 s
    assert (p.iteration_eta(), p.run_eta()) == (17.0, 17.0 + 120.0)


def _runner(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    argv = [a for a in argv if a != "--no-progress"]
    return subprocess.run(
        [sys.executable, "-m", "pets_core.mbexp", *argv], cwd=REPO, timeout=300, **kwargs
    )


def test_log_file_progress_has_no_carriage_returns_and_one_line_per_iteration(tmp_path):
    run_dir = tmp_path / "run"
    uri = f"sqlite:///{tmp_path}/m.db"
    argv = [*tiny_args("cartpole", iters=2), "--run-dir", str(run_dir), "--progress-every", "0"]
    argv[argv.index("--mlflow-uri") + 1] = uri
    with open(tmp_path / "job.log", "w") as log:  # as Snakemake runs it: > log 2>&1
        assert _runner(argv, stdout=log, stderr=subprocess.STDOUT).returncode == 0
    text = (tmp_path / "job.log").read_text()
    assert "\r" not in text
    lines = text.splitlines()
    label = "cartpole PE-TSinf-CEM seed 0"
    for i in (1, 2):  # --progress-every 0: a line after every step
        steps = [ln for ln in lines if ln.startswith(f"{label} iter {i}/2 step ")]
        assert [ln.split(":")[0] for ln in steps] == [
            f"{label} iter {i}/2 step {k}/{TASK_HOR}" for k in range(1, TASK_HOR + 1)
        ]
    assert f"{label} iter 1/2: training on {2 * TASK_HOR} transitions" in lines
    rows = read_metrics_csv(run_dir)  # the oracle for the summary lines: metrics.csv
    summary = [ln for ln in lines if ln.startswith("iter ")]
    assert len(summary) == 2
    for line, row in zip(summary, rows, strict=True):
        assert line.startswith(
            f"iter {int(row['iteration'])}/2  return {row['return']:8.2f}  "
            f"best {row['best_so_far']:8.2f}  train nll "
        )
        assert f"  {row['plan_s_per_action']:.3f} s/action  " in line

    import mlflow

    (found,) = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("pets-cartpole").experiment_id]
    )
    where = run_dir.resolve()
    name = naming.run_name("PE-TSinf-CEM", 0, fingerprint(from_yaml(run_dir / "config.yaml")))
    page = f"#/experiments/{found.info.experiment_id}/runs/{found.info.run_id}"
    assert lines[-4:] == [
        f"results: {where}  (metrics.csv, logs.mat, config.yaml, model.pt)",
        f"MLflow:  run {name} ({found.info.run_id}) in experiment pets-cartpole",
        f"browse:  mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{page}"
        "?workflowType=machine_learning",
        f"video:   python -m pets_core.render -env cartpole -model-dir {where}",
    ]


def test_without_mlflow_the_summary_says_how_to_add_it_later(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert run(run_dir, tiny_args("cartpole", iters=1)) == 0
    out = capsys.readouterr().out.splitlines()
    where = run_dir.resolve()
    assert out[-3:] == [
        f"results: {where}  (metrics.csv, logs.mat, config.yaml, model.pt)",
        f"MLflow:  not logged; add it later with python -m pets_core.ingest {where} "
        f"--mlflow-uri sqlite:///{Path.cwd() / 'results' / 'mlflow.db'}",  # pastes anywhere
        f"video:   python -m pets_core.render -env cartpole -model-dir {where}",
    ]


def test_terminal_shows_a_live_bar_and_keeps_the_iteration_lines(tmp_path) -> None:
    """Through a real pty (what a terminal gives): tqdm redraws with carriage returns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    argv = [*tiny_args("cartpole", iters=2), "--run-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pets_core.mbexp", *[a for a in argv if a != "--no-progress"]],
        cwd=REPO,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(master)
    text = b"".join(chunks).decode()
    assert re.search("\r(?!\n)", text)  # a live bar redraws (the pty turns \n into \r\n)
    # the bar of iteration 1 (its s/action and ETA postfix appear once a redraw falls between two
    # steps, which a tiny run on a fast machine may never give: the fake-clock tests check those)
    bar = re.search(
        r"cartpole PE-TSinf-CEM seed 0 iter 1/2: +\d/8 steps \|.*\| [\d:]+<[\d:?]+", text
    )
    assert bar, text
    lines = [ln.split("\r")[-1] for ln in text.replace("\r\n", "\n").split("\n")]
    assert sum(ln.startswith(("iter 1/2  return", "iter 2/2  return")) for ln in lines) == 2


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for variant, seed in (("PE-TSinf-CEM", 1), ("PE-TSinf-CEM", 2), ("D-E-CEM", 1)):
        argv = tiny_args("cartpole", variant, iters=2 if variant == "D-E-CEM" else 1)
        assert run(root / "cartpole" / variant / f"seed{seed}", argv, "--seed", str(seed)) == 0
    (root / "cartpole" / "D-E-CEM" / "seed9").mkdir()  # never finished: no done.json
    return root


def test_workflow_summary_table_from_done_json(three_runs: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dirs = sorted(three_runs.glob("*/*/seed*"))
    done = {
        d: json.loads((d / "done.json").read_text()) for d in dirs if (d / "done.json").exists()
    }
    text = workflow_summary(
        dirs,
        tracking_uri="sqlite:///results/mlflow.db",
        configfiles=["config/quick.yaml"],
        out="results/quick",
        runs_root="results/quick/runs",
    )
    lines = text.splitlines()
    assert lines[0] == "PETS workflow: 3 complete run(s)"
    assert re.split(r"\s{2,}", lines[1]) == [
        "env",
        "variant",
        "seeds",
        "iterations",
        "best-so-far mean [min, max]",
        "wall (sum)",
    ]
    pe = [v["final_best_so_far"] for v in done.values() if v["variant"] == "PE-TSinf-CEM"]
    (d_best,) = [v["final_best_so_far"] for v in done.values() if v["variant"] == "D-E-CEM"]
    assert re.split(r"\s{2,}", lines[2].strip())[:5] == [
        "cartpole",
        "D-E-CEM",
        "1",
        "2",
        f"{d_best:.2f} [{d_best:.2f}, {d_best:.2f}]",
    ]
    assert re.split(r"\s{2,}", lines[3].strip())[:5] == [
        "cartpole",
        "PE-TSinf-CEM",
        "2",
        "1",
        f"{sum(pe) / 2:.2f} [{min(pe):.2f}, {max(pe):.2f}]",
    ]
    assert lines[-3:-1] == [
        "MLflow:   mlflow ui --backend-store-uri sqlite:///results/mlflow.db, then open",
        "          http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
        "  (pets-cartpole)",
    ]  # no store in this directory: the experiments list
    assert (
        lines[-1]
        == "report:   snakemake --report results/quick/report.html --configfile config/quick.yaml"
    )


WHERE = {"out": "results/q", "runs_root": "results/q/runs"}
"""Where an experiment named q keeps its outputs and runs (README, Layout)."""


def test_workflow_summary_commands_are_shell_quoted(tmp_path: Path) -> None:
    text = workflow_summary(
        [],
        tracking_uri=f"sqlite:///{tmp_path}/my store/mlflow.db",
        configfiles=["my cfg/q.yaml"],
        **WHERE,
    )
    assert "snakemake --report results/q/report.html --configfile 'my cfg/q.yaml'" in text
    assert f"mlflow ui --backend-store-uri 'sqlite:///{tmp_path}/my store/mlflow.db'" in text


def test_workflow_summary_names_a_damaged_done_json(three_runs: Path, tmp_path: Path) -> None:
    shutil.copytree(three_runs, tmp_path / "runs")  # the fixture is shared: damage a copy
    dirs = sorted(tmp_path.glob("runs/*/*/seed*"))
    (dirs[0] / "done.json").write_text("{")
    text = workflow_summary(dirs, tracking_uri=None, **WHERE)
    assert f"damaged:  {dirs[0]}/done.json is damaged (not JSON: " in text


def test_workflow_summary_links_each_experiments_runs(three_runs: Path, tmp_path, monkeypatch):
    """With a real sqlite store the link opens the experiment's runs table (Model training)."""
    import mlflow

    from pets_core.results import store

    monkeypatch.chdir(tmp_path)
    uri = "sqlite:///results/mlflow.db"
    store.init_store(uri, ["pets-reacher", "pets-cartpole"])
    exp_id = mlflow.MlflowClient(uri).get_experiment_by_name("pets-cartpole").experiment_id
    text = workflow_summary(sorted(three_runs.glob("*/*/seed*")), tracking_uri=uri, **WHERE)
    assert (
        f"          http://127.0.0.1:5000/#/experiments/{exp_id}?workflowType=machine_learning"
        "  (pets-cartpole)"
    ) in text.splitlines()
    server = workflow_summary(
        sorted(three_runs.glob("*/*/seed*")), tracking_uri="http://h:1/", **WHERE
    )
    assert server.splitlines()[-3:-1] == [
        "MLflow:   open",
        "          http://h:1/#/experiments?workflowType=machine_learning  (pets-cartpole)",
    ]  # an unreachable server: the experiments list, at once


def test_status_line_names_the_run_once_per_iteration() -> None:
    clock, status = Clock(), io.StringIO()
    p = Progress(
        label="cartpole D-E-CEM seed 2",
        ntrain_iters=4,
        steps_per_iter=2,
        loss_name="train mse",
        live=False,
        out=io.StringIO(),
        err=io.StringIO(),
        status=status,
        clock=clock,
    )
    p.start_iteration(1)
    p.step(0.25)
    clock.now = 90.0  # 1:30 per iteration, 3 to go
    p.end_iteration(ret=-3.14159, best=7.0, train_loss=0.1, s_per_action=0.25, train_s=1.0)
    assert status.getvalue() == (
        "cartpole D-E-CEM seed 2  iter 1/4  return -3.1  best 7.0  0.25 s/action  ETA 4:30\n"
    )


def test_status_fd_gets_the_iteration_lines_and_a_bad_fd_is_one_line(tmp_path) -> None:
    read, write = os.pipe()
    argv = [*tiny_args("cartpole", iters=2), "--run-dir", str(tmp_path / "run")]
    proc = subprocess.run(
        [sys.executable, "-m", "pets_core.mbexp", *argv, "--status-fd", str(write)],
        cwd=REPO,
        pass_fds=(write,),
        capture_output=True,
        text=True,
        timeout=300,
    )
    os.close(write)
    with os.fdopen(read) as f:
        lines = f.read().splitlines()
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_metrics_csv(tmp_path / "run")
    assert [ln.split("  ETA ")[0] for ln in lines] == [
        f"cartpole PE-TSinf-CEM seed 0  iter {int(r['iteration'])}/2  return {r['return']:.1f}  "
        f"best {r['best_so_far']:.1f}  {r['plan_s_per_action']:.2f} s/action"
        for r in rows
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "pets_core.mbexp", *argv[:-2], "--status-fd", "97"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (bad.returncode, bad.stderr) == (
        2,
        "mbexp: error: --status-fd 97 is not an open file descriptor\n",
    )
