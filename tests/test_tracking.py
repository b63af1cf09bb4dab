"""MLflow tracking on a real sqlite store in tmp_path, unreachable stores, idempotent ingest."""

import time

import mlflow
import numpy as np
import pytest

from pets_core import config as config_mod
from pets_core import ingest, tracking
from pets_core.logs import write_json, write_logs_mat
from pets_core.metrics import write_metrics_csv

ROWS = [
    {
        "iteration": i,
        "env_steps": 10 * (i + 1),
        "return": float(i),
        "best_so_far": float(i),
        "train_loss": 0.5 / i,
        "holdout_mse": float("nan"),
        "plan_s_per_action": 0.01,
        "wall_s": 1.0,
    }
    for i in (1, 2, 3)
]


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One store for the module (creating the schema costs seconds); tests use own experiments."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def fake_run_dir(path, seed=0):
    """What mbexp leaves behind, without running PETS."""
    cfg = config_mod.load_config("cartpole", seed=seed)
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(config_mod.to_yaml(cfg))
    (path / "config.txt").write_text(config_mod.to_text(cfg))
    write_metrics_csv(path, ROWS)
    obs = [np.zeros((6, 4))] * 4
    write_logs_mat(path, obs, [np.zeros((5, 1))] * 4, [np.zeros(5)] * 4, [0.0, 1.0, 2.0])
    write_json(path / "done.json", {"env": "cartpole", "iterations": 3})
    return cfg


def test_tracker_logs_params_tags_and_one_batch_per_iteration(tmp_path, uri):
    tracking.init_store(uri, ["t-live"])
    cfg = config_mod.load_config("cartpole", seed=4)
    tracker = tracking.Tracker(
        uri,
        experiment="t-live",
        run_name="cartpole/PE-TSinf-CEM/seed4",
        run_dir=tmp_path / "run",
        tags={"env": "cartpole", "variant": cfg.variant, "seed": 4},
        params=config_mod.flatten(cfg),
    ).start()
    assert tracker.active and tracker.created
    tracker.log_rows(ROWS[:1])
    tracker.log_rows(ROWS)  # only iterations 2 and 3 are new
    tracker.log_rows(ROWS)  # nothing new
    assert len(tracker.log_ms) == 2
    (tmp_path / "logs.mat").write_bytes(b"x")
    tracker.finish([tmp_path / "logs.mat"])

    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["ctrl_cfg.opt_cfg.cfg.popsize"] == "400"
    assert run.data.params["ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims"] == "[500, 500, 500]"
    assert len(run.data.params) == len(config_mod.flatten(cfg))
    assert {k: run.data.tags[k] for k in ("env", "variant", "seed")} == {
        "env": "cartpole",
        "variant": "PE-TSinf-CEM",
        "seed": "4",
    }
    assert run.data.tags["run_dir"] == str((tmp_path / "run").resolve())
    history = client.get_metric_history(tracker.run_id, "return")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert "holdout_mse" not in run.data.metrics  # NaN values are not logged
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["logs.mat"]
    # the same run dir finds the same MLflow run again (resume)
    again = tracking.Tracker(
        uri, experiment="t-live", run_name="x", run_dir=tmp_path / "run", tags={}, params={}
    ).start()
    assert (again.run_id, again.created, again.logged_through) == (tracker.run_id, False, 3)


def test_unreachable_store_is_skipped_quickly_and_says_so(tmp_path):
    said = []
    t0 = time.perf_counter()
    tracker = tracking.Tracker(
        "http://127.0.0.1:9",
        experiment="pets-cartpole",
        run_name="r",
        run_dir=tmp_path,
        tags={},
        params={"a": 1},
        echo=said.append,
    ).start()
    tracker.log_rows(ROWS)
    tracker.finish([])
    assert not tracker.active and time.perf_counter() - t0 < 10
    assert len(said) == 1 and said[0].startswith("MLflow tracking skipped: http://127.0.0.1:9")
    assert "pets_core.ingest" in said[0]


def test_disabled_tracking_is_silent(tmp_path):
    said = []
    tracker = tracking.Tracker(
        None, experiment="e", run_name="r", run_dir=tmp_path, tags={}, params={}, echo=said.append
    ).start()
    tracker.log_rows(ROWS)
    assert not tracker.active and said == []
    assert tracking.resolve_uri("none") is None
    assert tracking.resolve_uri("http://h:5000") == "http://h:5000"


def test_ingest_twice_adds_nothing(tmp_path, uri, capsys):
    fake_run_dir(tmp_path / "results" / "runs" / "a", seed=0)
    fake_run_dir(tmp_path / "results" / "runs" / "b", seed=1)
    (tmp_path / "results" / "runs" / "unfinished").mkdir()
    argv = [str(tmp_path / "results"), "--mlflow-uri", uri, "--mlflow-experiment", "t-ingest"]
    assert ingest.main(argv) == 0
    assert capsys.readouterr().out.count(": added") == 2
    assert ingest.main(argv) == 0
    assert capsys.readouterr().out.count(": already present") == 2

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("t-ingest")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.info.run_name in ("cartpole/PE-TSinf-CEM/seed0", "cartpole/PE-TSinf-CEM/seed1")
        assert len(client.get_metric_history(run.info.run_id, "best_so_far")) == 3
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"logs.mat", "config.yaml", "metrics.csv"} <= names


def test_ingest_completes_a_partially_tracked_run(tmp_path, uri):
    run_dir = tmp_path / "run"
    cfg = fake_run_dir(run_dir)
    live = tracking.Tracker(
        uri,
        experiment="t-partial",
        run_name="r",
        run_dir=run_dir,
        tags={"env": "cartpole"},
        params=config_mod.flatten(cfg),
    ).start()
    live.log_rows(ROWS[:1])  # killed after iteration 1's batch
    run_id, what = ingest.ingest_run(run_dir, uri, "t-partial")
    assert (run_id, what) == (live.run_id, "completed")
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert len(client.get_metric_history(run_id, "return")) == 3
    assert client.get_run(run_id).info.status == "FINISHED"
