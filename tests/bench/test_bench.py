"""The benchmarks' command lines (issue 10 item 7) and the GPU check (issue 12), run for real.

Bad input: one line on stderr naming the argument (and what is valid), exit status 2, no traceback,
nothing written. The GPU check runs end to end at toy sizes on CPU (``--tiny --device cpu``): every
stage's real child process, a real wheel installed with pip, the real experiment loop and MLflow.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from pets_core.bench import cohort_plan, cohort_train, gpu, plan, train
from pets_core.bench.__main__ import main as bench_main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "argument", "valid"),
    [
        (["train", "--n", "abc"], "--n", "integers >= 1"),
        (["train", "--n", "0"], "--n", "integers >= 1"),
        (["train", "--n", "-5"], "--n", "integers >= 1"),
        (["train", "--n", "2000,x"], "--n", "integers >= 1"),
        (["train", "--threads", "0"], "--threads", ">= 1"),
        (["train", "--repeats", "0"], "--repeats", ">= 1"),
        (["train", "--env", "ant"], "--env", "cartpole"),
        (["train-cohort", "--seeds", "0,2"], "--seeds", "integers >= 1"),
        (["train-cohort", "--hidden", "8,8"], "--hidden", "3 hidden layers"),
        (["plan", "--env", "cartpole", "--threads", "0"], "--threads", ">= 1"),
        (["plan", "--env", "cartpole", "--particles", "3"], "--particles", "multiple of"),
        (["plan", "--env", "cartpole", "--elites", "401"], "--elites", "<= the population"),
        (["plan", "--env", "cartpole", "--popsize", "30", "--elites", "31"], "--elites", "N = 30"),
        (["plan", "--env", "cartpole", "--device", "tpu"], "--device", "'cpu', 'cuda', 'auto'"),
        (["plan", "--env", "cartpole", "--popsize", "0"], "--popsize", ">= 1"),
        (["plan", "--env", "cartpole", "--horizon", "0"], "--horizon", ">= 1"),
        (["plan", "--env", "cartpole", "--iters", "0"], "--iters", ">= 1"),
        (["plan", "--env", "cartpole", "--repeats", "0"], "--repeats", ">= 1"),
        (["plan", "--env", "cartpole", "--precision", "fp16"], "--precision", "fp32, tf32, bf16"),
        (["plan", "--env", "cartpole", "--prop", "E", "--particles", "5"], "--particles", "1"),
        (["plan", "--env", "cartpole", "--fast", "off", "--graph", "on"], "--graph", "fast"),
        (["plan-cohort", "--seeds", "1,0"], "--seeds", "integers >= 1"),
        (["plan-cohort", "--envs", "cartpole,ant"], "--envs", "cartpole"),
        (["plan-cohort", "--particles", "3"], "--particles", "multiple of"),
        (["gpu"], "--out", "required"),
        (["gpu", "--out", "o", "--budget-s", "5"], "--budget-s", ">= 30"),
        (["gpu", "--out", "o", "--wheels", "nowhere"], "--wheels", "no .whl"),
        (["gpu", "--out", "o", "--only", "info,plan"], "--only", "'plan'; valid: info, gpu-tests"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, argument, valid, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bench_main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"python -m pets_core.bench {argv[0]}: error: ")
    assert argument in lines[0] and valid in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_gpu_without_cuda_is_one_line(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is visible here")
    assert gpu.main(["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "python -m pets_core.bench gpu: error: argument --device: cuda requested but no GPU is "
        "visible; valid: cpu"
    ]
    assert not (tmp_path / "o").exists()


def test_plan_respects_small_sizes_and_reports_each_precision(capsys):
    """--popsize/--horizon are used as given (the old code ran 400/25 for 0); tf32 and bf16 are
    timed against fp32 with agreement figures."""
    argv = ["--env", "cartpole", "--popsize", "12", "--elites", "3", "--particles", "5",
            "--horizon", "2", "--iters", "1", "--warmup", "0", "--repeats", "1", "--threads", "1",
            "--precision", "bf16,tf32"]  # fmt: skip
    assert plan.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["popsize"], result["elites"], result["particles"], result["horizon"]) == (
        12, 3, 5, 2,
    )  # fmt: skip
    assert result["precision"] == "bf16" and set(result["precisions"]) == {"bf16", "tf32", "fp32"}
    assert result["s_per_action"] == result["precisions"]["bf16"]["s_per_action"]
    assert result["fp32_s_per_action"] == result["precisions"]["fp32"]["s_per_action"]
    for name in ("bf16", "tf32"):
        assert 0 <= result["precisions"][name]["elite_overlap_vs_fp32"] <= 1
        # the best matmul rate in this precision over the best fp32 rate, both as reported
        best = max(result["precisions"][name]["matmul_gflops_by_kernel"].values())
        fp32_best = max(result["precisions"]["fp32"]["matmul_gflops_by_kernel"].values())
        assert result["precisions"][name]["kernel_speedup_vs_fp32"] == round(best / fp32_best, 2)
    assert set(result["precisions"]["bf16"]["matmul_gflops_by_kernel"]) >= {"bmm", "onednn"}
    # a CPU without TF32 units runs tf32 as fp32: the same costs
    assert result["precisions"]["tf32"]["cost_max_rel_diff_vs_fp32"] < 1e-5
    assert (
        result["flops_per_action"]
        == 2
        * 5
        * (12 * 5 // 5)
        * sum(a * b for a, b in [(6, 500), (500, 500), (500, 500), (500, 8)])
        * 2
        * 1
    )  # E rows (in x out) per layer x H x iters


def test_plan_cohort_times_each_cohort_size_against_the_matmul_rate(capsys):
    argv = ["--envs", "cartpole", "--seeds", "1,3", "--popsize", "8", "--particles", "5",
            "--horizon", "2", "--iters", "2", "--warmup", "0"]  # fmt: skip
    assert cohort_plan.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    env = result["envs"]["cartpole"]
    assert result["threads"] == 1 and (env["popsize"], env["horizon"], env["rows_per_member"]) == (
        8, 2, 8,
    )  # fmt: skip
    assert set(env["by_cohort_size"]) == {"1", "3"}
    flops_per_iter = 2 * 5 * 8 * sum(a * b for a, b in [(6, 500), (500, 500), (500, 500), (500, 8)])
    for size, entry in env["by_cohort_size"].items():
        (iters,) = entry["iters_run"]  # one repeat: each seed's CEM iterations
        assert len(iters) == int(size) and all(1 <= i <= 2 for i in iters)
        seconds = entry["s_per_seed_action"] * int(size)
        achieved = flops_per_iter * 2 * sum(iters) / seconds / 1e9  # x H
        assert entry["achieved_gflops"] == pytest.approx(achieved, rel=0.02, abs=0.1)
        assert entry["fraction_of_matmul"] == pytest.approx(
            entry["achieved_gflops"] / entry["matmul_gflops"], rel=0.02, abs=0.002
        )


def test_train_runs_the_sizes_given(capsys):
    argv = ["--env", "halfcheetah", "--n", "40,70", "--repeats", "1", "--threads", "1",
            "--graph", "on"]  # fmt: skip
    assert train.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == [40, 70]
    assert len(summary["graph_s_per_epoch"]) == 2 and len(summary["graph_speedup"]) == 2


def test_train_cohort_times_each_cohort_size_and_checks_equality(capsys):
    argv = ["--env", "halfcheetah", "--hidden", "8,8,8,8", "--n", "40", "--epochs", "1",
            "--seeds", "1,3", "--repeats", "1"]  # fmt: skip
    assert cohort_train.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert [r["seeds"] for r in summary["results"]] == [1, 3]
    assert summary["steps_per_call"] == 2 and summary["threads"] == 1
    for row in summary["results"]:
        assert row["exact"] is True  # the cohort's weights and moments equal the single calls'
        assert row["batched_max_abs_diff"] < 1e-4
        for mode in ("sequential", "cohort", "cohort_batched"):
            assert row[f"{mode}_s_per_call"] > 0
            assert row[f"{mode}_s_per_seed"] == pytest.approx(
                row[f"{mode}_s_per_call"] / row["seeds"], abs=1e-4
            )


def _wheel(folder: Path, name: str = "pets_gpu_probe", version: str = "0.1") -> Path:
    """A minimal pure-Python wheel whose module reports its version (pip installs it for real)."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{k},,\n" for k in [*files, f"{dist}/RECORD"])
    with zipfile.ZipFile(path, "w") as zf:
        for name_, text in files.items():
            zf.writestr(name_, text)
    return path


def test_gpu_check_starts_on_an_image_without_gymnasium_mujoco_or_mlflow():
    # the GPU image has torch but not the wheels the check installs: `python -m pets_core.bench
    # gpu` must get as far as its own argument parsing before any of them is importable
    blocked = "import sys; sys.modules.update(gymnasium=None, mujoco=None, mlflow=None); "
    run_bench = "import runpy; runpy.run_module('pets_core.bench', run_name='__main__')"
    proc = subprocess.run(
        [sys.executable, "-c", blocked + run_bench, "gpu", "--help"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m pets_core.bench gpu")
    probe = (
        blocked
        + "from pets_core.envs import ENV_NAMES, make_env; print(ENV_NAMES); make_env('cartpole')"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout == "('cartpole', 'reacher', 'pusher', 'halfcheetah')\n"
    assert proc.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: make_env needs gymnasium (pip install -e . installs it)"
    )


def test_gpu_check_records_failures_and_skips_what_does_not_fit(tmp_path, capsys):
    """A broken wheel fails the install stage (recorded, with pip's error); a budget too small
    for the stages skips each one, saying why; both files are still written."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    out = tmp_path / "out"
    argv = ["--out", str(out), "--device", "cpu", "--tiny", "--budget-s", "30",
            "--wheels", str(wheels), "--mlflow", "off",
            "--work", str(tmp_path / "work")]  # fmt: skip
    assert gpu.main(argv) == 0
    report = json.loads((out / "gpu.json").read_text())
    assert report["stages"]["install"]["status"] == "failed"
    assert "broken" in report["stages"]["install"]["error"]
    others = {k: v for k, v in report["stages"].items() if k != "install"}
    assert len(others) == 14
    assert {v["status"] for v in others.values()} == {"skipped"}
    assert all("out of time" in v["error"] for v in others.values())
    log = (out / "gpu.log").read_text().splitlines()
    assert len(log) == 1 + 1 + 14 + 1  # header, install, stages, summary
    assert sorted(p.name for p in out.iterdir()) == ["gpu.json", "gpu.log"]


def test_gpu_check_only_runs_the_stages_named(tmp_path):
    """--only info: that stage alone (no install without --wheels), then the summary."""
    out = tmp_path / "out"
    argv = ["--out", str(out), "--device", "cpu", "--tiny", "--only", "info", "--mlflow", "off",
            "--work", str(tmp_path / "work")]  # fmt: skip
    assert gpu.main(argv) == 0
    report = json.loads((out / "gpu.json").read_text())
    assert list(report["stages"]) == ["info"] and report["stages"]["info"]["status"] == "ok"
    assert report["stages"]["info"]["result"]["cuda_available"] is torch.cuda.is_available()
    assert report["summary"]["stages_ok"] == ["info"]


@pytest.mark.slow
def test_gpu_check_end_to_end_on_cpu_at_tiny_sizes(tmp_path):
    """The real command as a user runs it: every stage ok, results in gpu.json, the wheel
    installed and importable in the stages, the run dirs complete, MLflow used, work removed."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pets_core.bench", "gpu", "--out", str(out), "--device", "cpu",
           "--tiny", "--threads", "1", "--budget-s", "900", "--wheels", str(wheels)]  # fmt: skip
    temp = tmp_path / "tmp"  # where the check's work folder goes (removed at the end)
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "gpu.json").read_text())
    stages = report["stages"]
    not_ok = {k: v.get("error") for k, v in stages.items() if v["status"] != "ok"}
    assert not not_ok
    assert list(stages) == ["install", *gpu.STAGES]
    assert gpu.STAGES == (
        "info",
        "gpu-tests",
        "plan-cartpole",
        "plan-halfcheetah",
        "plan-reacher",
        "plan-pusher",
        "train-cartpole",
        "train-halfcheetah",
        "graph-cartpole",
        "graph-halfcheetah",
        "graph-reacher",
        "graph-pusher",
        "experiment",
        "concurrent",
    )  # fmt: skip
    assert "skipped" in stages["gpu-tests"]["result"]  # no CUDA here: its cases skip
    assert stages["install"]["wheels"] == ["pets_gpu_probe-0.1-py3-none-any.whl"]
    info = stages["info"]["result"]
    assert info["pets_gpu_probe"] == "0.1"  # installed by the check, imported by a stage
    assert info["cuda_available"] is torch.cuda.is_available()  # the stage sees this machine
    for env in gpu.ENVS:
        precisions = stages[f"plan-{env}"]["result"]["precisions"]
        assert set(precisions) == {"fp32", "tf32", "bf16", "bf16-hidden"}
        graphed = stages[f"graph-{env}"]["result"]
        assert graphed["graph"] is True and set(graphed["precisions"]) == {"fp32", "tf32", "bf16"}
    assert stages["train-halfcheetah"]["result"]["n"] == [64, 96]
    assert len(stages["train-halfcheetah"]["result"]["graph_s_per_epoch"]) == 2
    (solo,) = stages["experiment"]["result"]
    assert solo["done"] and solo["iterations"] == 2 and len(solo["plan_s_per_action"]) == 2
    assert "-o ctrl_cfg.graph always" in stages["experiment"]["cmd"]  # the loop, graphed
    assert report["mlflow"].startswith("sqlite:///")
    runs = stages["concurrent"]["result"]
    assert len(runs) == 4 and all(r["done"] and r["iterations"] == 1 for r in runs)
    summary = report["summary"]
    assert summary["stages_not_ok"] == []
    assert len(summary["concurrent_plan_s_per_action"]) == 4
    # mean concurrent s/action over the solo run's, from the same (4-decimal) figures
    each, solo = summary["concurrent_plan_s_per_action"], summary["solo_plan_s_per_action"]
    ratio = sum(each) / len(each) / solo
    rounding = 0.005 + ratio * 5e-5 * (1 / min(each) + 1 / solo)
    assert summary["concurrent_slowdown"] == pytest.approx(ratio, abs=rounding)
    projection = summary["projected_halfcheetah_seed_hours"]
    assert {"train_hours", "train_graph_hours", "plan_fp32_hours", "graph_fp32_hours"} <= set(
        projection
    )
    log = (out / "gpu.log").read_text().splitlines()
    assert len(log) == 1 + 1 + 14 + 1  # header, install, stages, summary
    assert sorted(p.name for p in out.iterdir()) == ["gpu.json", "gpu.log"]
    assert list(temp.iterdir()) == []  # the work folder (run dirs, store, stage logs) is gone


def test_workflow_bench_refuses_a_missing_configfile_in_one_line(tmp_path, capsys):
    from pets_core.bench import workflow

    assert workflow.main(["--configfile", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"python -m pets_core.bench workflow: error: --configfile {tmp_path / 'nope.yaml'}: "
        "no such file"
    )
    assert workflow.main(["--seeds-per-job", "0"]) == 2
    assert "argument --seeds-per-job: must be comma-separated integers >= 1" in (
        capsys.readouterr().err
    )
