"""The optimizer comparison: budgets against the real optimisers, compute per action from run
directories, the table, the figure, and the `optimizers` group in the workflow's dry runs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from support.workflow import REPO, copy_workflow, job_counts, snakemake

from pets_core.analysis.optimizers import (
    candidates_per_plan,
    compute_per_action,
    optimizer_figure,
    optimizer_table,
    to_markdown,
)
from pets_core.config import load_config, to_yaml
from pets_core.results.metrics import write_metrics_csv
from pets_core.run.builders import make_optimizer

OVERRIDES = [("ctrl_cfg.opt_cfg.cfg.popsize", "37"), ("ctrl_cfg.opt_cfg.plan_hor", "6")]


@pytest.mark.parametrize("opt", ["CEM", "Random", "iCEM", "MPPI"])
def test_budget_is_what_the_optimiser_evaluates_per_plan(opt):
    overrides = list(OVERRIDES)
    if opt in ("CEM", "iCEM"):
        overrides.append(("ctrl_cfg.opt_cfg.cfg.num_elites", "4"))
    if opt == "CEM":
        overrides.append(("ctrl_cfg.opt_cfg.cfg.epsilon", "0"))  # never stops early
    cfg = load_config("cartpole", [("opt-type", opt)], overrides)
    lower, upper = -torch.ones(6, 1), torch.ones(6, 1)
    optimizer = make_optimizer(cfg.ctrl_cfg.opt_cfg.cfg, lower, upper)
    sizes = []

    def cost_fn(seqs):
        sizes.append(len(seqs))
        return seqs.square().sum(dim=(1, 2))

    gen = torch.Generator().manual_seed(0)
    for _ in range(2):  # the second plan is the steady state (iCEM reuses shifted elites)
        sizes.clear()
        optimizer.optimize(cost_fn, torch.zeros(6, 1), torch.full((6, 1), 0.25), gen)
    expected = {
        "CEM": 37 * 5,
        "Random": 37,
        "iCEM": (37 + 30 + 24) + 1 * 3 + 1,  # ceil(37/1.25^i); round(0.3 * 4) = 1 kept; + mean
        "MPPI": 37 * 5,
    }[opt]
    assert sum(sizes) == candidates_per_plan(cfg.ctrl_cfg.opt_cfg.cfg) == expected


def _fake_run(root, env, variant, seed, seconds, per=1):
    model, prop, opt = variant.split("-")
    overrides = [*OVERRIDES, ("ctrl_cfg.per", str(per))]
    if opt in ("CEM", "iCEM"):
        overrides.append(("ctrl_cfg.opt_cfg.cfg.num_elites", "4"))
    cfg = load_config(
        env,
        [("model-type", model), ("prop-type", prop), ("opt-type", opt)],
        overrides,
        seed=seed,
    )
    run_dir = root / env / variant / f"seed{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    rows = [{"iteration": i + 1, "plan_s_per_action": s} for i, s in enumerate(seconds)]
    write_metrics_csv(run_dir, rows)
    return run_dir


def test_compute_per_action_reads_seconds_and_the_budget(tmp_path):
    dirs = [
        _fake_run(tmp_path, "cartpole", "PE-TSinf-MPPI", 1, [0.1, 0.3], per=2),
        _fake_run(tmp_path, "cartpole", "PE-TSinf-iCEM", 1, [0.05]),
    ]
    bare = tmp_path / "cartpole" / "PE-TSinf-CEM" / "seed3"  # logs.mat only (the TF code's)
    bare.mkdir(parents=True)
    compute = compute_per_action([*dirs, bare]).set_index("variant")
    mppi = compute.loc["PE-TSinf-MPPI"]
    assert mppi["plan_s_per_action"] == pytest.approx(0.2)
    # 37 x 5 candidates per plan, 2 actions per plan; 20 particles x horizon 6 per candidate
    assert mppi["candidates_per_action"] == 37 * 5 / 2
    assert mppi["model_evals_per_action"] == 37 * 5 / 2 * 20 * 6
    assert compute.loc["PE-TSinf-iCEM", "candidates_per_action"] == 37 + 30 + 24 + 3 + 1
    assert math.isnan(compute.loc["PE-TSinf-CEM", "plan_s_per_action"])
    assert math.isnan(compute.loc["PE-TSinf-CEM", "candidates_per_action"])


def _tidy():
    rows = []
    finals = {"PE-TSinf-CEM": [150, 170, 190], "PE-TSinf-Random": [40, 60, 50]}
    for variant, values in finals.items():
        for seed, final in enumerate(values, 1):
            for it in (1, 2):
                best = final if it == 2 else final / 2
                rows.append(("cartpole", variant, seed, it, it * 200, best, best))
    cols = ["env", "variant", "seed", "iteration", "env_steps", "return", "best_so_far"]
    return pd.DataFrame(rows, columns=cols)


def _compute():
    return pd.DataFrame(
        [
            ("cartpole", "PE-TSinf-CEM", s, sec, 2000.0, 8e5)
            for s, sec in zip((1, 2, 3), (0.2, 0.4, 0.3), strict=True)
        ]
        + [("cartpole", "PE-TSinf-Random", s, 0.1, 2000.0, 8e5) for s in (1, 2, 3)],
        columns=[
            "env",
            "variant",
            "seed",
            "plan_s_per_action",
            "candidates_per_action",
            "model_evals_per_action",
        ],
    )


def test_table_has_final_returns_with_cis_and_the_compute():
    variants = ["PE-TSinf-Random", "PE-TSinf-CEM", "PE-TSinf-MPPI"]  # MPPI absent: no row
    table = optimizer_table(_tidy(), _compute(), variants=variants)
    assert list(table["variant"]) == ["PE-TSinf-Random", "PE-TSinf-CEM"]
    cem = table.set_index("variant").loc["PE-TSinf-CEM"]
    assert cem["seeds"] == 3 and cem["final_best_so_far"] == pytest.approx(170.0)
    assert 150 <= cem["ci_low"] < 170 < cem["ci_high"] <= 190
    assert cem["plan_s_per_action"] == pytest.approx(0.3)
    assert cem["candidates_per_action"] == 2000 and cem["model_evals_per_action"] == 8e5
    md = to_markdown(table)
    assert "| cartpole | PE-TSinf-CEM | 3 | 170.0 [" in md and "| 0.300 | 2000 | 8e+05 |" in md


def test_figure_has_curves_and_one_bar_per_optimiser_of_mean_seconds():
    fig = optimizer_figure(
        _tidy(),
        _compute(),
        envs=["cartpole"],
        variants=["PE-TSinf-CEM", "PE-TSinf-Random"],
        palette={"PE-TSinf-CEM": "#d62728"},
    )
    top, bottom = fig.axes[:2]
    assert top.get_title() == "cartpole"
    # one curve per optimiser: the middle seed's best-so-far per trial (seeds 75/85/95, 20/30/25)
    curves = [(line.get_xdata().tolist(), line.get_ydata().tolist()) for line in top.get_lines()]
    assert curves == [([1, 2], [85, 170]), ([1, 2], [25, 50])]
    assert top.get_lines()[0].get_color() == "#d62728"  # the palette's colour for CEM
    heights = [p.get_height() for p in bottom.patches]
    np.testing.assert_allclose(heights, [0.3, 0.1])
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["CEM", "Random"]
    assert [t.get_text() for t in bottom.texts] == ["2000", "2000"]


def _workdir(tmp_path):
    """A copy of the workflow (results/ empty) that imports this checkout's pets_core."""
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "pets_core").symlink_to(REPO / "pets_core")
    return workdir


def test_paper_matrix_dry_run_has_the_optimizers_group_and_figure(tmp_path):
    workdir = _workdir(tmp_path)
    result = snakemake("-n", "-p", "--nolock", cwd=workdir)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["plot_optimizers"] == 1
    for variant in ("PE-TSinf-iCEM", "PE-TSinf-MPPI"):
        for env in ("cartpole", "reacher", "pusher", "halfcheetah"):
            for seed in range(1, 6):
                assert f"--run-dir results/paper/runs/{env}/{variant}/seed{seed} " in result.stdout
    mppi = next(c for c in result.stdout.splitlines() if "PE-TSinf-MPPI/seed1 " in c)
    assert "-ca opt-type MPPI" in mppi
    assert "results/paper/figures/optimizers.png" in result.stdout
    # a config without the group (the quick demo) has no comparison
    quick = snakemake("-n", "--nolock", "--configfile", "config/quick.yaml", cwd=workdir)
    assert quick.returncode == 0 and "plot_optimizers" not in quick.stdout


def test_quick_optimizers_config_is_a_valid_cartpole_comparison(tmp_path):
    workdir = _workdir(tmp_path)
    result = snakemake(
        "-n", "-p", "--nolock", "--configfile", "config/quick_optimizers.yaml", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["train"] == 4 * 3 and counts["plot_optimizers"] == 1
    mppi = next(c for c in result.stdout.splitlines() if "PE-TSinf-MPPI/seed1 " in c)
    assert "cfg.popsize 50" in mppi and "num_elites" not in mppi  # CEM / iCEM leaf: skipped
    assert REPO.joinpath("config/quick_optimizers.yaml").is_file()
