"""Summary statistics over seeds: mean, IQM, bootstrap CIs, trials to threshold, compute cost.

Conventions follow rliable (Agarwal et al., NeurIPS 2021): the interquartile mean (IQM) is the 25%
trimmed mean, and confidence intervals come from a percentile bootstrap that resamples runs within
each stratum (here: within one env, so one env x variant cell is a single stratum; pass several
strata to :func:`bootstrap_ci` to aggregate over envs). scipy.stats.bootstrap does the resampling,
with a fixed seed so tables and figures are byte-stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from pets_core.analysis.aggregate import final_best_so_far
from pets_core.results.rundir import job_seeds

BOOTSTRAP_SEED = 0
N_RESAMPLES = 2000
CONFIDENCE = 0.95
MIN_SEEDS_FOR_BAND = 5
"""Below this many seeds the figures draw every seed instead of a confidence band."""
CI_METHOD = (
    f"{CONFIDENCE:.0%} percentile bootstrap confidence interval of the mean over seeds "
    f"(scipy.stats.bootstrap, {N_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}). With few seeds it "
    "under-covers: with 3 seeds it is close to the range of the seeds, so read it as a spread, "
    "not as a 95% guarantee"
)
"""The CI method in words, for captions and the report (one place, so text and code agree)."""


PI_METHOD = (
    f"{CONFIDENCE:.0%} Student-t prediction interval for one new seed: "
    f"mean ± t(n−1, {1 - (1 - CONFIDENCE) / 2:g}) · s · √(1 + 1/n), s the seeds' sample standard "
    "deviation (it assumes normally spread seeds and needs n ≥ 2)"
)
"""The prediction interval in words: where one more seed of ours would land, the question to ask
of a single reference run (is it one of ours?)."""


def prediction_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t prediction interval for one new draw: mean ± t_{n-1} · s · sqrt(1 + 1/n).

    ``s`` is the sample standard deviation (ddof 1). Fewer than two values give (nan, nan).
    """
    values = np.asarray(values, dtype=float).reshape(-1)  # [n]
    n = values.size
    if n < 2:
        return (float("nan"), float("nan"))
    half = scipy.stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) * np.sqrt(1 + 1 / n)
    return (float(values.mean() - half), float(values.mean() + half))


def spread(values: np.ndarray) -> tuple[str, float, float]:
    """(name, low, high) of the seeds' spread: below :data:`MIN_SEEDS_FOR_BAND` seeds their range
    ("range of 3 seeds"), from there the bootstrap CI of the mean (:data:`CI_METHOD`)."""
    values = np.asarray(values, dtype=float).reshape(-1)  # [n]
    if values.size < MIN_SEEDS_FOR_BAND:
        name = f"range of {values.size} seed{'s' if values.size != 1 else ''}"
        if not values.size:
            return (name, float("nan"), float("nan"))
        return (name, float(values.min()), float(values.max()))
    return (f"{CONFIDENCE:.0%} CI of the mean", *bootstrap_ci(values))


def iqm_trims(n: int) -> bool:
    """Whether the IQM of ``n`` values differs from their mean by construction (n >= 4)."""
    return int(0.25 * n) > 0


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
        trimmed = iqm_trims(len(values))
        iqm_low, iqm_high = bootstrap_ci(values, statistic=iqm) if trimmed else (np.nan, np.nan)
        rows.append(
            {
                "env": env,
                "variant": variant,
                "seeds": len(values),
                "partial_seeds": int(group["partial"].astype(bool).sum()),
                "iterations": int(group["iterations"].min()),
                "settings": ", ".join(sorted(set(group["settings"].fillna("").astype(str)))),
                "mean": float(values.mean()),
                "ci_low": low,
                "ci_high": high,
                "iqm": float(iqm(values)) if trimmed else np.nan,  # = the mean: not shown
                "iqm_ci_low": iqm_low,
                "iqm_ci_high": iqm_high,
            }
        )
    return pd.DataFrame(rows)


def curve_summary(tidy: pd.DataFrame, x: str = "iteration") -> pd.DataFrame:
    """Per env x variant x ``x`` value: seeds, mean best-so-far and its CI over seeds."""
    rows = []
    for (env, variant, at), group in tidy.groupby(["env", "variant", x], sort=True):
        values = group["best_so_far"].to_numpy(dtype=float)
        low, high = bootstrap_ci(values)
        rows.append(
            {
                "env": env,
                "variant": variant,
                x: at,
                "seeds": len(values),
                "mean": float(values.mean()),
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows, columns=["env", "variant", x, "seeds", "mean", "ci_low", "ci_high"])


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


def _device_names(devices: Iterable) -> str:
    """A group's devices, each once; a run without done.json (NaN) or device is unknown."""
    return ", ".join(sorted({d if isinstance(d, str) and d else "unknown" for d in devices}))


def compute_cost(
    benchmark_files: list[Path | str],
    runs: pd.DataFrame | None = None,
    *,
    gpu_per_run: float = 1.0,
) -> pd.DataFrame:
    """Per env x variant compute per run: wall, CPU and GPU hours, and the device(s).

    Wall seconds: done.json's ``wall_s`` (``runs``, :func:`aggregate.run_records`), else the
    Snakemake benchmark's ``s``. CPU seconds: the benchmark's ``cpu_time``. A benchmark file is a
    training job's, ``.../{env}/{variant}/{job_label}.tsv``: one run's (seed3), or a group's run
    in lockstep (seeds1-2-3), whose seconds its runs share equally. With ``runs`` (the kept runs),
    only those count. GPU hours = wall hours x ``gpu_per_run`` for runs whose
    done.json names a CUDA device, 0 for ``cpu`` runs, unknown (NaN) when the device is not
    recorded; NaN as well when no run used a GPU, so CPU-only tables show no GPU hours.
    """
    per_run: dict[tuple[str, str, int], dict] = {}
    for path in benchmark_files:
        path = Path(path)
        seeds = job_seeds(path.stem)
        bench = pd.read_csv(path, sep="\t")
        cpu = pd.to_numeric(bench["cpu_time"], errors="coerce").fillna(0.0).iloc[-1] / len(seeds)
        wall = float(bench["s"].iloc[-1]) / len(seeds)
        for seed in seeds:
            key = (path.parent.parent.name, path.parent.name, seed)
            per_run[key] = {"wall_s": wall, "cpu_s": float(cpu), "device": None}
    if runs is not None:
        kept = {(r.env, r.variant, int(r.seed)) for r in runs.itertuples(index=False)}
        per_run = {key: value for key, value in per_run.items() if key in kept}
    for row in (runs if runs is not None else pd.DataFrame()).itertuples(index=False):
        entry = per_run.setdefault((row.env, row.variant, int(row.seed)), {"cpu_s": np.nan})
        if pd.notna(row.wall_s):
            entry["wall_s"] = float(row.wall_s)
        entry["device"] = row.device if isinstance(row.device, str) else None
    columns = ["env", "variant", "runs", "device", "wall_h_per_run", "cpu_h_per_run"]
    columns.append("gpu_h_per_run")
    if not per_run:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(
        [{"env": k[0], "variant": k[1], "seed": k[2], **v} for k, v in per_run.items()]
    )
    table["wall_s"] = pd.to_numeric(table.get("wall_s"), errors="coerce")
    device = table["device"]
    gpu = device.fillna("").str.startswith("cuda")
    cpu_only = np.where(device.isna(), np.nan, 0.0)
    table["gpu_s"] = np.where(gpu, table["wall_s"] * gpu_per_run, cpu_only)
    cost = table.groupby(["env", "variant"], as_index=False).agg(
        runs=("seed", "count"),
        device=("device", _device_names),
        wall_s=("wall_s", "mean"),
        cpu_s=("cpu_s", "mean"),
        gpu_s=("gpu_s", "mean"),
        any_gpu=("gpu_s", lambda g: bool((g > 0).any())),
    )
    cost["wall_h_per_run"] = cost["wall_s"] / 3600
    cost["cpu_h_per_run"] = cost["cpu_s"] / 3600
    cost["gpu_h_per_run"] = np.where(cost["any_gpu"], cost["gpu_s"] / 3600, np.nan)
    return cost[columns]


def summary_table(
    tidy: pd.DataFrame,
    thresholds: Mapping[str, float],
    benchmark_files: list[Path | str],
    runs: pd.DataFrame | None = None,
    *,
    gpu_per_run: float = 1.0,
) -> pd.DataFrame:
    """The paper table: final best-so-far stats, trials to threshold and compute cost per run."""
    table = summarize_final(tidy).merge(
        trials_to_threshold(tidy, thresholds), on=["env", "variant"], suffixes=("", "_thr")
    )
    table = table.drop(columns=["seeds_thr"]).merge(
        compute_cost(benchmark_files, runs, gpu_per_run=gpu_per_run).drop(columns=["runs"]),
        on=["env", "variant"],
        how="left",
    )
    return table
