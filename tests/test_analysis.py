"""pets_core.analysis on fake run directories with exact, hand-checked answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from pets_core.analysis.aggregate import (
    COLUMNS,
    RunDataError,
    collect_runs,
    final_best_so_far,
    find_run_dirs,
    load_run,
)
from pets_core.analysis.stats import (
    bootstrap_ci,
    compute_cost,
    iqm,
    summarize_final,
    summary_table,
    trials_to_threshold,
)
from pets_core.analysis.tables import to_latex, to_markdown


def make_run(
    root: Path,
    env: str,
    variant: str,
    seed: int,
    returns: list[float],
    *,
    task_hor: int = 4,
    n_init: int = 1,
    obs_dim: int = 3,
    act_dim: int = 2,
) -> Path:
    """A run dir with a logs.mat in the original's keys and shapes (spec sec. 6.2)."""
    run_dir = root / "runs" / env / variant / f"seed{seed}"
    run_dir.mkdir(parents=True)
    n = n_init + len(returns)
    scipy.io.savemat(
        run_dir / "logs.mat",
        {
            "observations": np.zeros((n, task_hor + 1, obs_dim)),  # [n, T+1, O]
            "actions": np.zeros((n, task_hor, act_dim)),  # [n, T, A]
            "rewards": np.zeros((n, task_hor)),  # [n, T]
            "returns": np.asarray(returns, dtype=float)[None, :],  # [1, iters]
        },
    )
    return run_dir


def test_load_run_best_so_far_and_env_steps(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "cartpole", "PE-TSinf-CEM", 3, [1.0, 5.0, 2.0, 7.0, 6.0])
    table = load_run(run_dir)
    assert list(table.columns) == COLUMNS
    assert table["best_so_far"].tolist() == [1.0, 5.0, 5.0, 7.0, 7.0]
    assert table["iteration"].tolist() == [1, 2, 3, 4, 5]
    # one initial random episode of 4 steps, then one 4-step episode per iteration
    assert table["env_steps"].tolist() == [8, 12, 16, 20, 24]
    assert set(table["seed"]) == {3} and set(table["env"]) == {"cartpole"}


def test_env_steps_come_from_metrics_csv_when_present(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "cartpole", "PE-E-CEM", 1, [1.0, 2.0])
    pd.DataFrame({"iteration": [1, 2], "env_steps": [400, 600]}).to_csv(
        run_dir / "metrics.csv", index=False
    )
    assert load_run(run_dir)["env_steps"].tolist() == [400, 600]


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
    cost = compute_cost(files, gpu_per_run=1).set_index("variant")
    assert cost.loc["PE-TSinf-CEM", "wall_h_per_run"] == pytest.approx(0.75)
    assert cost.loc["PE-TSinf-CEM", "cpu_h_per_run"] == pytest.approx(1.5)
    assert cost.loc["PE-TSinf-CEM", "gpu_h_per_run"] == pytest.approx(0.75)

    table = summary_table(tidy, {"cartpole": 4.0}, files, gpu_per_run=1)
    markdown = to_markdown(table)
    assert "| cartpole | PE-TSinf-CEM | 5 | 4.6 [" in markdown
    assert "1.7 (3/5 ≥ 4)" in markdown
    assert markdown.count("\n") == 2 + 2  # header, rule, two variants
    latex = to_latex(table)
    assert latex.startswith(r"\begin{tabular}") and r"$\geq$" in latex
