"""pets_core.analysis on fake run directories with exact, hand-checked answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.io
from support.runs import _tiny_run, make_run

from pets_core.analysis.aggregate import (
    COLUMNS,
    RunDataError,
    collect_runs,
    final_best_so_far,
    find_run_dirs,
    load_run,
    run_records,
)
from pets_core.analysis.plots import ablation_figure, best_so_far_figure
from pets_core.analysis.reference import load_reference
from pets_core.analysis.settings import describe, experiments
from pets_core.analysis.settings import to_html as settings_html
from pets_core.analysis.stats import (
    bootstrap_ci,
    compute_cost,
    iqm,
    summarize_final,
    summary_table,
    trials_to_threshold,
)
from pets_core.analysis.tables import duration, to_html, to_latex, to_markdown
from pets_core.config import fingerprint, from_yaml
from pets_core.results.metrics import best_so_far, env_steps, episodes_per_iteration
from pets_core.results.rundir import job_label, job_seeds


def test_load_run_best_so_far_and_env_steps(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "cartpole", "PE-TSinf-CEM", 3, [1.0, 5.0, 2.0, 7.0, 6.0])
    table = load_run(run_dir)
    assert list(table.columns) == COLUMNS
    assert table["best_so_far"].tolist() == [1.0, 5.0, 5.0, 7.0, 7.0]
    assert table["iteration"].tolist() == [1, 2, 3, 4, 5]
    # one initial random episode of 4 steps, then one 4-step episode per iteration
    assert table["env_steps"].tolist() == [8, 12, 16, 20, 24]
    # the original's x: the random episode not counted, trial i at i task horizons
    assert table["mpc_env_steps"].tolist() == [4, 8, 12, 16, 20]
    assert set(table["seed"]) == {3} and set(table["env"]) == {"cartpole"}
    assert not table["partial"].any()  # someone else's logs.mat alone: judged by siblings only


def test_metrics_definitions_exact() -> None:
    # neval = 2, iteration-major: iteration 1 -> (1, 9), 2 -> (3, 4), 3 -> (10, 0)
    assert best_so_far([1.0, 9.0, 3.0, 4.0, 10.0, 0.0], neval=2).tolist() == [9.0, 9.0, 10.0]
    assert best_so_far([2.0, 1.0, 3.0]).tolist() == [2.0, 2.0, 3.0]
    # 2 random episodes, then max(nrecord 0, neval 3, nrollouts 1) = 3 episodes of 10 steps
    per_iter = episodes_per_iteration(nrecord=0, neval=3, nrollouts_per_iter=1)
    assert per_iter == 3
    steps = env_steps(np.array([1, 2]), task_hor=10, ninit_rollouts=2, episodes_per_iter=per_iter)
    assert steps.tolist() == [50, 80]
    assert env_steps(2, task_hor=10, ninit_rollouts=0, episodes_per_iter=1) == 20
    assert isinstance(env_steps(2, task_hor=10, ninit_rollouts=0, episodes_per_iter=1), int)


def test_runner_and_analysis_share_best_so_far_and_env_steps_with_neval_3(tmp_path: Path) -> None:
    """neval = 3: three MPC episodes per iteration, one of them becomes data (issue 10, 8c)."""
    run_dir = tmp_path / "runs/cartpole/PE-TSinf-CEM/seed1"
    _tiny_run(run_dir, "cartpole", 3, "-o", "exp_cfg.log_cfg.neval", "3")
    returns = scipy.io.loadmat(run_dir / "logs.mat")["returns"].reshape(3, 3)  # [iters, neval]
    assert len(set(returns.max(axis=1))) > 1 or returns.std() > 0  # episodes differ
    oracle_best = np.maximum.accumulate(returns.max(axis=1))  # max over single episodes so far
    oracle_steps = [8 * (1 + 3 * i) for i in (1, 2, 3)]  # TASK_HOR 8, every episode counted
    table = load_run(run_dir)
    runner = pd.read_csv(run_dir / "metrics.csv")
    assert table["best_so_far"].tolist() == pytest.approx(oracle_best.tolist())
    assert runner["best_so_far"].tolist() == pytest.approx(oracle_best.tolist())
    assert table["return"].tolist() == pytest.approx(returns.mean(axis=1).tolist())
    assert table["env_steps"].tolist() == runner["env_steps"].tolist() == oracle_steps
    assert table["mpc_env_steps"].tolist() == [24, 48, 72]
    done = json.loads((run_dir / "done.json").read_text())
    assert done["final_best_so_far"] == pytest.approx(returns.max())


def test_partial_runs_are_left_out_by_default_and_named(tmp_path: Path, capsys) -> None:
    """Real runs: 2 complete, 1 killed (no done.json), 1 complete with a shorter plan (same
    settings: kept, the summary's final taken at the trial all complete runs share); someone
    else's logs.mat (no config.yaml) with fewer iterations than its siblings: partial.
    The notices are stderr lines (pets_core.notices), which PYTHONWARNINGS=ignore cannot hide."""
    root = tmp_path / "runs/cartpole/PE-TSinf-CEM"
    for seed in (1, 2, 3):
        _tiny_run(root / f"seed{seed}", "cartpole", 3, "--seed", str(seed))
    (root / "seed3/done.json").unlink()  # as if killed after its last logs.mat
    _tiny_run(root / "seed4", "cartpole", 2, "--seed", "4")  # complete: 2 of 2 planned
    dirs = find_run_dirs(tmp_path / "runs")
    capsys.readouterr()
    table = collect_runs(dirs)
    messages = sorted(capsys.readouterr().err.splitlines())
    assert messages == [
        f"partial run {root / 'seed3'}: no done.json (killed or still running), 3 iterations; "
        "left out",
    ]
    assert sorted(set(table["seed"])) == [1, 2, 4] and not table["partial"].any()
    assert table.groupby("seed")["iteration"].max().to_dict() == {1: 3, 2: 3, 4: 2}
    finals = final_best_so_far(table).set_index("seed")
    assert finals["iterations"].to_dict() == {1: 2, 2: 2, 4: 2}  # the trials all three have
    at_2 = table[table["iteration"] == 2].set_index("seed")["best_so_far"]
    assert finals["final_best_so_far"].to_dict() == at_2.to_dict()
    capsys.readouterr()
    marked = collect_runs(dirs, include_partial=True)
    assert "included, marked partial" in capsys.readouterr().err
    assert marked.groupby("seed")["partial"].all().to_dict() == {
        1: False, 2: False, 3: True, 4: False
    }  # fmt: skip
    summary = summarize_final(marked).iloc[0]
    assert (summary["seeds"], summary["partial_seeds"]) == (4, 1)
    # someone else's logs.mat: no plan of its own, judged against its siblings
    theirs = [
        make_run(tmp_path / "theirs", "cartpole", "D-E-CEM", s, [1.0] * (4 - s)) for s in (1, 2)
    ]
    capsys.readouterr()
    assert set(collect_runs(theirs)["seed"]) == {1}
    assert "seed2: 2 iterations, its siblings have 3" in capsys.readouterr().err
    # a run killed before its planned iterations is partial even without siblings
    cfg = (root / "seed3/config.yaml").read_text()
    (root / "seed3/config.yaml").write_text(cfg.replace("ntrain_iters: 3", "ntrain_iters: 5"))
    collect_runs([root / "seed3"], include_partial=True)
    assert "seed3: 3 of 5 planned iterations" in capsys.readouterr().err
    with pytest.raises(RunDataError, match=r"all 1 run\(s\) are partial"):
        collect_runs([root / "seed3"])


def test_runs_of_different_settings_are_never_averaged(tmp_path: Path) -> None:
    """Issue 28, case 3: cartpole seeds at task_hor 8 (tiny runs) and 9 in one existing_runs
    folder gave one curve and one row. Now one error names both groups, their seeds and the
    setting that differs; one setting alone aggregates, with its fingerprint in every row."""
    root = tmp_path / "runs/cartpole/PE-TSinf-CEM"
    for seed in (1, 2):
        _tiny_run(root / f"seed{seed}", "cartpole", 1, "--seed", str(seed))
    for seed in (3, 4):
        _tiny_run(
            root / f"seed{seed}", "cartpole", 1, "--seed", str(seed),
            "-o", "exp_cfg.sim_cfg.task_hor", "9",
        )  # fmt: skip
    fp = {s: fingerprint(from_yaml(root / f"seed{s}/config.yaml")) for s in (1, 2, 3, 4)}
    assert fp[1] == fp[2] != fp[3] == fp[4]
    with pytest.raises(RunDataError) as info:
        collect_runs(find_run_dirs(tmp_path / "runs"))
    first, second = sorted([(fp[1], "1, 2", 8), (fp[3], "3, 4", 9)])
    assert str(info.value) == (
        "runs of different settings are never averaged into one curve; aggregate each setting "
        "from its own folder:\n"
        "  cartpole PE-TSinf-CEM: 2 different settings\n"
        f"    settings {first[0]} (seeds {first[1]}): exp_cfg.sim_cfg.task_hor {first[2]}\n"
        f"    settings {second[0]} (seeds {second[1]}): exp_cfg.sim_cfg.task_hor {second[2]}"
    )
    one = collect_runs([root / "seed1", root / "seed2"])
    assert set(one["settings"]) == {fp[1]}
    records = run_records([root / "seed1", root / "seed2"], one)
    assert list(records["settings"]) == [fp[1], fp[1]]


def test_corrupt_and_missing_runs_are_named_in_one_error(tmp_path: Path) -> None:
    good = make_run(tmp_path, "cartpole", "PE-TSinf-CEM", 1, [1.0, 2.0])
    corrupt = make_run(tmp_path, "cartpole", "PE-TSinf-CEM", 2, [1.0, 2.0])
    (corrupt / "logs.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated garbage")
    missing = tmp_path / "runs" / "cartpole" / "PE-TSinf-CEM" / "seed3"
    missing.mkdir()
    with pytest.raises(RunDataError) as info:
        collect_runs([good, corrupt, missing])
    message = str(info.value)
    assert "2 run(s)" in message
    assert str(corrupt / "logs.mat") in message
    assert str(missing / "logs.mat") in message
    assert str(good) not in message


def test_logs_without_returns_is_an_error_naming_the_file(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "reacher" / "D-E-CEM" / "seed1"
    run_dir.mkdir(parents=True)
    scipy.io.savemat(run_dir / "logs.mat", {"rewards": np.zeros((2, 3))})
    with pytest.raises(RunDataError, match=r"seed1/logs\.mat: no 'returns'"):
        load_run(run_dir)


def test_collect_and_find_run_dirs(tmp_path: Path) -> None:
    make_run(tmp_path, "reacher", "D-E-CEM", 2, [-5.0, -3.0])
    make_run(tmp_path, "cartpole", "PE-TSinf-CEM", 1, [1.0])
    dirs = find_run_dirs(tmp_path / "runs")
    assert [d.parts[-3:] for d in dirs] == [
        ("cartpole", "PE-TSinf-CEM", "seed1"),
        ("reacher", "D-E-CEM", "seed2"),
    ]
    table = collect_runs(dirs)
    assert len(table) == 3
    finals = final_best_so_far(table)
    assert finals["final_best_so_far"].tolist() == [1.0, -3.0]


def test_iqm_exact() -> None:
    # n = 8, sorted -50 1 2 3 4 5 6 100: trim 2 each end -> mean(2, 3, 4, 5) = 3.5
    assert iqm(np.array([100.0, 1, 2, 3, 4, 5, 6, -50])) == pytest.approx(3.5)
    # n = 5: trim int(1.25) = 1 each end -> mean(2, 3, 4) = 3
    assert iqm(np.array([1.0, 2, 3, 4, 1000])) == pytest.approx(3.0)


def test_bootstrap_ci_properties() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    low, high = bootstrap_ci(values)
    assert values.min() <= low < values.mean() < high <= values.max()
    assert bootstrap_ci(values) == (low, high)  # fixed seed: identical
    assert bootstrap_ci(np.array([2.0, 2.0, 2.0])) == (2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([2.0])))
    # stratified: each stratum is resampled on its own, so a constant stratum stays constant
    low2, high2 = bootstrap_ci(np.zeros(4), np.array([8.0, 8.0, 8.0, 8.0]))
    assert low2 == high2 == 4.0


def _tidy(tmp_path: Path) -> pd.DataFrame:
    for seed, returns in enumerate([[1, 5, 2], [0, 0, 3], [4, 4, 4], [2, 9, 1], [0, 1, 2]], 1):
        make_run(tmp_path, "cartpole", "PE-TSinf-CEM", seed, [float(r) for r in returns])
    make_run(tmp_path, "cartpole", "D-E-CEM", 1, [0.0, 1.0, 1.0])
    return collect_runs(find_run_dirs(tmp_path / "runs"))


def test_summaries_exact(tmp_path: Path) -> None:
    tidy = _tidy(tmp_path)
    summary = summarize_final(tidy).set_index("variant")
    # finals: [5, 3, 4, 9, 2] -> mean 4.6, IQM mean(3, 4, 5) = 4
    pets = summary.loc["PE-TSinf-CEM"]
    assert pets["seeds"] == 5 and pets["iterations"] == 3
    assert pets["mean"] == pytest.approx(4.6)
    assert pets["iqm"] == pytest.approx(4.0)
    assert 2.0 <= pets["ci_low"] < 4.6 < pets["ci_high"] <= 9.0
    assert math.isnan(summary.loc["D-E-CEM", "ci_low"])  # one seed: no interval

    trials = trials_to_threshold(tidy, {"cartpole": 4.0}).set_index("variant")
    # first trial with best-so-far >= 4: seeds -> 2, never, 1, 2, never
    assert trials.loc["PE-TSinf-CEM", "seeds_reached"] == 3
    assert trials.loc["PE-TSinf-CEM", "trials_mean"] == pytest.approx(5 / 3)
    assert trials.loc["PE-TSinf-CEM", "trials_median"] == 2.0
    assert trials.loc["D-E-CEM", "seeds_reached"] == 0


def test_durations_in_minutes_or_hours() -> None:
    assert [duration(h) for h in (0.5 / 3600, 0.024, 0.5, 1.0, 3.25, float("nan"))] == [
        "0 s", "1.4 min", "30 min", "1.0 h", "3.2 h", "–"
    ]  # fmt: skip


def test_iqm_only_where_it_trims(tmp_path: Path) -> None:
    summary = summarize_final(_tidy(tmp_path)).set_index("variant")
    assert math.isnan(summary.loc["D-E-CEM", "iqm"])  # 1 seed: nothing to trim
    assert summary.loc["PE-TSinf-CEM", "iqm"] == pytest.approx(4.0)  # 5 seeds: trims 1 each end


def test_a_group_jobs_benchmark_is_shared_by_its_seeds(tmp_path: Path) -> None:
    """seeds_per_job: one benchmark for seeds 1-3 run in lockstep (seeds1-2-3.tsv), one for seed
    4 alone; each run's cost is its job's over its seeds; a run left out (seed 3) counts not."""
    bench_dir = tmp_path / "cartpole" / "PE-TSinf-CEM"
    bench_dir.mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for label, wall, cpu in (("seeds1-2-3", 5400.0, 10800.0), ("seed4", 3600.0, 3600.0)):
        assert job_label(job_seeds(label)) == label
        (bench_dir / f"{label}.tsv").write_text(header + f"{wall}\t1\t1\t1\t1\t1\t0\t0\t1\t{cpu}\n")
    runs = pd.DataFrame(
        {
            "env": "cartpole",
            "variant": "PE-TSinf-CEM",
            "seed": [1, 2, 4],
            "device": "cpu",
            "wall_s": np.nan,
        }
    )
    cost = compute_cost(sorted(bench_dir.glob("*.tsv")), runs).set_index("variant")
    # seeds 1, 2: 1800 s wall and 3600 s CPU each (a third of their job's); seed 4: 3600, 3600
    assert cost.loc["PE-TSinf-CEM", "wall_h_per_run"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert cost.loc["PE-TSinf-CEM", "cpu_h_per_run"] == pytest.approx((1 + 1 + 1) / 3)
    with pytest.raises(ValueError, match="'seeds1' is not a training job's name"):
        job_seeds("seeds1")


def test_compute_cost_and_tables(tmp_path: Path) -> None:
    tidy = _tidy(tmp_path)
    bench_dir = tmp_path / "benchmarks" / "cartpole" / "PE-TSinf-CEM"
    bench_dir.mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for seed, (wall, cpu) in enumerate([(3600.0, 7200.0), (1800.0, 3600.0)], 1):
        (bench_dir / f"seed{seed}.tsv").write_text(
            header + f"{wall}\t1:00:00\t1\t1\t1\t1\t0\t0\t1\t{cpu}\n"
        )
    files = sorted(bench_dir.glob("*.tsv"))
    runs = pd.DataFrame(
        {
            "env": "cartpole",
            "variant": "PE-TSinf-CEM",
            "seed": [1, 2],
            "device": ["cuda:0", "cpu"],
            "wall_s": [np.nan, 1800.0],  # seed 1: no wall time in done.json -> benchmark's
        }
    )
    cost = compute_cost(files, runs).set_index("variant")
    assert cost.loc["PE-TSinf-CEM", "wall_h_per_run"] == pytest.approx(0.75)
    assert cost.loc["PE-TSinf-CEM", "cpu_h_per_run"] == pytest.approx(1.5)
    assert cost.loc["PE-TSinf-CEM", "gpu_h_per_run"] == pytest.approx(0.5)  # (1 h + 0) / 2
    assert cost.loc["PE-TSinf-CEM", "device"] == "cpu, cuda:0"
    # GPU hours only where a GPU was used: CPU-only or unknown devices show none
    cpu_only = compute_cost(files, runs.assign(device=["cpu", "cpu"]))
    assert math.isnan(cpu_only["gpu_h_per_run"].iloc[0])
    assert math.isnan(compute_cost(files)["gpu_h_per_run"].iloc[0])  # no done.json device

    table = summary_table(tidy, {"cartpole": 4.0}, files, runs.assign(device=["cpu", "cpu"]))
    markdown = to_markdown(table)
    assert "| cartpole | PE-TSinf-CEM | 5 | 4.6 [" in markdown
    assert "1.7 (3/5 ≥ 4)" in markdown
    assert "| cpu | 45 min | 1.5 h | – |" in markdown  # minutes or hours as fits; no GPU hours
    assert markdown.count("\n") == 2 + 2  # header, rule, two variants
    # one seed: IQM would equal the mean, so none is shown
    assert "| cartpole | D-E-CEM | 1 | 1.0 | – |" in markdown
    html = to_html(table, "caption text")
    assert "<th>Final best-so-far: mean [95% CI]</th>" in html and "<td>45 min</td>" in html
    latex = to_latex(table)
    assert latex.startswith(r"\begin{tabular}") and r"$\geq$" in latex


REFERENCE_YAML = Path(__file__).parents[2] / "config/reference_curves.yaml"


def test_reference_trials_are_the_nearest_whole_trial_of_the_published_steps() -> None:
    curves = load_reference(REFERENCE_YAML)
    # the published x is env steps of MPC trials (paper task horizons: cartpole 200, others 150)
    trials = {(env, p["env_steps"]): p["trials"] for env, ps in curves.items() for p in ps}
    assert trials[("cartpole", 800)] == 4 and trials[("cartpole", 3000)] == 15
    assert trials[("reacher", 2550)] == 17 and trials[("reacher", 15000)] == 100
    assert trials[("pusher", 2250)] == 15 and trials[("pusher", 12000)] == 80
    assert curves["halfcheetah"] == []


def _cartpole_runs(tmp_path: Path, seeds: int) -> pd.DataFrame:
    """seed s returns s, s+1, ...: best-so-far at trial 4 is s + 3."""
    for seed in range(1, seeds + 1):
        make_run(
            tmp_path, "cartpole", "PE-TSinf-CEM", seed, [float(seed + i) for i in range(5)],
            task_hor=200,
        )  # fmt: skip
    return collect_runs(find_run_dirs(tmp_path / "runs"))


def test_reference_marks_and_our_curve_share_the_x_convention(tmp_path: Path) -> None:
    """Trial 4 of ours and the '800 steps (4 trials)' mark sit at the same x on both figures."""
    tidy = _cartpole_runs(tmp_path, 3)
    reference = {"cartpole": [{"label": "orig", "env_steps": 800, "trials": 4, "return": 75.0}]}
    for x, at in (("iteration", 4), ("mpc_env_steps", 800)):
        fig = best_so_far_figure(
            tidy, envs=["cartpole"], variants=["PE-TSinf-CEM"], x=x, reference=reference
        )
        lines = fig.axes[0].lines
        mark = [line for line in lines if line.get_marker() == "x"]
        assert [list(line.get_xdata()) for line in mark] == [[at]]
        mean = lines[3]  # 3 single seeds, then the mean
        assert mean.get_linewidth() == 1.6 and mean.get_xdata()[3] == at
        assert mean.get_ydata()[3] == pytest.approx((4 + 5 + 6) / 3)  # best-so-far at trial 4
        assert not fig.axes[0].collections  # 3 seeds: no band
        plt.close(fig)


def test_reference_marks_stop_at_the_last_trial_run_and_need_runs(tmp_path: Path) -> None:
    """A mark read a few steps past our last trial (trial 5, 1,000 steps; read at 1,050) is drawn
    on both figures, one at trial 6 is not, and a panel without runs gets no marks."""
    tidy = _cartpole_runs(tmp_path, 3)  # trials 1..5
    reference = {
        "cartpole": [
            {"label": "orig", "env_steps": 1050, "trials": 5, "return": 75.0},
            {"label": "orig", "env_steps": 1200, "trials": 6, "return": 80.0},
        ],
        "reacher": [{"label": "orig", "env_steps": 150, "trials": 1, "return": -50.0}],
    }
    for x, at in (("iteration", 5), ("mpc_env_steps", 1050)):
        fig = best_so_far_figure(
            tidy, envs=["cartpole", "reacher"], variants=["PE-TSinf-CEM"], x=x, reference=reference
        )
        cartpole, reacher = fig.axes[:2]
        marks = [line for line in cartpole.lines if line.get_marker() == "x"]
        assert [list(line.get_xdata()) for line in marks] == [[at]]
        assert not reacher.lines
        plt.close(fig)


def test_five_seeds_get_a_band_fewer_get_every_seed(tmp_path: Path) -> None:
    tidy = _cartpole_runs(tmp_path, 5)
    fig = best_so_far_figure(tidy, envs=["cartpole"], variants=["PE-TSinf-CEM"])
    assert len(fig.axes[0].collections) == 1 and len(fig.axes[0].lines) == 1
    plt.close(fig)
    fig = best_so_far_figure(tidy[tidy["seed"] <= 4], envs=["cartpole"], variants=["PE-TSinf-CEM"])
    assert not fig.axes[0].collections and len(fig.axes[0].lines) == 4 + 1
    plt.close(fig)


def test_settings_name_every_difference_from_the_paper(tmp_path: Path) -> None:
    """A real tiny run: its config.yaml against config/pets + config/envs (independent values)."""
    run_dir = _tiny_run(tmp_path / "runs/cartpole/PE-TSinf-CEM/seed2", "cartpole", 1, "--seed", "2")
    (row,) = experiments([run_dir])
    assert (row["env"], row["variant"], row["seeds"]) == ("cartpole", "PE-TSinf-CEM", [2])
    # support.runs' tiny_args: task_hor 8, 1 iteration, horizon 3, CEM 8 / 2 / 2 iters,
    # 3 x 8 network, 2 nets, 4 particles; the paper's cartpole: 200, 50, 25, 400 / 40 / 5, 3 x 500
    assert row["differences"] == {
        "ctrl_cfg.opt_cfg.cfg.max_iters": (2, 5),
        "ctrl_cfg.opt_cfg.cfg.num_elites": (2, 40),
        "ctrl_cfg.opt_cfg.cfg.popsize": (8, 400),
        "ctrl_cfg.opt_cfg.plan_hor": (3, 25),
        "ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims": ([8, 8, 8], [500, 500, 500]),
        "ctrl_cfg.prop_cfg.model_init_cfg.num_nets": (2, 5),
        "ctrl_cfg.prop_cfg.npart": (4, 20),
        "exp_cfg.exp_cfg.ntrain_iters": (1, 50),
        "exp_cfg.sim_cfg.task_hor": (8, 200),
    }
    text = describe(row["differences"])
    assert text.startswith("the paper's settings except CEM iters 2 (paper 5), elites 2 (paper 40)")
    assert "hidden layers 3 x 8 (paper 3 x 500)" in text
    page = settings_html([row])
    assert "<td><b>8</b> (400)</td>" in page  # popsize, bold: differs from the paper
    assert "<code>ctrl_cfg.opt_cfg.cfg.alpha</code></td><td>0.1</td><td>0.1</td>" in page
    assert describe({}) == "the paper's settings"
    assert describe(None) == "settings unknown (no config.yaml)"
    # a config.yaml written before a setting existed: the missing leaf is its default, no
    # difference (the committed fidelity runs predate ctrl_cfg.precision and record_iters)
    path = run_dir / "config.yaml"
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith(("precision:", "record_iters:"))]
    assert len(kept) == len(lines) - 2
    path.write_text("".join(kept))
    (old,) = experiments([run_dir])
    assert old["differences"] == row["differences"]


def test_ablation_shows_single_seeds_below_five_and_whiskers_from_five(tmp_path: Path) -> None:
    tidy = _tidy(tmp_path)  # PE-TSinf-CEM: 5 seeds (finals 5, 3, 4, 9, 2); D-E-CEM: 1 seed
    summary = summarize_final(tidy)
    fig = ablation_figure(summary, envs=["cartpole"], finals=final_best_so_far(tidy))
    points = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert [list(line.get_ydata()) for line in points] == [[1.0]]  # D-E-CEM's one seed
    plt.close(fig)


def test_compute_cost_names_devices_with_runs_lacking_done_json():
    # a partial run has no done.json, so its device is NaN next to the others' strings
    from pets_core.analysis.stats import _device_names

    assert _device_names(["cpu", float("nan"), "cuda:0", "", "cpu"]) == "cpu, cuda:0, unknown"


def test_ablation_draws_negative_means_as_markers_not_bars_from_zero(tmp_path: Path) -> None:
    for seed, returns in enumerate([[-90.0, -60.0], [-80.0, -50.0]], 1):
        make_run(tmp_path, "reacher", "PE-TSinf-CEM", seed, returns)
    tidy = collect_runs(find_run_dirs(tmp_path / "runs"))
    fig = ablation_figure(summarize_final(tidy), envs=["reacher"], finals=final_best_so_far(tidy))
    ax = fig.axes[0]
    assert not [p for p in ax.patches if isinstance(p, mpl.patches.Rectangle)]  # no bars
    (mean,) = [line for line in ax.lines if line.get_marker() == "s"]
    assert list(mean.get_ydata()) == [-55.0]  # finals -60, -50
    assert ax.get_ylim()[1] < 0  # the axis stays on the data instead of reaching up to 0
    plt.close(fig)


def test_best_so_far_figure_proportions_ticks_and_seed_colours(tmp_path: Path) -> None:
    tidy = _tidy(tmp_path)  # 3 trials; D-E-CEM has 1 seed, so single seeds are drawn
    palette = {"PE-TSinf-CEM": "#d62728", "D-E-CEM": "#7f7f7f"}
    fig = best_so_far_figure(
        tidy[tidy["seed"] <= 2],
        envs=["cartpole"],
        variants=["PE-TSinf-CEM", "D-E-CEM"],
        palette=palette,
    )
    fig.canvas.draw()
    ax = fig.axes[0]
    assert list(ax.get_xticks()[(ax.get_xticks() >= 1) & (ax.get_xticks() <= 3)]) == [1, 2, 3]
    # the axes keep their height whatever the legend needs (the figure grows instead)
    assert ax.get_position().height >= 0.45  # was about 0.25 with a 3-row legend
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["PE-TSinf-CEM", "D-E-CEM", "single seeds"]
    # the seed swatch: one thin line per variant, in its colour (the means are drawn at lw 1.6)
    thin = [a for a in legend.findobj(mpl.lines.Line2D) if a.get_linewidth() == 0.6]
    colours = sorted({mpl.colors.to_hex(line.get_color()) for line in thin})
    assert colours == sorted(palette.values())
    plt.close(fig)
