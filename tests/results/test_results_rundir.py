"""The run directory (pets_core.results.rundir): file names, artifacts in MLflow order,
completeness, and finding runs both ways (complete only / any with logs.mat), on real trees."""

import json
import os

import pytest

from pets_core.analysis import aggregate
from pets_core.results import rundir
from pets_core.results.rundir import RunDir, find_run_dirs


def touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_run(path, *, complete: bool):
    touch(path / "logs.mat")
    if complete:
        touch(path / "done.json", json.dumps({"env": "cartpole", "iterations": 3}))
    return path


def test_paths_and_names(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.path == tmp_path / "r" and run / "logs.mat" == tmp_path / "r" / "logs.mat"
    assert run.iter_dir(7) == tmp_path / "r" / "train_iter7"
    assert run.video(12, 3) == tmp_path / "r" / "train_iter12" / "rollout3.mp4"
    assert run.video(1) == tmp_path / "r" / "train_iter1" / "rollout0.mp4"
    names = (rundir.LOGS_MAT, rundir.DONE_JSON, rundir.CHECKPOINT_PT, rundir.MODEL_PT)
    assert names == ("logs.mat", "done.json", "checkpoint.pt", "model.pt")
    assert rundir.CHECKPOINT_PT not in rundir.ARTIFACTS  # resume state, not a result


def test_artifacts_in_fixed_order_without_checkpoint_or_temp_files(tmp_path):
    run = RunDir(tmp_path)
    for name in ["model.nns", "done.json", "logs.mat", "config.yaml", "checkpoint.pt", "run.json"]:
        touch(tmp_path / name)
    touch(tmp_path / ".logs.mat.abc.tmp.mat")  # an interrupted atomic write
    touch(tmp_path / "b.png"), touch(tmp_path / "a.png"), touch(tmp_path / "c.pdf")
    touch(tmp_path / "train_iter10" / "rollout0.mp4")
    touch(tmp_path / "train_iter2" / "rollout1.mp4")
    touch(tmp_path / "train_iter2" / "rollout0.mp4")
    touch(tmp_path / "train_iter2" / ".rollout2.mp4.x.tmp.mp4")
    got = [(p.relative_to(tmp_path).as_posix(), folder) for p, folder in run.artifacts()]
    assert got == [
        ("logs.mat", None),
        ("config.yaml", None),
        ("run.json", None),
        ("done.json", None),
        ("model.nns", None),
        ("a.png", "figures"),
        ("b.png", "figures"),
        ("c.pdf", "figures"),
        ("train_iter2/rollout0.mp4", "videos/train_iter2"),
        ("train_iter2/rollout1.mp4", "videos/train_iter2"),
        ("train_iter10/rollout0.mp4", "videos/train_iter10"),  # iteration order, not "1" < "2"
    ]
    assert [p.name for p in run.videos()] == ["rollout0.mp4", "rollout1.mp4", "rollout0.mp4"]
    stale = sorted(p.relative_to(tmp_path).as_posix() for p in run.stale_temp_files())
    assert stale == [".logs.mat.abc.tmp.mat", "train_iter2/.rollout2.mp4.x.tmp.mp4"]


def test_completeness(tmp_path):
    run = RunDir(tmp_path)
    assert (run.is_complete, run.has_logs, run.is_resumable) == (False, False, False)
    touch(tmp_path / "config.yaml")
    touch(tmp_path / "checkpoint.pt")
    assert (run.is_complete, run.has_logs, run.is_resumable) == (False, False, True)
    touch(tmp_path / "logs.mat")
    assert (run.is_complete, run.has_logs) == (False, True)
    (tmp_path / "done.json").mkdir()  # a folder of that name is not the marker
    assert not run.is_complete
    (tmp_path / "done.json").rmdir()
    touch(tmp_path / "done.json", '{"env": "reacher", "seed": 4, "iterations": 2}')
    assert run.is_complete and run.done() == {"env": "reacher", "seed": 4, "iterations": 2}


@pytest.fixture
def tree(tmp_path):
    """runs/: two complete, one partial (logs.mat only), one started (no logs.mat), plus
    copies that must never be found (an MLflow artifact store, a hidden folder)."""
    root = tmp_path / "runs"
    make_run(root / "cartpole" / "PE-TSinf-CEM" / "seed1", complete=True)
    make_run(root / "cartpole" / "PE-TSinf-CEM" / "seed2", complete=False)
    make_run(root / "reacher" / "D-E-CEM" / "seed1", complete=True)
    touch(root / "reacher" / "D-E-CEM" / "seed2" / "config.yaml")
    make_run(root / "mlartifacts" / "1" / "abc" / "artifacts", complete=True)
    make_run(root / "mlruns" / "0" / "x", complete=True)
    make_run(root / ".trash" / "old", complete=True)
    make_run(tmp_path / "elsewhere" / "deep" / "er", complete=False)
    return tmp_path


def test_find_complete_only_or_any_with_logs(tree):
    rel = lambda paths: [p.relative_to(tree).as_posix() for p in paths]  # noqa: E731
    assert rel(find_run_dirs([tree / "runs"], complete_only=True)) == [
        "runs/cartpole/PE-TSinf-CEM/seed1",
        "runs/reacher/D-E-CEM/seed1",
    ]
    assert rel(find_run_dirs([tree / "runs"], complete_only=False)) == [
        "runs/cartpole/PE-TSinf-CEM/seed1",
        "runs/cartpole/PE-TSinf-CEM/seed2",
        "runs/reacher/D-E-CEM/seed1",
    ]
    # several roots: in the given order, each sorted; a root that is a run is returned alone
    roots = [tree / "elsewhere", tree / "runs" / "reacher" / "D-E-CEM" / "seed1"]
    assert rel(find_run_dirs(roots, complete_only=False)) == [
        "elsewhere/deep/er",
        "runs/reacher/D-E-CEM/seed1",
    ]
    assert find_run_dirs([tree / "elsewhere"], complete_only=True) == []
    assert find_run_dirs([tree / "missing"], complete_only=False) == []
    with pytest.raises(TypeError):  # the choice is explicit
        find_run_dirs([tree])


def test_aggregate_finds_env_variant_seed_dirs_with_logs(tree):
    make_run(tree / "runs" / "cartpole" / "extra" / "deeper" / "seed0", complete=True)
    make_run(tree / "runs" / "cartpole" / "notaseed", complete=True)
    found = aggregate.find_run_dirs(tree / "runs")
    assert [p.relative_to(tree / "runs").as_posix() for p in found] == [
        "cartpole/PE-TSinf-CEM/seed1",
        "cartpole/PE-TSinf-CEM/seed2",
        "reacher/D-E-CEM/seed1",
    ]


def test_find_never_enters_symlink_loops_or_hidden_folders(tmp_path):
    make_run(tmp_path / "a" / "seed1", complete=True)
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # os.walk does not follow links by default
    assert find_run_dirs([tmp_path], complete_only=True) == [tmp_path / "a" / "seed1"]
