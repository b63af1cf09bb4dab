"""`python -m pets_core.ingest`: one MLflow run per run identity, however often, from wherever and
by how many processes at once it is called (real sqlite stores, real tiny runs)."""

import hashlib
import shutil
import subprocess
import sys

import mlflow
import pytest
from support.runs import ROWS, fake_run_dir, run, tiny_args

from pets_core import config as config_mod
from pets_core.cli import ingest
from pets_core.config import fingerprint, from_yaml, load_config
from pets_core.results import store, tracking


def runs_of(uri, experiment="pets-cartpole"):
    client = store.client_for(uri)  # absolute: MLflow caches a store per URI string
    exp = client.get_experiment_by_name(experiment)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


@pytest.mark.slow
def test_readme_ingest_of_results_three_times_leaves_one_run(tmp_path, monkeypatch, capsys):
    """The README's line, in a project whose path holds a quote: results/mlartifacts (the
    uploaded copies, done.json included) is never taken for a run dir."""
    project = tmp_path / "it's a project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = [*tiny_args("cartpole", iters=2), "--seed", "1"]
    assert run("results/runs/cartpole/PE-TSinf-CEM/seed1", argv) == 0
    capsys.readouterr()
    said = []
    for _ in range(3):
        assert ingest.main(["results/"]) == 0
        said.append(capsys.readouterr().out)
    whats = [s.split(": ", 1)[1].split(" (run ")[0] for s in said]
    assert whats == ["added", "already present", "already present"]
    assert all(s.count("\n") == 1 for s in said)  # one run dir found, every time
    assert (project / "results/mlartifacts").is_dir()
    client, runs = runs_of("sqlite:///results/mlflow.db")
    assert len(runs) == 1
    (r,) = runs
    settings = fingerprint(
        from_yaml(project / "results/runs/cartpole/PE-TSinf-CEM/seed1/config.yaml")
    )
    assert r.info.status == "FINISHED" and r.info.run_name == f"PE-TSinf-CEM seed1 {settings}"
    assert r.data.tags["command"].startswith("python -m pets_core.mbexp -env cartpole")
    assert len(client.get_metric_history(r.info.run_id, "return")) == 2
    # the same keys as a live run (train/mse of a PE run comes from checkpoint.pt's rows)
    assert set(r.data.metrics) == {
        "return",
        "best_so_far",
        "env_steps",
        "train/nll",
        "train/mse",
        "plan/s_per_action",
        "time/iteration_s",
        "time/wall_s",
    }


def test_ingest_twice_adds_nothing(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    fake_run_dir(tmp_path / "results" / "runs" / "a", seed=0, identity=True)
    fake_run_dir(tmp_path / "results" / "runs" / "b", seed=1, identity=True)
    (tmp_path / "results" / "runs" / "unfinished").mkdir()
    argv = [str(tmp_path / "results"), "--mlflow-uri", uri]
    assert ingest.main(argv) == 0
    assert capsys.readouterr().out.count(": added") == 2
    assert ingest.main(argv) == 0
    assert capsys.readouterr().out.count(": already present") == 2
    client, runs = runs_of(uri)
    assert len(runs) == 2
    for r in runs:
        assert r.info.status == "FINISHED"
        settings = fingerprint(load_config("cartpole"))  # fake_run_dir: the paper's settings
        assert r.info.run_name in (
            f"PE-TSinf-CEM seed0 {settings}",
            f"PE-TSinf-CEM seed1 {settings}",
        )
        assert len(client.get_metric_history(r.info.run_id, "best_so_far")) == 3
        names = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"logs.mat", "config.yaml", "metrics.csv", "run.json", "done.json"} <= names


def test_a_moved_or_copied_results_dir_is_not_ingested_again(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for seed in (1, 2, 3):
        fake_run_dir(tmp_path / "results" / "runs" / f"seed{seed}", seed=seed, identity=True)
    assert ingest.main([str(tmp_path / "results"), "--mlflow-uri", uri]) == 0
    shutil.copytree(tmp_path / "results", tmp_path / "copy")
    shutil.move(tmp_path / "results", tmp_path / "moved")
    capsys.readouterr()
    for where in ("copy", "moved"):
        assert ingest.main([str(tmp_path / where), "--mlflow-uri", uri]) == 0
        assert capsys.readouterr().out.count(": already present") == 3
    client, runs = runs_of(uri)
    assert len(runs) == 3
    for r in runs:
        assert len(client.get_metric_history(r.info.run_id, "return")) == 3


def test_older_run_dirs_without_identity_ingest_exactly_once(tmp_path, capsys):
    """Today's committed reference runs have no run.json: their identity is derived from
    config.yaml, the same wherever they are copied."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for seed in (1, 2):
        fake_run_dir(tmp_path / "ref" / f"seed{seed}", seed=seed)
    assert ingest.main([str(tmp_path / "ref"), "--mlflow-uri", uri]) == 0
    shutil.copytree(tmp_path / "ref", tmp_path / "ref-copy")
    assert ingest.main([str(tmp_path / "ref-copy"), "--mlflow-uri", uri]) == 0
    assert capsys.readouterr().out.count(": already present") == 2
    _, runs = runs_of(uri)
    assert len(runs) == 2
    for r in runs:
        seed = int(r.data.tags["seed"])
        yaml = (tmp_path / "ref" / f"seed{seed}" / "config.yaml").read_bytes()
        assert r.data.tags["run_uid"] == "cfg-" + hashlib.sha256(yaml).hexdigest()[:32]
    assert not (tmp_path / "ref" / "seed1" / "run.json").exists()  # ingest only reads


@pytest.mark.slow
def test_two_concurrent_ingests_of_eight_dirs_make_eight_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"  # not created yet
    for seed in range(8):
        fake_run_dir(tmp_path / "runs" / f"seed{seed}", seed=seed, identity=True)
    cmd = [sys.executable, "-m", "pets_core.ingest", str(tmp_path / "runs"), "--mlflow-uri", uri]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum(o.count(": added") for o in outs) == 8
    assert sum(o.count(": already present") for o in outs) == 8
    client, runs = runs_of(uri)
    assert sorted(int(r.data.tags["seed"]) for r in runs) == list(range(8))
    for r in runs:  # no doubled metric rows
        history = client.get_metric_history(r.info.run_id, "return")
        assert sorted(m.step for m in history) == [1, 2, 3]


def test_ingest_completes_a_partially_tracked_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    cfg = fake_run_dir(run_dir, identity=True)
    live = tracking.Tracker(
        uri,
        experiment="pets-cartpole",
        run_name="r",
        run_dir=run_dir,
        run_uid=(run_dir / "run.json").read_text().split('"run_uid": "')[1].split('"')[0],
        tags={"env": "cartpole", "variant": cfg.variant},
        params=config_mod.flatten(cfg),
    ).start()
    live.log_rows(ROWS[:1])  # killed after iteration 1's batch
    run_id, what = ingest.ingest_run(run_dir, uri)
    assert (run_id, what) == (live.run_id, "completed")
    client, runs = runs_of(uri)
    assert len(runs) == 1
    assert len(client.get_metric_history(run_id, "return")) == 3
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_run_logged_before_run_identities_is_adopted_not_duplicated(tmp_path):
    """Stores made by the previous code know a run only by its run_dir tag."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "o'clock" / "seed0"
    fake_run_dir(run_dir)
    store.init_store(uri, ["pets-cartpole"])
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("pets-cartpole").experiment_id
    old = client.create_run(exp_id, tags={"run_dir": str(run_dir.resolve())})
    run_id, what = ingest.ingest_run(run_dir, uri)
    assert (run_id, what) == (old.info.run_id, "completed")
    _, runs = runs_of(uri)
    assert len(runs) == 1 and runs[0].data.tags["run_uid"].startswith("cfg-")


def test_ingest_keeps_runs_of_other_settings_apart(tmp_path, monkeypatch, capsys):
    """Issue 28, case 4: a quick and a paper run of one variant and seed were both named
    "PE-TSinf-CEM seed1" in pets-cartpole. Real runs (settings differ in task_hor), one store:
    two runs whose names and tags tell the settings and the workflow config apart."""
    monkeypatch.chdir(tmp_path)
    argv = [*tiny_args("cartpole", iters=1), "--seed", "1"]
    quick = tmp_path / "results/quick/runs/cartpole/PE-TSinf-CEM/seed1"
    paper = tmp_path / "results/paper/runs/cartpole/PE-TSinf-CEM/seed1"
    assert run(quick, argv, "--tag", "config", "quick") == 0
    assert (
        run(paper, [*argv, "-o", "exp_cfg.sim_cfg.task_hor", "9"], "--tag", "config", "paper") == 0
    )
    settings = {d: fingerprint(from_yaml(d / "config.yaml")) for d in (quick, paper)}
    assert settings[quick] != settings[paper]
    capsys.readouterr()
    assert ingest.main(["results/"]) == 0
    out = capsys.readouterr()
    assert out.out.count(": added") == 2
    assert out.err.splitlines()[0] == (  # then mlflow's own notices of a new store
        f"ingest: MLflow store sqlite:///results/mlflow.db (new, {tmp_path}/results/mlflow.db)"
    )
    _, runs = runs_of("sqlite:///results/mlflow.db")
    found = {r.info.run_name: r.data.tags for r in runs}
    assert set(found) == {f"PE-TSinf-CEM seed1 {settings[d]}" for d in (quick, paper)}
    for name, config in (("quick", quick), ("paper", paper)):
        tags = found[f"PE-TSinf-CEM seed1 {settings[config]}"]
        assert (tags["config"], tags["settings_fingerprint"]) == (name, settings[config])


def test_ingest_from_another_directory_never_creates_a_stray_store(tmp_path, monkeypatch, capsys):
    """Issue 28: ingest from a folder that is no project silently made ./results/mlflow.db there.
    Now one line, exit 2, nothing created; inside a project (a Snakefile) the store is made and
    named; an explicit --mlflow-uri is created wherever it points."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    fake_run_dir(tmp_path / "project/results/runs/a", seed=0, identity=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert ingest.main([str(tmp_path / "project/results")]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == (
        f"ingest: error: no MLflow store at results/mlflow.db and {elsewhere} is not a project "
        "directory (no Snakefile, no results/); run from the project directory, or name the "
        "store with --mlflow-uri sqlite:///PATH/mlflow.db\n"
    )
    assert list(elsewhere.iterdir()) == []
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert ingest.main([str(tmp_path / "project/results"), "--mlflow-uri", uri]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ingest: MLflow store {uri} (new, {tmp_path}/store/mlflow.db)"
    )
    assert list(elsewhere.iterdir()) == []
    (elsewhere / "Snakefile").write_text("")  # a project directory; a fresh process, since
    # mlflow keeps one store per URI string, and this relative one meant another folder above
    cmd = [sys.executable, "-m", "pets_core.ingest", str(tmp_path / "project/results")]
    for new in ("new, ", ""):
        done = subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines()[0] == (
            f"ingest: MLflow store sqlite:///results/mlflow.db ({new}{elsewhere}/results/mlflow.db)"
        )
    assert (elsewhere / "results/mlflow.db").is_file()
