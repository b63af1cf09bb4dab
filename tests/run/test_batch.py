"""`python -m pets_core.batch`: a pipeline config's runs without Snakemake (a lent GPU box), and the
job matrix it shares with the Snakefile (pets_core.run.matrix). Real tiny runs on CPU."""

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from pets_core.cli.batch import _parse
from pets_core.cli.batch import main as batch_main
from pets_core.config import ConfigError
from pets_core.run.matrix import jobs, runner_args, seed_groups, train_jobs

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "exp_cfg.sim_cfg.task_hor": 15,
    "exp_cfg.exp_cfg.ntrain_iters": 2,
    "ctrl_cfg.opt_cfg.cfg.popsize": 20,
    "ctrl_cfg.opt_cfg.cfg.num_elites": 4,
    "ctrl_cfg.prop_cfg.npart": 5,
    "ctrl_cfg.opt_cfg.plan_hor": 4,
    "ctrl_cfg.prop_cfg.model_train_cfg.epochs": 1,
}


def _config(tmp_path: Path, **extra) -> Path:
    config = {
        "envs": ["cartpole", "reacher"],
        "experiments": {
            "a": {"variants": ["PE-TSinf-CEM"], "seeds": [1, 2]},
            "b": {"variants": ["PE-TSinf-CEM", "D-E-Random"], "seeds": [2]},  # shares one run
        },
        "overrides": {"all": TINY, "reacher": {"exp_cfg.exp_cfg.ntrain_iters": 1}},
        **extra,
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_matrix_and_each_jobs_runner_arguments(tmp_path):
    config = yaml.safe_load(_config(tmp_path).read_text())
    assert jobs(config) == [
        ("cartpole", "D-E-Random", 2),
        ("cartpole", "PE-TSinf-CEM", 1),
        ("cartpole", "PE-TSinf-CEM", 2),
        ("reacher", "D-E-Random", 2),
        ("reacher", "PE-TSinf-CEM", 1),
        ("reacher", "PE-TSinf-CEM", 2),
    ]
    tiny = [x for path, value in TINY.items() for x in ("-o", path, str(value))]
    assert runner_args(config, "cartpole", "PE-TSinf-CEM", (1,)) == [
        "-env", "cartpole", "-ca", "model-type", "PE", "-ca", "prop-type", "TSinf",
        "-ca", "opt-type", "CEM", *tiny, "--seed", "1",
    ]  # fmt: skip
    # overrides.<env> wins; a leaf the variant fixes itself (npart under E) is left out
    reacher = runner_args(config, "reacher", "D-E-Random", (2,))
    assert reacher[reacher.index("exp_cfg.exp_cfg.ntrain_iters") + 1] == "1"
    assert "ctrl_cfg.prop_cfg.npart" not in reacher
    assert reacher[:8] == ["-env", "reacher", "-ca", "model-type", "D", "-ca", "prop-type", "E"]
    # a group of seeds: one runner for all of them (pets_core.mbexp --seeds)
    assert runner_args(config, "cartpole", "PE-TSinf-CEM", (1, 2))[-2:] == ["--seeds", "1,2"]


def test_seeds_per_job_groups_each_env_variant_s_seeds(tmp_path):
    config = yaml.safe_load(_config(tmp_path).read_text())
    assert train_jobs(config) == [(e, v, (s,)) for e, v, s in jobs(config)]  # default: 1
    config["seeds_per_job"] = 2
    assert train_jobs(config) == [
        ("cartpole", "D-E-Random", (2,)),
        ("cartpole", "PE-TSinf-CEM", (1, 2)),
        ("reacher", "D-E-Random", (2,)),
        ("reacher", "PE-TSinf-CEM", (1, 2)),
    ]
    # consecutive ascending seeds; a number not divided by N: the last group is smaller
    assert seed_groups([5, 3, 1, 4, 2], 2) == [(1, 2), (3, 4), (5,)]
    assert seed_groups([10, 20, 30], 3) == [(10, 20, 30)]
    assert seed_groups([7, 8], 5) == [(7, 8)]  # more than the seeds: one group


@pytest.mark.parametrize("value", [0, -1, "two", 2.0, True, None])
def test_a_bad_seeds_per_job_is_one_line_naming_the_key(value, tmp_path, monkeypatch, capsys):
    config = yaml.safe_load(_config(tmp_path).read_text())
    with pytest.raises(ConfigError) as info:
        train_jobs({**config, "seeds_per_job": value})
    assert str(info.value) == f"config key seeds_per_job: {value!r} is not an integer >= 1"
    cfg = _config(tmp_path, seeds_per_job=value)
    monkeypatch.chdir(tmp_path)
    assert batch_main(["--configfile", str(cfg), "--out", "o"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"python -m pets_core.batch: error: argument --configfile: {cfg}: "
        f"config key seeds_per_job: {value!r} is not an integer >= 1\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]


def test_jobs_picked_by_env_and_seed(tmp_path):
    """--envs narrows the matrix; --seeds replaces the config's seeds (more seeds on a GPU box)."""
    cfg = str(_config(tmp_path))
    picked = _parse(["--configfile", cfg, "--out", "o", "--envs", "reacher"]).jobs
    assert picked == [("reacher", "D-E-Random", (2,)), ("reacher", "PE-TSinf-CEM", (1,)),
                      ("reacher", "PE-TSinf-CEM", (2,))]  # fmt: skip
    more = _parse(["--configfile", cfg, "--out", "o", "--envs", "cartpole", "--seeds", "9,4"]).jobs
    assert more == [(e, v, (s,)) for e in ["cartpole"] for v in ["D-E-Random", "PE-TSinf-CEM"]
                    for s in (4, 9)]  # fmt: skip
    # seeds_per_job groups the seeds given as it groups the config's
    two = str(_config(tmp_path, seeds_per_job=2))
    three = _parse(["--configfile", two, "--out", "o", "--envs", "cartpole", "--seeds", "5,3,4"])
    assert three.jobs == [(e, v, s) for e in ["cartpole"] for v in ["D-E-Random", "PE-TSinf-CEM"]
                          for s in ((3, 4), (5,))]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "o"], "--configfile"),
        (["--configfile", "missing.yaml", "--out", "o"], "cannot read missing.yaml"),
        (["--configfile", "{cfg}", "--out", "o", "--envs", "pusher"],
         "--envs: pusher is not in {cfg}; valid: cartpole, reacher"),
        (["--configfile", "{cfg}", "--out", "o", "--seeds", "1,x"], "--seeds"),
        (["--configfile", "{cfg}", "--out", "o", "--parallel", "0"], "--parallel"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(argv, message, tmp_path, monkeypatch, capsys):
    cfg = _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{cfg}", str(cfg)) for a in argv]
    assert batch_main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("python -m pets_core.batch: error: ")
    assert message.replace("{cfg}", str(cfg)) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]


def _batch(tmp_path, *extra, timeout=300, **config):
    cfg = _config(tmp_path, **config)
    cmd = [sys.executable, "-m", "pets_core.batch", "--configfile", str(cfg),
           "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--device", "cpu",
           "--threads", "1", "--envs", "cartpole", *extra]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    report = json.loads((tmp_path / "out" / "batch.json").read_text())
    return proc, report


def test_runs_in_parallel_stops_at_the_deadline_and_resumes(tmp_path):
    # 1 s: every run is stopped before it completes a trial; nothing is packed
    proc, report = _batch(tmp_path, "--parallel", "2", "--deadline-s", "1")
    assert proc.returncode == 0, proc.stderr
    statuses = {name: job["status"] for name, job in report["jobs"].items()}
    assert statuses == {
        "cartpole-D-E-Random-seed2": "unfinished",
        "cartpole-PE-TSinf-CEM-seed1": "unfinished",
        "cartpole-PE-TSinf-CEM-seed2": "not started",
    }
    assert report["packed"] == []
    # again, with time: the stopped runs resume in their directories, all three finish
    proc, report = _batch(tmp_path, "--parallel", "2")
    assert proc.returncode == 0, proc.stderr
    assert {job["status"] for job in report["jobs"].values()} == {"done"}
    assert all(job["trials"] == 2 and len(job["returns"]) == 2 for job in report["jobs"].values())
    assert report["packed"] == [
        "cartpole-D-E-Random-seed2", "cartpole-PE-TSinf-CEM-seed1", "cartpole-PE-TSinf-CEM-seed2",
    ]  # fmt: skip
    with tarfile.open(tmp_path / "out" / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    for run in ("D-E-Random/seed2", "PE-TSinf-CEM/seed1", "PE-TSinf-CEM/seed2"):
        for file in ("logs.mat", "metrics.csv", "config.yaml", "done.json"):
            assert f"cartpole/{run}/{file}" in names
    assert len(names) == 3 * 4  # the four files of each run and nothing else (no models)
    with tarfile.open(tmp_path / "out" / "logs.tar.gz") as tar:
        logs = sorted(tar.getnames())
    assert logs == [f"cartpole-{run.replace('/', '-')}.log" for run in (
        "D-E-Random/seed2", "PE-TSinf-CEM/seed1", "PE-TSinf-CEM/seed2")]  # fmt: skip
    # a third call finds everything done: nothing runs, everything is packed again
    proc, report = _batch(tmp_path)
    assert {job["status"] for job in report["jobs"].values()} == {"done before"}
    assert len(report["packed"]) == 3


def _by_hand(run_dir: Path, seed: int) -> Path:
    """The oracle: cartpole PE-TSinf-CEM started by hand with the matrix's documented arguments."""
    args = ["-env", "cartpole", "-ca", "model-type", "PE", "-ca", "prop-type", "TSinf",
            "-ca", "opt-type", "CEM", *[x for p, v in TINY.items() for x in ("-o", p, str(v))],
            "--seed", str(seed), "--run-dir", str(run_dir), "--device", "cpu", "--threads", "1",
            "--mlflow-uri", "none", "--no-progress"]  # fmt: skip
    subprocess.run([sys.executable, "-m", "pets_core.mbexp", *args], cwd=REPO, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    return run_dir


def _returns(run_dir):
    return [line.split(",")[2] for line in (run_dir / "metrics.csv").read_text().splitlines()]


def test_a_batch_run_is_the_run_the_runner_makes_from_the_same_arguments(tmp_path):
    proc, _ = _batch(tmp_path, "--seeds", "1", "--parallel", "1")
    assert proc.returncode == 0, proc.stderr
    by_hand = _by_hand(tmp_path / "by-hand", 1)
    batch_dir = tmp_path / "work" / "cartpole" / "PE-TSinf-CEM" / "seed1"
    assert _returns(batch_dir) == _returns(by_hand) and len(_returns(by_hand)) == 3
    assert (batch_dir / "config.yaml").read_text() == (by_hand / "config.yaml").read_text()


def test_a_group_job_runs_its_seeds_in_one_runner_and_each_is_its_single_run(tmp_path):
    """seeds_per_job 2: cartpole PE-TSinf-CEM seeds 1 and 2 in one runner (one log), D-E-Random
    seed 2 alone. The oracle: PE-TSinf-CEM seed 2 run alone by hand with the same arguments."""
    proc, report = _batch(tmp_path, "--parallel", "1", seeds_per_job=2)
    assert proc.returncode == 0, proc.stderr
    runs = ["D-E-Random-seed2", "PE-TSinf-CEM-seed1", "PE-TSinf-CEM-seed2"]
    assert {name: job["status"] for name, job in report["jobs"].items()} == {
        f"cartpole-{run}": "done" for run in runs
    }
    logs = {name: job["log"] for name, job in report["jobs"].items()}
    assert logs == {
        "cartpole-D-E-Random-seed2": "cartpole-D-E-Random-seed2.log",
        "cartpole-PE-TSinf-CEM-seed1": "cartpole-PE-TSinf-CEM-seeds1-2.log",
        "cartpole-PE-TSinf-CEM-seed2": "cartpole-PE-TSinf-CEM-seeds1-2.log",
    }
    with tarfile.open(tmp_path / "out" / "logs.tar.gz") as tar:
        assert sorted(tar.getnames()) == sorted(set(logs.values()))
    with tarfile.open(tmp_path / "out" / "runs.tar.gz") as tar:
        assert len(tar.getnames()) == 3 * 4
    by_hand = _by_hand(tmp_path / "by-hand", 2)
    grouped = tmp_path / "work" / "cartpole" / "PE-TSinf-CEM" / "seed2"
    assert _returns(grouped) == _returns(by_hand) and len(_returns(by_hand)) == 3
    assert _returns(grouped) != _returns(grouped.parent / "seed1")  # the seeds' own runs
    # a second call: every run of the group is done, nothing runs
    proc, report = _batch(tmp_path, seeds_per_job=2)
    assert {job["status"] for job in report["jobs"].values()} == {"done before"}
