"""MLflow tracking on real sqlite stores in tmp dirs: tags, metric keys, run identity, locks,
unreachable stores; real tiny runs for what a user sees (keys, description, system metrics, video).
"""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from support.runs import ROWS, fake_run_dir, tiny_args

from pets_core import config as config_mod
from pets_core.cli import mbexp
from pets_core.results import naming, store, tracking
from pets_core.results.identity import ensure_run_info, read_run_info

NON_SYSTEM_KEYS_PE = {
    "return",
    "best_so_far",
    "env_steps",
    "train/nll",
    "train/mse",
    "plan/s_per_action",
    "time/iteration_s",
    "time/wall_s",
}


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One store for the module (creating the schema costs seconds); tests use own experiments."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def tracker(uri, run_dir, experiment, *, run_uid="uid-1", **kw):
    cfg = config_mod.load_config("cartpole", seed=4)
    return tracking.Tracker(
        uri,
        experiment=experiment,
        run_name=naming.run_name(cfg.variant, 4, config_mod.fingerprint(cfg)),
        run_dir=run_dir,
        run_uid=run_uid,
        tags={"env": "cartpole", "variant": cfg.variant, "seed": 4},
        params=config_mod.flatten(cfg),
        **kw,
    )


def test_tracker_logs_params_tags_and_one_batch_per_iteration(tmp_path, uri):
    store.init_store(uri, ["t-live"])
    cfg = config_mod.load_config("cartpole", seed=4)
    live = tracker(uri, tmp_path / "run", "t-live").start()
    assert live.active and live.created
    live.log_rows(ROWS[:1])
    live.log_rows(ROWS)  # only iterations 2 and 3 are new
    live.log_rows(ROWS)  # nothing new
    assert len(live.log_ms) == 2
    (tmp_path / "logs.mat").write_bytes(b"x")
    live.finish([(tmp_path / "logs.mat", None)])

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("t-live")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.get_run(live.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == f"PE-TSinf-CEM seed4 {config_mod.fingerprint(cfg)}"
    assert run.data.params["ctrl_cfg.opt_cfg.cfg.popsize"] == "400"
    assert run.data.params["ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims"] == "[500, 500, 500]"
    assert len(run.data.params) == len(config_mod.flatten(cfg))
    assert {k: run.data.tags[k] for k in ("env", "variant", "seed", "run_uid")} == {
        "env": "cartpole",
        "variant": "PE-TSinf-CEM",
        "seed": "4",
        "run_uid": "uid-1",
    }
    assert run.data.tags["run_dir"] == str((tmp_path / "run").resolve())
    history = client.get_metric_history(live.run_id, "return")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 2.0), (3, 3.0)]
    wall = client.get_metric_history(live.run_id, "time/wall_s")
    assert sorted((m.step, m.value) for m in wall) == [(1, 1.5), (2, 3.0), (3, 4.5)]  # cumulative
    assert set(run.data.metrics) == NON_SYSTEM_KEYS_PE - {"train/mse"}  # no train_mse, no holdout
    assert [a.path for a in client.list_artifacts(live.run_id)] == ["logs.mat"]
    # the same identity finds the same MLflow run again (resume), wherever the run dir is now
    again = tracker(uri, tmp_path / "moved", "t-live").start()
    assert (again.run_id, again.created, again.logged_through) == (live.run_id, False, 3)


def test_metric_keys_mean_the_same_for_every_variant():
    rows = [
        {**ROWS[0], "train_loss": 0.25, "holdout_mse": 0.125, "wall_s": 2.0},
        {**ROWS[1], "train_loss": 0.5, "train_mse": 0.75, "wall_s": 3.0},
    ]
    pe = {(k, s): v for k, v, s in naming.mlflow_metrics(rows, "PE-TSinf-CEM")}
    de = {(k, s): v for k, v, s in naming.mlflow_metrics(rows, "DE-TS1-CEM")}
    # P / PE: train_loss is the Gaussian NLL; its MSE only where the runner recorded it
    assert pe[("train/nll", 1)] == 0.25 and ("train/mse", 1) not in pe
    assert pe[("train/mse", 2)] == 0.75
    # D / DE: train_loss = mean((mu - y)^2) / 2, never logged as an NLL
    assert ("train/nll", 1) not in de and de[("train/mse", 1)] == 0.5
    assert de[("train/mse", 2)] == 0.75
    for m in (pe, de):
        assert m[("holdout/mse", 1)] == 0.125 and ("holdout/mse", 2) not in m
        assert (m[("time/wall_s", 1)], m[("time/wall_s", 2)]) == (2.0, 5.0)
        assert (m[("time/iteration_s", 1)], m[("time/iteration_s", 2)]) == (2.0, 3.0)
        assert (m[("env_steps", 1)], m[("plan/s_per_action", 2)]) == (20.0, 0.01)
    assert {k for k, _ in pe} | {k for k, _ in de} <= set(naming.METRIC_KEYS)


def test_unreachable_store_is_skipped_quickly_and_says_so(tmp_path):
    said = []
    t0 = time.perf_counter()
    dead = tracker("http://127.0.0.1:9", tmp_path, "pets-cartpole", echo=said.append).start()
    dead.log_rows(ROWS)
    dead.finish([])
    assert not dead.active and time.perf_counter() - t0 < 10
    assert len(said) == 1 and said[0].startswith("MLflow tracking skipped: http://127.0.0.1:9")
    assert "pets_core.ingest" in said[0]


def test_disabled_tracking_is_silent(tmp_path):
    said = []
    off = tracker(None, tmp_path, "e", echo=said.append).start()
    off.log_rows(ROWS)
    assert not off.active and said == []
    assert store.resolve_uri("none") is None
    assert store.resolve_uri("http://h:5000") == "http://h:5000"


def test_run_identity_is_written_once_and_derived_for_older_run_dirs(tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    first = ensure_run_info(fresh, env="cartpole", seed=1)
    assert len(first["run_uid"]) == 32 and first["env"] == "cartpole"
    assert ensure_run_info(fresh, env="other")["run_uid"] == first["run_uid"]
    assert json.loads((fresh / "run.json").read_text())["env"] == "cartpole"
    assert [p.name for p in fresh.iterdir()] == ["run.json"]  # no temp file left

    # a run dir of today's format (config.yaml, checkpoint.pt, no run.json): derived identity
    older = tmp_path / "older"
    older.mkdir()
    (older / "config.yaml").write_text("env: cartpole\nseed: 3\n")
    (older / "checkpoint.pt").write_bytes(b"")
    expected = "cfg-" + hashlib.sha256(b"env: cartpole\nseed: 3\n").hexdigest()[:32]
    assert read_run_info(older) == {"run_uid": expected}
    assert ensure_run_info(older, env="cartpole")["run_uid"] == expected  # resumed: kept


# ----------------------------------------------------------------------------- real tiny runs
def tracked_args(env="cartpole", variant="PE-TSinf-CEM", iters=2):
    return [a for a in tiny_args(env, variant, iters=iters) if a not in ("--mlflow-uri", "none")]


@pytest.mark.slow
def test_a_real_run_shows_commit_command_description_keys_system_metrics_and_video(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")  # a 5-s run gets some
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [*tracked_args("cartpole", "D-E-CEM"), "-o", "exp_cfg.log_cfg.nrecord", "1"]
    argv += ["--seed", "7", "--run-dir", str(tmp_path / "run"), "--mlflow-uri", uri]
    assert mbexp.main(argv) == 0
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("pets-cartpole")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = client.search_runs([exp.experiment_id])
    page = f"#/experiments/{exp.experiment_id}/runs/{run.info.run_id}"
    assert (
        f"browse:  mlflow ui --backend-store-uri {uri}, then "
        f"http://127.0.0.1:5000/{page}?workflowType=machine_learning\n"
    ) in capsys.readouterr().out
    tags = run.data.tags
    settings = config_mod.fingerprint(config_mod.from_yaml(tmp_path / "run" / "config.yaml"))
    assert run.info.status == "FINISHED" and run.info.run_name == f"D-E-CEM seed7 {settings}"
    assert run.data.tags["settings_fingerprint"] == settings
    head = subprocess.run(
        ["git", "-C", str(Path(tracking.__file__).parent), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == "pets_core.mbexp"
    assert tags["command"] == "python -m pets_core.mbexp " + " ".join(argv)  # no quoting needed
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert tags["run_uid"] == info["run_uid"] == done["run_uid"]
    assert (done["device"], tags["device"], tags["seed"]) == ("cpu", "cpu", "7")
    note = tags["mlflow.note.content"]
    assert "- `exp_cfg.exp_cfg.ntrain_iters` = 2 (paper: 50)" in note.splitlines()
    assert "- `exp_cfg.log_cfg.nrecord` = 1 (paper: 0)" in note.splitlines()
    assert "popsize` = 8 (paper: 400)" in note and "seed" not in note.split("\n", 1)[1]
    keys = set(run.data.metrics)
    assert {k for k in keys if not k.startswith("system/")} == {
        "return",
        "best_so_far",
        "env_steps",
        "train/mse",
        "plan/s_per_action",
        "time/iteration_s",
        "time/wall_s",
    }  # D-E: no NLL, no holdout at the default holdout ratio 0
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= keys
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "env_steps")]
    assert sorted(steps) == [1, 2]
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"logs.mat", "metrics.csv", "config.yaml", "run.json", "model.pt", "videos"} <= arts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "videos/train_iter2")] == [
        "videos/train_iter2/rollout0.mp4"
    ]
    assert "checkpoint.pt" not in arts


def run_in_background(argv, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "pets_core.mbexp", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.mark.slow
def test_eight_concurrent_runs_on_a_fresh_store_all_reach_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'm.db'}"  # nothing created before
    procs = [
        run_in_background(
            [
                *tracked_args(iters=1),
                *("--seed", str(s), "--run-dir", str(tmp_path / f"s{s}")),
                *("--mlflow-uri", uri, "--threads", "1"),
            ]
        )
        for s in range(8)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outs
    assert not any("tracking skipped" in out + err for out, err in outs), outs
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("pets-cartpole").experiment_id])
    assert sorted(int(r.data.tags["seed"]) for r in runs) == list(range(8))
    assert {r.info.status for r in runs} == {"FINISHED"}


def wait_for_rows(run_dir, n, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        csv = run_dir / "metrics.csv"
        if csv.exists() and len(csv.read_text().splitlines()) - 1 >= n:
            return
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_sigint_and_sigterm_end_the_mlflow_run_killed_and_a_rerun_finishes_it(tmp_path):
    import signal

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    # many iterations after the signalled rows: the run must still be going when the signal comes
    # (with 6 a loaded CI machine once let the child finish before the poll saw row 3)
    iters = 20
    argv = [*tracked_args(iters=iters), "--run-dir", str(run_dir), "--mlflow-uri", uri]
    argv += ["--threads", "1"]
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_ids = set()
    for n_rows, sig, code in ((1, signal.SIGINT, 130), (3, signal.SIGTERM, 143)):
        proc = run_in_background(argv)
        wait_for_rows(run_dir, n_rows, proc)
        assert proc.poll() is None, "the run finished before the signal: raise iters"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err
        assert "Traceback" not in out + err
        lines = [line for line in err.splitlines() if "interrupted" in line]
        assert len(lines) == 1 and lines[0].startswith(f"mbexp: interrupted by {sig.name};")
        assert lines[0].endswith("Resume with: python -m pets_core.mbexp " + " ".join(argv)), lines[
            0
        ]
        (run,) = client.search_runs([client.get_experiment_by_name("pets-cartpole").experiment_id])
        assert run.info.status == "KILLED"
        run_ids.add(run.info.run_id)
    assert mbexp.main(argv) == 0  # the same command resumes
    (run,) = client.search_runs([client.get_experiment_by_name("pets-cartpole").experiment_id])
    assert run_ids == {run.info.run_id} and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "return")
    assert sorted(m.step for m in history) == list(range(1, iters + 1))  # none twice


SIGINT_IN_MLFLOW = r"""
import json, signal, sys
from pets_core.interrupts import Interrupted, interrupts_as_exceptions
from pets_core.results.tracking import Tracker

tracker = Tracker(sys.argv[1], experiment="t-sigint", run_name="r", run_dir=sys.argv[2],
                  run_uid=sys.argv[2], tags={}, params={"a": 1}, variant="PE-TSinf-CEM").start()

def sigint_at(n):  # a real SIGINT at the n-th Python call from the first call into MLflow on
    seen = {"calls": 0, "sent": False}
    def profile(frame, event, _arg):
        if event != "call":
            return
        if not seen["calls"] and not frame.f_globals.get("__name__", "").startswith("mlflow."):
            return
        seen["calls"] += 1
        if seen["calls"] == n:
            sys.setprofile(None)
            seen["sent"] = True
            signal.raise_signal(signal.SIGINT)
    sys.setprofile(profile)
    return seen

def row(i):
    return {"iteration": i, "return": float(i), "env_steps": 10.0 * i, "wall_s": 0.5}

for i in (1, 2, 3):  # warm-up: MLflow's and SQLAlchemy's caches; then every call is the same
    seen = sigint_at(0)
    tracker.log_rows([row(i)])
    sys.setprofile(None)
calls = seen["calls"]
offsets = [*range(calls, max(calls - 300, 0), -3), *range(calls - 300, 0, -30)]  # the end first
trials = []
for i, n in enumerate(offsets, start=4):
    with interrupts_as_exceptions():
        try:
            seen = sigint_at(n)
            tracker.log_rows([row(i)])
            sys.setprofile(None)
            caught = None
        except Interrupted as stop:
            sys.setprofile(None)
            caught = stop.signal_name
    trials.append((i, n, seen["sent"], caught, tracker.logged_through))
tracker.finish([], status="KILLED")
print(json.dumps({"calls": calls, "run_id": tracker.run_id, "trials": trials}))
"""


def test_sigint_inside_an_mlflow_call_waits_for_it_to_return(tmp_path, uri):
    """A real SIGINT at ~200 places inside a real sqlite MLflow call of the Tracker (at function
    entries, most of them SQLAlchemy's; every 3rd of the last 300: commit, close and the
    connection check-in, where SQLAlchemy's pool logs a traceback for any exception crossing it)
    interrupts only once the call has returned: its iteration written and counted, no traceback.
    Raised inside the call (the old handler) it printed "Exception during reset or similar" and
    "Exception ignored in" (a SIGINT lost in a GC callback), then turned tracking off."""
    store.init_store(uri, ["t-sigint"])
    proc = subprocess.run(
        [sys.executable, "-c", SIGINT_IN_MLFLOW, uri, str(tmp_path / "run")],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception during reset" not in proc.stderr
    out = json.loads(proc.stdout)
    trials = out["trials"]
    assert out["calls"] > 300 and len(trials) > 150
    sent = [t for t in trials if t[2]]
    assert len(sent) >= 0.9 * len(trials), out["calls"]  # GC callbacks may shorten a call a bit
    # every SIGINT interrupted, after the MLflow call had logged its iteration (never inside it)
    assert [(i, n, "SIGINT", i) for i, n, _, _, _ in sent] == [
        (i, n, c, t) for i, n, _, c, t in sent
    ]
    assert all(c is None and t == i for i, _, s, c, t in trials if not s)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(out["run_id"])
    assert run.info.status == "KILLED"
    last = trials[-1][0]
    history = client.get_metric_history(out["run_id"], "return")
    assert sorted((m.step, m.value) for m in history) == [(i, float(i)) for i in range(1, last + 1)]


# ----------------------------------------------------------------------------- store copies
def test_a_copied_store_writes_artifacts_beside_itself(tmp_path):
    import shutil

    from pets_core.cli import ingest

    original = tmp_path / "project" / "results"
    run_a = original / "runs" / "a"
    fake_run_dir(run_a, seed=1, identity=True)
    uri = f"sqlite:///{original / 'mlflow.db'}"
    assert ingest.main([str(run_a), "--mlflow-uri", uri]) == 0
    before = sorted(p.relative_to(original) for p in (original / "mlartifacts").rglob("*"))
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    run_b = tmp_path / "elsewhere" / "b"
    fake_run_dir(run_b, seed=2, identity=True)
    assert ingest.main([str(run_b), "--mlflow-uri", f"sqlite:///{copy / 'mlflow.db'}"]) == 0
    after = sorted(p.relative_to(original) for p in (original / "mlartifacts").rglob("*"))
    assert after == before  # the original project is untouched
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{copy / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pets-cartpole")
    assert exp.artifact_location == (copy / "mlartifacts" / "pets-cartpole").resolve().as_uri()
    for run in client.search_runs([exp.experiment_id]):
        assert run.info.artifact_uri.startswith((copy / "mlartifacts").resolve().as_uri())
        assert "logs.mat" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_done_json_device_names_the_torch_device():
    import torch

    from pets_core.run.recorder import device_name as _device_name

    assert _device_name(torch.device("cpu")) == "cpu"
    assert _device_name(torch.device("cuda:1")) == "cuda:1"  # no GPU needed for an explicit index
