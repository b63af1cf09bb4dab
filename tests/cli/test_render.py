"""`python -m pets_core.render` on real tiny runs: it plans with the run's config, seed and model,
writes only the video(s) and render.json, prints the mp4 path, and turns bad input into one line
naming the argument and the valid choices (exit 2, nothing left behind). §render."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest
from support.runs import TASK_HOR, logs, run, tiny_args

from pets_core.cli import render
from pets_core.results.rundir import RunDir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A PE-TSinf-CEM run (seed 3, 2 iterations) and a D-E-CEM run (seed 0), both tiny."""
    root = tmp_path_factory.mktemp("runs")
    assert run(root / "pe", tiny_args("cartpole", iters=2), "--seed", "3") == 0
    assert run(root / "d", tiny_args("cartpole", "D-E-CEM")) == 0
    return {"pe": root / "pe", "d": root / "d"}


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


def frames_of(mp4: Path) -> int:
    with imageio.get_reader(mp4) as reader:
        return sum(1 for _ in reader)


def test_render_plans_with_the_runs_config_seed_and_model(runs, tmp_path, capsys) -> None:
    before = snapshot(runs["pe"])
    rc = render.main(["-env", "cartpole", "-model-dir", str(runs["pe"]), "-logdir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    (out_dir,) = tmp_path.iterdir()
    assert sorted(p.name for p in out_dir.iterdir()) == ["render.json", "rollout0.mp4"]
    mp4 = out_dir / "rollout0.mp4"
    assert out == f"{mp4.resolve()}\n"  # stdout: the mp4 path, nothing else
    assert frames_of(mp4) == TASK_HOR + 1  # the run's task_hor (8), not the paper's 200
    manifest = json.loads((out_dir / "render.json").read_text())
    assert manifest["run_dir"] == str(runs["pe"].resolve())
    assert manifest["model_file"] == str((runs["pe"] / "model.pt").resolve())
    assert manifest["config"] == str((runs["pe"] / "config.yaml").resolve())
    assert (manifest["env"], manifest["variant"], manifest["seed"]) == (
        "cartpole",
        "PE-TSinf-CEM",
        3,
    )
    assert manifest["config_differences"] == {}
    (episode,) = manifest["episodes"]
    assert episode["mp4"] == str(mp4.resolve()) and episode["frames"] == TASK_HOR + 1
    assert snapshot(runs["pe"]) == before  # nothing written, copied or touched in the run

    # deterministic for the same run and seed (CPU)
    assert (
        render.main(["-env", "cartpole", "-model-dir", str(runs["pe"]), "-logdir", str(tmp_path)])
        == 0
    )
    capsys.readouterr()
    again = [json.loads(p.read_text()) for p in tmp_path.glob("*/render.json")]
    assert (
        len(again) == 2 and again[0]["episodes"][0]["return"] == again[1]["episodes"][0]["return"]
    )


def test_overrides_and_seed_apply_on_top_of_the_run_config(runs, tmp_path, capsys) -> None:
    argv = ["-env", "cartpole", "-model-dir", str(runs["pe"]), "-logdir", str(tmp_path)]
    argv += ["--seed", "5", "-o", "exp_cfg.sim_cfg.task_hor", "5", "--episodes", "2"]
    assert render.main(argv) == 0
    out, _ = capsys.readouterr()
    (out_dir,) = tmp_path.iterdir()
    assert out.splitlines() == [str((out_dir / f"rollout{j}.mp4").resolve()) for j in (0, 1)]
    manifest = json.loads((out_dir / "render.json").read_text())
    assert manifest["seed"] == 5
    assert manifest["config_differences"] == {"exp_cfg.sim_cfg.task_hor": [8, 5], "seed": [3, 5]}
    assert [e["frames"] for e in manifest["episodes"]] == [6, 6]
    assert frames_of(out_dir / "rollout1.mp4") == 6


def test_without_a_top_level_model_the_newest_iteration_model_is_used(runs, tmp_path, capsys):
    run_dir = tmp_path / "all"
    argv = [*tiny_args("cartpole", iters=2), "-o", "ctrl_cfg.log_cfg.save_all_models", "True"]
    assert run(run_dir, argv) == 0
    assert not (run_dir / "model.pt").exists()
    assert (
        render.main(
            ["-env", "cartpole", "-model-dir", str(run_dir), "-logdir", str(tmp_path / "r")]
        )
        == 0
    )
    capsys.readouterr()
    (manifest,) = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("*/render.json")]
    assert manifest["model_file"] == str((run_dir / "train_iter2" / "model.pt").resolve())


def _truncated(runs, where: Path) -> Path:
    where.mkdir()
    shutil.copy(runs["pe"] / "config.yaml", where)
    (where / "model.pt").write_bytes((runs["pe"] / "model.pt").read_bytes()[:1000])
    return where


def _only(runs, where: Path, run: str, *names: str) -> Path:
    where.mkdir()
    for name in names:
        shutil.copy(runs[run] / name, where)
    return where


BAD = {
    "truncated model.pt": (
        lambda runs, d: _truncated(runs, d),
        [],
        "-model-dir {d}: model.pt is not a readable model (truncated or not written by pets_core: "
        "PytorchStreamReader failed reading zip archive: failed finding central directory); "
        "valid: model.pt or model.mat + model.nns as a run saves them",
    ),
    "run of another env": (
        lambda runs, d: runs["pe"],
        ["-env", "reacher"],
        "-env reacher does not match the run in {pe} (its config.yaml says cartpole); "
        "valid: -env cartpole",
    ),
    "model of another env": (
        lambda runs, d: _only(runs, d, "pe", "model.mat", "model.nns"),
        ["-env", "halfcheetah"],
        "-env halfcheetah: {d}/model.mat maps 6 inputs to 4 outputs, halfcheetah needs 24 -> 18; "
        "valid: -env cartpole",
    ),
    "D model without -ca": (
        lambda runs, d: _only(runs, d, "d", "model.pt"),
        [],
        "-ca model-type PE does not match {d}/model.pt (a D model: 1 deterministic network); "
        "valid: -ca model-type D -ca prop-type E",
    ),
    "only model.mat": (
        lambda runs, d: _only(runs, d, "pe", "model.mat", "config.yaml"),
        [],
        "-model-dir {d} has model.mat but no model.nns; valid: model.pt, or model.mat + model.nns",
    ),
    "ensemble size": (
        lambda runs, d: _only(runs, d, "pe", "model.mat", "model.nns"),
        [],
        "ctrl_cfg.prop_cfg.model_init_cfg.num_nets is 5 but {d}/model.mat has 2 networks; "
        "valid: -o ctrl_cfg.prop_cfg.model_init_cfg.num_nets 2",
    ),
    "episodes 0": (
        lambda runs, d: runs["pe"],
        ["--episodes", "0"],
        "--episodes must be >= 1 (got 0)",
    ),
    "threads 0": (
        lambda runs, d: runs["pe"],
        ["--threads", "0"],
        "--threads must be >= 1 (got 0)",
    ),
    "seed 2**32": (
        lambda runs, d: runs["pe"],
        ["--seed", "4294967296"],
        "--seed must be in 0..4294967295 (got 4294967296)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(runs, tmp_path, case) -> None:
    make, extra, message = BAD[case]
    model_dir = make(runs, tmp_path / "model")
    argv = ["-env", "cartpole", "-model-dir", str(model_dir), "-logdir", str(tmp_path / "out")]
    result = subprocess.run(
        [sys.executable, "-m", "pets_core.render", *argv, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    expected = message.format(d=tmp_path / "model", pe=runs["pe"])
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        f"render: error: {expected}\n",
    )
    assert not (tmp_path / "out").exists()


def test_record_iters_last_records_only_the_last_iteration_and_changes_nothing(tmp_path) -> None:
    argv = tiny_args("cartpole", iters=3)
    assert run(tmp_path / "plain", argv) == 0
    video = ["-o", "exp_cfg.log_cfg.nrecord", "1", "-o", "exp_cfg.log_cfg.record_iters", "[-1]"]
    assert run(tmp_path / "video", [*argv, *video]) == 0
    assert sorted(
        p.relative_to(tmp_path / "video").as_posix() for p in (tmp_path / "video").rglob("*.mp4")
    ) == ["train_iter3/rollout0.mp4"]
    assert (
        RunDir(tmp_path / "video").video(3) == tmp_path / "video" / "train_iter3" / "rollout0.mp4"
    )
    assert frames_of(RunDir(tmp_path / "video").video(3)) == TASK_HOR + 1
    a, b = logs(tmp_path / "plain"), logs(tmp_path / "video")
    for key in a:  # recording renders frames; it draws no random numbers
        assert (a[key] == b[key]).all(), key


@pytest.mark.parametrize(("value", "first"), [("0", 0), ("[1, 4]", 4), ("-4", -4)])
def test_record_iters_outside_the_run_is_one_line(tmp_path, capsys, value, first) -> None:
    argv = [*tiny_args("cartpole", iters=3), "-o", "exp_cfg.log_cfg.record_iters", value]
    assert run(tmp_path / "run", argv) == 2
    assert capsys.readouterr().err == (
        f"mbexp: error: exp_cfg.log_cfg.record_iters: {first} is not an iteration; "
        "valid: 1..3 or -3..-1 (from the end)\n"
    )
    assert not (tmp_path / "run").exists()
