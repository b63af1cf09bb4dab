"""Summary statistics over seeds: mean, IQM, bootstrap CIs, trials to threshold, compute cost.

Conventions follow rliable (Agarwal et al., NeurIPS 2021): the interquartile mean (IQM) is the 25%
trimmed mean, and confidence intervals come from a percentile bootstrap that resamples runs within
each stratum (here: within one env, so one env x variant cell is a single stratum; pass several
strata to :func:`bootstrap_ci` to aggregate over envs). scipy.stats.bootstrap does the resampling,
with a fixed seed so tables and figures are byte-stable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from pets_core.analysis.aggregate import final_best_so_far, parse_run_dir

BOOTSTRAP_SEED = 0
N_RESAMPLES = 2000
CONFIDENCE = 0.95


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: mean of the middle 50% (scipy trims int(0.25 n) values at each end)."""
    return scipy.stats.trim_mean(values, 0.25, axis=axis)


def mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(values, axis=axis)


def bootstrap_ci(
    *strata: np.ndarray,
    statistic: Callable[..., np.ndarray] = mean,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over the pooled runs, resampling within strata.

    Each stratum (e.g. the seeds of one env) is resampled with replacement independently and the
    statistic is taken over the concatenation. Fewer than two runs give (nan, nan); identical
    values give a zero-width interval.
    """
    strata = tuple(np.asarray(s, dtype=float).reshape(-1) for s in strata)
    if sum(s.size for s in strata) < 2 or any(s.size == 0 for s in strata):
        return (float("nan"), float("nan"))
    pooled = np.concatenate(strata)
    if np.all(pooled == pooled[0]):
        return (float(pooled[0]), float(pooled[0]))

    def pooled_statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(np.concatenate(samples, axis=axis), axis=axis)

    result = scipy.stats.bootstrap(
        strata,
        pooled_statistic,
        n_resamples=N_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def summarize_final(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per env x variant: seeds, iterations, final best-so-far mean / IQM / 95% CI of the mean."""
    finals = final_best_so_far(tidy)
    rows = []
    for (env, variant), group in finals.groupby(["env", "variant"], sort=True):
        values = group["final_best_so_far"].to_numpy(dtype=float)
        low, high = bootstrap_ci(values)
        iqm_low, iqm_high = bootstrap_ci(values, statistic=iqm)
        rows.append(
            {
                "env": env,
                "variant": variant,
                "seeds": len(values),
                "partial_seeds": int(group["partial"].astype(bool).sum()),
                "iterations": int(group["iterations"].min()),
                "mean": float(values.mean()),
                "ci_low": low,
                "ci_high": high,
                "iqm": float(iqm(values)),
                "iqm_ci_low": iqm_low,
                "iqm_ci_high": iqm_high,
            }
        )
    return pd.DataFrame(rows)


def trials_to_threshold(tidy: pd.DataFrame, thresholds: Mapping[str, float]) -> pd.DataFrame:
    """Per env x variant: how many seeds reach the env's threshold, and the mean/median trial.

    A run reaches the threshold at the first iteration whose best-so-far return is >= it. Envs
    without a threshold get NaN.
    """
    rows = []
    for (env, variant), group in tidy.groupby(["env", "variant"], sort=True):
        threshold = thresholds.get(env)
        first = []
        for _, run in group.groupby("seed"):
            if threshold is None:
                continue
            hit = run.loc[run["best_so_far"] >= threshold, "iteration"]
            first.append(int(hit.min()) if len(hit) else np.nan)
        first_arr = np.asarray(first, dtype=float)
        reached = first_arr[np.isfinite(first_arr)]
        rows.append(
            {
                "env": env,
                "variant": variant,
                "threshold": np.nan if threshold is None else float(threshold),
                "seeds_reached": int(reached.size),
                "seeds": int(group["seed"].nunique()),
                "trials_mean": float(reached.mean()) if reached.size else np.nan,
                "trials_median": float(np.median(reached)) if reached.size else np.nan,
            }
        )
    return pd.DataFrame(rows)


def compute_cost(benchmark_files: list[Path | str], *, gpu_per_run: float = 0.0) -> pd.DataFrame:
    """Per env x variant compute per run from Snakemake benchmark TSVs.

    A benchmark file is ``.../{env}/{variant}/seed{seed}.tsv`` with columns ``s`` (wall seconds)
    and ``cpu_time`` (CPU seconds). GPU-hours = wall hours x ``gpu_per_run`` (GPUs a job held).
    """
    rows = []
    for path in benchmark_files:
        path = Path(path)
        env, variant, seed = parse_run_dir(path.with_suffix(""))
        bench = pd.read_csv(path, sep="\t")
        wall_s = float(bench["s"].iloc[-1])
        cpu_s = float(pd.to_numeric(bench["cpu_time"], errors="coerce").fillna(0.0).iloc[-1])
        rows.append(
            {"env": env, "variant": variant, "seed": seed, "wall_s": wall_s, "cpu_s": cpu_s}
        )
    columns = ["env", "variant", "runs", "wall_h_per_run", "cpu_h_per_run", "gpu_h_per_run"]
    if not rows:
        return pd.DataFrame(columns=columns)
    per_run = pd.DataFrame(rows)
    cost = per_run.groupby(["env", "variant"], as_index=False).agg(
        runs=("seed", "count"), wall_s=("wall_s", "mean"), cpu_s=("cpu_s", "mean")
    )
    cost["wall_h_per_run"] = cost["wall_s"] / 3600
    cost["cpu_h_per_run"] = cost["cpu_s"] / 3600
    cost["gpu_h_per_run"] = cost["wall_h_per_run"] * gpu_per_run
    return cost[columns]


def summary_table(
    tidy: pd.DataFrame,
    thresholds: Mapping[str, float],
    benchmark_files: list[Path | str],
    *,
    gpu_per_run: float = 0.0,
) -> pd.DataFrame:
    """The paper table: final best-so-far stats, trials to threshold and compute cost per run."""
    table = summarize_final(tidy).merge(
        trials_to_threshold(tidy, thresholds), on=["env", "variant"], suffixes=("", "_thr")
    )
    table = table.drop(columns=["seeds_thr"]).merge(
        compute_cost(benchmark_files, gpu_per_run=gpu_per_run).drop(columns=["runs"]),
        on=["env", "variant"],
        how="left",
    )
    return table
