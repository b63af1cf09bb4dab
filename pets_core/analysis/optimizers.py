"""The optimizer comparison (experiment group ``optimizers``): CEM, iCEM, MPPI and random shooting
with the same model, propagation, envs and seeds -> one figure and one table.

Per env: best-so-far return against trials (mean and 95% bootstrap CI over seeds, as Figure 3)
and the compute each optimizer spends per executed action: measured planning seconds
(``metrics.csv``'s ``plan_s_per_action``, averaged over a run's iterations) and the nominal budget
from the run's ``config.yaml``: candidate action sequences per action and model evaluations per
action (candidates x particles x horizon one-step predictions).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from pets_core.analysis.aggregate import parse_run_dir
from pets_core.analysis.plots import TEXT_WIDTH_IN, _legend, variant_palette
from pets_core.analysis.stats import BOOTSTRAP_SEED, N_RESAMPLES, bootstrap_ci
from pets_core.config import CEMCfg, ICEMCfg, MPPICfg, PetsConfig, RandomCfg, from_yaml

COMPUTE_COLUMNS = [
    "env",
    "variant",
    "seed",
    "plan_s_per_action",
    "candidates_per_action",
    "model_evals_per_action",
]
TABLE_COLUMNS = [
    "env",
    "variant",
    "seeds",
    "final_best_so_far",
    "ci_low",
    "ci_high",
    "plan_s_per_action",
    "candidates_per_action",
    "model_evals_per_action",
]


def candidates_per_plan(opt_cfg: CEMCfg | RandomCfg | ICEMCfg | MPPICfg) -> int:
    """Candidate sequences one plan evaluates (steady state; CEM: at most, its eps test may stop
    it earlier). iCEM: the decayed populations, plus the kept elites in every iteration (the first
    one's shifted from the previous plan), plus the mean in the last iteration."""
    c = opt_cfg
    if isinstance(c, CEMCfg):
        return c.popsize * c.max_iters
    if isinstance(c, ICEMCfg):
        fresh = sum(
            max(math.ceil(c.popsize * c.pop_decay**-i - 1e-9), 2 * c.num_elites)
            for i in range(c.max_iters)
        )
        return fresh + round(c.keep_elites_frac * c.num_elites) * c.max_iters + 1
    if isinstance(c, MPPICfg):
        return c.popsize * c.num_iters
    return c.popsize


def nominal_compute(cfg: PetsConfig) -> dict[str, float]:
    """Candidates and one-step model evaluations per executed action of a run's config."""
    opt, per = cfg.ctrl_cfg.opt_cfg, cfg.ctrl_cfg.per
    candidates = candidates_per_plan(opt.cfg) / per
    return {
        "candidates_per_action": candidates,
        "model_evals_per_action": candidates * cfg.ctrl_cfg.prop_cfg.npart * opt.plan_hor,
    }


def compute_per_action(run_dirs: Iterable[Path | str]) -> pd.DataFrame:
    """One row per run: measured planning seconds per action and the nominal budget.

    A run without ``config.yaml`` (e.g. the original TF code's logs.mat only) gets NaN budget; one
    without ``metrics.csv`` NaN seconds.
    """
    rows = []
    for run_dir in map(Path, run_dirs):
        env, variant, seed = parse_run_dir(run_dir)
        row = {"env": env, "variant": variant, "seed": seed, "plan_s_per_action": math.nan}
        row |= {"candidates_per_action": math.nan, "model_evals_per_action": math.nan}
        if (run_dir / "config.yaml").is_file():
            row |= nominal_compute(from_yaml(run_dir / "config.yaml"))
        if (run_dir / "metrics.csv").is_file():
            seconds = pd.read_csv(run_dir / "metrics.csv")["plan_s_per_action"].dropna()
            row["plan_s_per_action"] = float(seconds.mean()) if len(seconds) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=COMPUTE_COLUMNS)


def optimizer_table(
    tidy: pd.DataFrame, compute: pd.DataFrame, *, variants: Sequence[str]
) -> pd.DataFrame:
    """Per env x variant (in ``variants`` order): final best-so-far mean and 95% CI over seeds,
    mean planning seconds per action, nominal candidates and model evaluations per action."""
    tidy = tidy[tidy["variant"].isin(variants)]
    final = tidy.sort_values("iteration").groupby(["env", "variant", "seed"]).tail(1)
    rows = []
    for env in dict.fromkeys(tidy["env"]):
        for variant in variants:
            runs = final[(final["env"] == env) & (final["variant"] == variant)]
            if runs.empty:
                continue
            values = runs["best_so_far"].to_numpy(dtype=float)
            low, high = bootstrap_ci(values)
            cost = compute[(compute["env"] == env) & (compute["variant"] == variant)]
            rows.append(
                {
                    "env": env,
                    "variant": variant,
                    "seeds": len(values),
                    "final_best_so_far": float(values.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "plan_s_per_action": _mean(cost["plan_s_per_action"]),
                    "candidates_per_action": _mean(cost["candidates_per_action"]),
                    "model_evals_per_action": _mean(cost["model_evals_per_action"]),
                }
            )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def to_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub Markdown: return with its CI, seconds, candidates, model evaluations."""
    lines = [
        "| env | variant | seeds | final best-so-far [95% CI] | s / action | candidates / action "
        "| model evals / action |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        ci = "" if np.isnan(r.ci_low) else f" [{r.ci_low:.1f}, {r.ci_high:.1f}]"
        lines.append(
            f"| {r.env} | {r.variant} | {r.seeds} | {r.final_best_so_far:.1f}{ci} "
            f"| {_fmt(r.plan_s_per_action, '.3f')} | {_fmt(r.candidates_per_action, '.0f')} "
            f"| {_fmt(r.model_evals_per_action, '.3g')} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float, spec: str) -> str:
    return "-" if np.isnan(value) else format(value, spec)


def optimizer_figure(
    tidy: pd.DataFrame,
    compute: pd.DataFrame,
    *,
    envs: Sequence[str],
    variants: Sequence[str],
    palette: Mapping[str, str] | None = None,
) -> plt.Figure:
    """Top row: best-so-far return vs trials per env (mean, 95% bootstrap CI over seeds).
    Bottom row: planning seconds per action (mean, 95% CI), each bar labelled with its nominal
    candidate sequences per action."""
    data = tidy[tidy["variant"].isin(variants)]
    present = [v for v in variants if v in set(data["variant"])]
    colours = variant_palette(present, palette)
    n = len(envs)
    fig, axes = plt.subplots(
        2,
        n,
        figsize=(max(TEXT_WIDTH_IN * n / 4, 3.25), 4.2),
        layout="constrained",
        squeeze=False,
        height_ratios=[1.4, 1.0],
    )
    for col, env in enumerate(envs):
        top, bottom = axes[0][col], axes[1][col]
        env_data = data[data["env"] == env]
        order = [v for v in present if v in set(env_data["variant"])]
        if order:
            sns.lineplot(
                data=env_data,
                x="iteration",
                y="best_so_far",
                hue="variant",
                hue_order=order,
                palette=colours,
                errorbar=("ci", 95),
                n_boot=N_RESAMPLES,
                seed=BOOTSTRAP_SEED,
                ax=top,
                legend=False,
            )
        top.set(title=env, xlabel="Trials", ylabel="Best-so-far return" if col == 0 else "")
        cost = compute[(compute["env"] == env) & compute["variant"].isin(order)]
        for i, variant in enumerate(order):
            runs = cost[cost["variant"] == variant]
            seconds = runs["plan_s_per_action"].dropna().to_numpy(dtype=float)
            if seconds.size:
                mean = float(seconds.mean())
                low, high = bootstrap_ci(seconds)
                yerr = None if np.isnan(low) else [[max(mean - low, 0.0)], [max(high - mean, 0.0)]]
                bottom.bar(i, mean, color=colours[variant], yerr=yerr, capsize=2)
                budget = _mean(runs["candidates_per_action"])
                if not np.isnan(budget):
                    bottom.annotate(
                        f"{budget:.0f}",
                        (i, mean if np.isnan(high) else max(mean, high)),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
        names = [v.rsplit("-", 1)[-1] for v in order]
        bottom.set_xticks(range(len(order)), names, fontsize=6, rotation=25, ha="right")
        bottom.set(ylabel="Planning s / action" if col == 0 else "")
        bottom.set_xlabel("over bars: candidates / action", fontsize=6)
        bottom.margins(y=0.25)
    handles = [plt.Line2D([], [], color=colours[v], label=v) for v in present]
    _legend(fig, handles)
    return fig
