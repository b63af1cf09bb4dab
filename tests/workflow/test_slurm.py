"""The SLURM profile: its resources in a dry run, and a real one-node SLURM cluster (.ci/slurm-up:
munge, mariadb, slurmdbd, slurmctld, slurmd on loopback) running the test matrix through sbatch,
two seeds per job (seeds_per_job 2), with one job preempted (requeued) mid-run that must resume
from its checkpoints.

The real run needs root and Debian's packages (slurm-up installs them with apt when missing); it
skips only where it cannot run (not root, no apt). CI runs as root, so there it always runs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support.workflow import REPO, copy_workflow

TRAIN_KEYS = ("gpu=0", "mem_mb=1000", "runtime=10")  # config/test.yaml's train:
SACCT_FIELDS = (
    "JobIdRaw,JobName,State,AllocCPUS,ReqMem,Timelimit,AllocTRES,Partition,Account,Comment"
)


def _train_resources(env: dict[str, str]) -> list[str]:
    """The 'resources:' line of every train job in a dry run of config/test.yaml."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PETS_SLURM_")},
        **env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--nolock", "--workflow-profile",
         "workflow/profiles/slurm", "--configfile", "config/test.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    train, rule = [], None
    for line in result.stdout.splitlines():
        if line.startswith("rule "):
            rule = line
        elif line.strip().startswith("resources:") and rule == "rule train:":
            train.append(line)
    return train


def test_profile_partition_and_account_come_from_the_environment() -> None:
    train = _train_resources({"PETS_SLURM_PARTITION": "gpu-a100", "PETS_SLURM_ACCOUNT": "proj7"})
    assert len(train) == 8
    for line in train:
        assert "slurm_partition=gpu-a100" in line and "slurm_account=proj7" in line, line
        assert all(key in line for key in TRAIN_KEYS), line
    unset = _train_resources({})  # the cluster's default partition, the user's default account
    assert all("slurm_partition=," in line and "slurm_account=," in line for line in unset)


def test_profile_keeps_logs_and_resumes_preempted_jobs() -> None:
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["slurm-requeue"] is True
    assert profile["retries"] >= 1 and profile["slurm-keep-successful-logs"] is True
    assert profile["slurm-logdir"].startswith("results/logs/")
    # the train rules declare only done.json: a retried/requeued job keeps its checkpoint
    assert "checkpoint" not in (REPO / "workflow/rules/train.smk").read_text().split("output:")[1]
    # a job's size comes from config train (times its seeds), not from per-rule profile values
    assert "set-resources" not in profile and "set-threads" not in profile


# --- a real cluster --------------------------------------------------------------------------


def _free_port_base(n: int = 4) -> int:
    for base in range(26817, 40000, 7):
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports on 127.0.0.1")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    # CI sets PETS_REQUIRE_SLURM=1: there a cluster that cannot start fails instead of skipping.
    cannot = pytest.fail if os.environ.get("PETS_REQUIRE_SLURM") == "1" else pytest.skip
    if os.geteuid() != 0:
        cannot("a real SLURM cluster needs root (CI runs as root)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        cannot("no SLURM packages and no apt-get to install them")
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "PETS_SLURM_PORT": str(_free_port_base())}
    up = subprocess.run(
        ["bash", str(REPO / ".ci/slurm-up"), str(state)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if up.returncode == 77:
        cannot(up.stderr.strip())
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        yield {"SLURM_CONF": str(state / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(REPO / ".ci/slurm-down"), str(state)], timeout=120)


def _slurm(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run(
        args, env={**os.environ, **env}, check=True, capture_output=True, text=True, timeout=60
    ).stdout


def _start_now(job: str, env: dict) -> None:
    """Cut SLURM's 120 s requeue delay once the requeued job is pending again."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = _slurm(["squeue", "-h", "-j", job, "-o", "%T"], env).strip()
        if state == "PENDING":
            _slurm(["scontrol", "update", f"jobid={job}", "StartTime=now"], env)
            return
        time.sleep(0.2)
    raise AssertionError(f"requeued job {job} never became pending again")


def _requeue_one_job_mid_way(workdir: Path, process: subprocess.Popen, env: dict) -> str:
    """Preempt (requeue) the first training job seen with a run that has a checkpoint but no
    done.json, as a preempting partition would; SLURM's own 120 s requeue delay is cut short.
    Returns its variant (a job = the variant's seeds 1 and 2)."""
    runs = workdir / "results/slurm-test/runs/cartpole"
    while process.poll() is None:
        for run in sorted(runs.glob("*/seed*")):
            if (run / "checkpoint.pt").exists() and not (run / "done.json").exists():
                wildcards = f"cartpole_{run.parent.name}"
                queue = _slurm(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], env)
                job = [j for j, c in (x.split("|") for x in queue.split()) if c.endswith(wildcards)]
                if job:
                    _slurm(["scontrol", "requeue", job[0]], env)
                    _start_now(job[0], env)
                    return run.parent.name
        time.sleep(0.1)
    raise AssertionError("the workflow ended before any run could be preempted")


@pytest.mark.slow
def test_test_matrix_through_a_real_slurm_cluster(slurm_cluster: dict, tmp_path: Path) -> None:
    """config/test.yaml (2 seeds, 3 trials), both seeds of a variant in one job (seeds_per_job 2),
    through sbatch: every job in sacct with its resources (threads and memory of 2 runs, 1 GPU),
    per-job SLURM logs, a preempted job resumed from its checkpoints, all outputs."""
    env = {**slurm_cluster, "PETS_SLURM_PARTITION": "gpu", "PETS_SLURM_ACCOUNT": "pets"}
    workdir = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["experiments"]["test"]["seeds"] = [1, 2]
    config["seeds_per_job"] = 2
    config["train"].update(threads=2, gpu=1)  # per run: 2 CPUs, 1000 MB (test.yaml); 1 GPU a job
    config["overrides"]["all"]["exp_cfg.exp_cfg.ntrain_iters"] = 3  # a wider preemption window
    (workdir / "config/slurm-test.yaml").write_text(yaml.safe_dump(config))
    start = time.strftime("%Y-%m-%dT%H:%M:%S")
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/slurm",
         "--configfile", "config/slurm-test.yaml",
         "--slurm-init-seconds-before-status-checks", "2"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )  # fmt: skip
    try:
        preempted = _requeue_one_job_mid_way(workdir, process, env)
        output, _ = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
            subprocess.run(["scancel", "--name", "*"], env={**os.environ, **env}, check=False)
    assert process.returncode == 0, output[-4000:]

    rows = [
        dict(zip(SACCT_FIELDS.split(","), line.split("|"), strict=True))
        for line in _slurm(
            ["sacct", "-X", "-D", "-n", "-P", "-S", start, "-E", "now", "-o", SACCT_FIELDS], env
        ).splitlines()
    ]
    variants = {"PE-TSinf-CEM", "D-E-CEM"}
    by_job: dict[str, list[dict]] = {}  # variant -> its job's sacct rows (seeds 1 and 2)
    for row in rows:
        by_job.setdefault(
            row["Comment"].removeprefix("rule_train_seeds1_2_wildcards_cartpole_"), []
        ).append(row)
    assert set(by_job) == variants, rows
    assert len({row["JobName"] for row in rows}) == 1  # one workflow run (its uuid)
    for variant, jobs in by_job.items():
        states = [job["State"] for job in jobs]
        expected = ["REQUEUED", "COMPLETED"] if variant == preempted else ["COMPLETED"]
        assert states == expected, variant
        for job in jobs:  # config train x 2 seeds, as SLURM granted it
            assert (job["AllocCPUS"], job["ReqMem"], job["Timelimit"]) == ("4", "2000M", "00:10:00")
            assert "gres/gpu=1" in job["AllocTRES"].split(",")
            assert (job["Partition"], job["Account"]) == ("gpu", "pets")

    results = workdir / "results"
    for variant in variants:
        for seed in (1, 2):
            run_dir = results / f"slurm-test/runs/cartpole/{variant}/seed{seed}"
            assert json.loads((run_dir / "done.json").read_text())["iterations"] == 3
            metrics = (run_dir / "metrics.csv").read_text().splitlines()
            assert len(metrics) == 1 + 3, metrics  # header + each iteration once, requeued or not
        job_ids = {j["JobIdRaw"] for j in by_job[variant]}
        logs = list((results / f"logs/slurm/rule_train_seeds1_2/cartpole_{variant}").glob("*.log"))
        assert {p.stem for p in logs} == job_ids  # one SLURM log per job, kept after success
    train_log = (results / f"slurm-test/logs/train/cartpole/{preempted}/seeds1-2.log").read_text()
    assert "resuming" in train_log and "after iteration" in train_log, train_log[-2000:]
    assert (results / "slurm-test/tables/final_returns.md").is_file()
    assert (results / "slurm-test/mlflow.ingested").is_file()
