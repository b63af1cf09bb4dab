"""Run directories -> one tidy table, one row per (env, variant, seed, iteration).

A run directory is ``<root>/{env}/{variant}/seed{seed}/`` (``RUN_PATH``, :mod:`.results.rundir`)
and holds the original's ``logs.mat`` (§logs-mat): ``observations [n, T+1, O]``,
``actions [n, T, A]``, ``rewards [n, T]`` and
``returns [1, iters * neval]`` (iteration-major, the initial random episodes not included).
``logs.mat`` is the source of truth; the run's ``config.yaml`` (when present) supplies ``neval``,
the episodes per iteration and the planned number of iterations; ``done.json`` marks a finished run.
Best-so-far and env steps follow the one definition in :mod:`pets_core.results.metrics`.

Partial runs (killed or still running: no done.json although the runner wrote a config.yaml, fewer
iterations than planned, or, for someone else's logs.mat without a config.yaml, fewer than the
longest sibling of the same env and variant) are left out by default, each named on stderr
(:func:`pets_core.notices.notice`, not a Python warning that PYTHONWARNINGS=ignore would hide);
``include_partial=True`` keeps them, marked ``partial``.

Settings: every row carries its run's settings fingerprint (``settings``,
:mod:`pets_core.config.fingerprint`, computed from config.yaml; empty without one). Runs of one env
and variant but different settings are never averaged: :func:`collect_runs` refuses them in one
error that names each group, its seeds and the settings that tell the groups apart. Runs of one
setting but different lengths aggregate (a 17-trial and a 25-trial seed give 2 seeds to trial 17,
1 after); a row's final best-so-far is taken at the last trial its complete runs share.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import yaml

from pets_core import config as config_mod
from pets_core.notices import notice
from pets_core.results import metrics
from pets_core.results.rundir import CONFIG_YAML, DONE_JSON, LOGS_MAT, RUN_PATH, RUN_PATH_RE
from pets_core.results.rundir import find_run_dirs as _find

COLUMNS = [
    "env",
    "variant",
    "seed",
    "iteration",
    "env_steps",
    "mpc_env_steps",
    "return",
    "best_so_far",
    "partial",
    "settings",
]
"""env_steps: every env step so far; mpc_env_steps: without the initial random episodes (the x of
the original's curves); return: mean over the iteration's neval evaluated episodes; settings: the
run's settings fingerprint ("" for a logs.mat without config.yaml)."""


class RunDataError(ValueError):
    """One or more run directories are missing or unreadable; the message names every path."""


def find_run_dirs(runs_root: Path | str) -> list[Path]:
    """Every ``RUN_PATH`` directory under ``runs_root`` that holds a logs.mat (complete or
    partial: :func:`collect_runs` marks partial ones)."""
    root = Path(runs_root)
    return [
        path
        for path in _find([root], complete_only=False)
        if len(parts := path.relative_to(root).parts) == 3 and parts[2].startswith("seed")
    ]


def parse_run_dir(run_dir: Path | str) -> tuple[str, str, int]:
    """``.../runs/cartpole/PE-TSinf-CEM/seed3`` -> ("cartpole", "PE-TSinf-CEM", 3)."""
    match = RUN_PATH_RE.search(Path(run_dir).as_posix())
    if match is None:
        raise RunDataError(f"{run_dir}: not a run directory of the form {RUN_PATH}")
    return match["env"], match["variant"], int(match["seed"])


def load_run(run_dir: Path | str) -> pd.DataFrame:
    """One run directory -> its rows of the tidy table (one row per iteration).

    ``partial`` is set from the run's own files (done.json, planned iterations); siblings are
    compared in :func:`collect_runs`.
    """
    run_dir = Path(run_dir)
    env, variant, seed = parse_run_dir(run_dir)
    logs_path = run_dir / LOGS_MAT
    if not logs_path.is_file():
        raise RunDataError(f"{logs_path}: missing (the run has no logs.mat)")
    try:
        logs = scipy.io.loadmat(logs_path)
    except Exception as err:  # scipy raises several types for damaged files
        raise RunDataError(f"{logs_path}: unreadable .mat file ({err})") from err
    for key in ("returns", "rewards"):
        if key not in logs:
            raise RunDataError(f"{logs_path}: no {key!r} array (keys: {sorted(_mat_keys(logs))})")
    cfg = _run_config(run_dir)
    neval = _leaf(cfg, ("exp_cfg", "log_cfg", "neval"), default=1)
    returns = np.asarray(logs["returns"], dtype=float).reshape(-1)  # [iters * neval]
    if returns.size == 0 or returns.size % neval or not np.isfinite(returns).all():
        raise RunDataError(
            f"{logs_path}: 'returns' has {returns.size} entries, expected a non-empty, finite "
            f"multiple of neval={neval}"
        )
    per_iteration = returns.reshape(-1, neval).mean(axis=1)  # [iters]
    iterations = np.arange(1, per_iteration.size + 1)  # [iters]
    steps, mpc_steps = _env_steps(run_dir, cfg, logs, iterations)
    return pd.DataFrame(
        {
            "env": env,
            "variant": variant,
            "seed": seed,
            "iteration": iterations,
            "env_steps": steps,
            "mpc_env_steps": mpc_steps,
            "return": per_iteration,
            "best_so_far": metrics.best_so_far(returns, neval),
            "partial": partial_reason(run_dir, cfg, iterations.size) is not None,
            "settings": _fingerprint(run_dir, cfg),
        },
        columns=COLUMNS,
    )


def partial_reason(run_dir: Path, cfg: dict | None, iterations: int) -> str | None:
    """Why a run is partial judging by its own files, or None.

    A run of this runner (it has a config.yaml) is complete when its done.json exists and its
    logs.mat holds the planned ``ntrain_iters`` iterations. Someone else's logs.mat alone (no
    config.yaml, no done.json) can only be judged against its siblings (:func:`collect_runs`).
    """
    planned = _leaf(cfg, ("exp_cfg", "exp_cfg", "ntrain_iters"), default=None)
    if planned is not None and iterations < planned:
        return f"{iterations} of {planned} planned iterations"
    if cfg is not None and not (run_dir / DONE_JSON).is_file():
        return f"no {DONE_JSON} (killed or still running), {iterations} iterations"
    return None


def collect_runs(run_dirs: Iterable[Path | str], *, include_partial: bool = False) -> pd.DataFrame:
    """Concatenate every run; all bad runs are reported together in one RunDataError.

    Partial runs (see the module docstring) are each one notice on stderr, naming the
    directory and why; they are dropped unless ``include_partial``, then kept with ``partial``.
    """
    frames, problems = {}, []
    for run_dir in run_dirs:
        try:
            frames[Path(run_dir)] = load_run(run_dir)
        except RunDataError as err:
            problems.append(str(err))
    if problems:
        raise RunDataError(
            f"{len(problems)} run(s) missing or corrupt:\n  " + "\n  ".join(problems)
        )
    if not frames:
        raise RunDataError("no run directories given (nothing to aggregate)")
    _refuse_mixed_settings(frames)
    longest: dict[tuple[str, str], int] = {}
    for frame in frames.values():
        key = (frame["env"].iloc[0], frame["variant"].iloc[0])
        longest[key] = max(longest.get(key, 0), len(frame))
    kept = []
    for run_dir, frame in frames.items():
        cfg = _run_config(run_dir)
        reason = partial_reason(run_dir, cfg, len(frame))
        siblings = longest[(frame["env"].iloc[0], frame["variant"].iloc[0])]
        if reason is None and cfg is None and len(frame) < siblings:  # no plan of its own
            reason = f"{len(frame)} iterations, its siblings have {siblings}"
        if reason is not None:
            action = "included, marked partial" if include_partial else "left out"
            notice(f"partial run {run_dir}: {reason}; {action}")
            if not include_partial:
                continue
            frame = frame.assign(partial=True)
        kept.append(frame)
    if not kept:
        raise RunDataError(
            f"all {len(frames)} run(s) are partial (named above); include them explicitly "
            "(include_partial) to aggregate them anyway"
        )
    table = pd.concat(kept, ignore_index=True)
    return table.sort_values(["env", "variant", "seed", "iteration"], ignore_index=True)


def _refuse_mixed_settings(frames: dict[Path, pd.DataFrame]) -> None:
    """RunDataError when one (env, variant) holds runs of different settings, naming each group
    by fingerprint, its seeds and the settings that differ between the groups."""
    groups: dict[tuple[str, str], dict[str, list[Path]]] = {}
    for run_dir, frame in frames.items():
        key = (frame["env"].iloc[0], frame["variant"].iloc[0])
        groups.setdefault(key, {}).setdefault(frame["settings"].iloc[0], []).append(run_dir)
    problems = []
    for (env, variant), by_settings in sorted(groups.items()):
        if len(by_settings) < 2:
            continue
        described = {fp: _settings_of(dirs[0]) for fp, dirs in by_settings.items()}
        keys = sorted({k for d in described.values() for k in d})
        differ = [k for k in keys if len({repr(d.get(k)) for d in described.values()}) > 1]
        lines = [f"{env} {variant}: {len(by_settings)} different settings"]
        for fp, dirs in sorted(by_settings.items()):
            seeds = ", ".join(str(parse_run_dir(d)[2]) for d in sorted(dirs))
            what = ", ".join(f"{k} {described[fp].get(k)!r}" for k in differ) or "no config.yaml"
            lines.append(f"    settings {fp or '(unknown)'} (seeds {seeds}): {what}")
        problems.append("\n".join(lines))
    if problems:
        raise RunDataError(
            "runs of different settings are never averaged into one curve; aggregate each "
            "setting from its own folder:\n  " + "\n  ".join(problems)
        )


def _settings_of(run_dir: Path) -> dict:
    """The settings (dotted path -> value) of a run's config.yaml; {} without one."""
    path = Path(run_dir) / CONFIG_YAML
    return config_mod.settings(config_mod.from_yaml(path)) if path.is_file() else {}


def _fingerprint(run_dir: Path, cfg: dict | None) -> str:
    """The run's settings fingerprint from its config.yaml ("" without one)."""
    if cfg is None:
        return ""
    try:
        return config_mod.fingerprint(config_mod.build(cfg))
    except config_mod.ConfigError as err:
        raise RunDataError(
            f"{run_dir / CONFIG_YAML}: not a config of this runner ({err})"
        ) from None


RUN_COLUMNS = ["env", "variant", "seed", "iterations", "partial", "settings", "device", "wall_s"]
"""runs.csv: one row per run kept in the tidy table; settings: its fingerprint; device and wall_s
from done.json (else empty: unknown; ``device`` is absent from done.json files written before it
was recorded)."""


def run_records(run_dirs: Iterable[Path | str], tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per run of ``tidy``: its iterations, partial mark, device and wall time."""
    kept = tidy.groupby(["env", "variant", "seed"]).agg(
        iterations=("iteration", "max"), partial=("partial", "any"), settings=("settings", "first")
    )
    rows = []
    for run_dir in run_dirs:
        key = parse_run_dir(run_dir)
        if key not in kept.index:
            continue
        done_path = Path(run_dir) / DONE_JSON
        done = json.loads(done_path.read_text()) if done_path.is_file() else {}
        rows.append(
            {
                **dict(zip(("env", "variant", "seed"), key, strict=True)),
                **kept.loc[key].to_dict(),
                "device": done.get("device"),
                "wall_s": done.get("wall_s"),
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS).sort_values(["env", "variant", "seed"])


def final_best_so_far(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per run, the best-so-far return at its last iteration (one row per env, variant, seed);
    complete runs of one env and variant but different lengths (one setting: a 17- and a 25-trial
    seed) at the last iteration they all have, so that a row never mixes trials."""
    if "partial" not in tidy:  # a returns.csv written before partial runs were marked
        tidy = tidy.assign(partial=False)
    if "settings" not in tidy:  # a returns.csv written before settings were recorded
        tidy = tidy.assign(settings="")
    complete = tidy[~tidy["partial"].astype(bool)]
    lengths = complete.groupby(["env", "variant", "seed"])["iteration"].max()
    shared = lengths.groupby(["env", "variant"]).min().rename("shared").reset_index()
    tidy = tidy.merge(shared, on=["env", "variant"], how="left")
    cut = ~tidy["partial"].astype(bool) & (tidy["iteration"] > tidy["shared"])
    tidy = tidy[~cut].drop(columns="shared")
    last = tidy.sort_values("iteration").groupby(["env", "variant", "seed"], as_index=False).last()
    return last.rename(columns={"best_so_far": "final_best_so_far", "iteration": "iterations"})[
        [
            "env",
            "variant",
            "seed",
            "iterations",
            "env_steps",
            "final_best_so_far",
            "partial",
            "settings",
        ]
    ]


def _env_steps(
    run_dir: Path, cfg: dict | None, logs: dict, iterations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, MPC env steps) by the end of each iteration (:func:`metrics.env_steps`).

    task_hor comes from logs.mat; the loop settings from config.yaml, else the original's defaults,
    with the number of initial random episodes read off logs.mat when config.yaml is absent.
    """
    rewards = np.asarray(logs["rewards"])  # [n, T] (or [n, T, 1], as the original's README says)
    n_episodes, task_hor = rewards.shape[0], rewards.shape[1]
    per_iter = _leaf(cfg, ("exp_cfg", "exp_cfg", "nrollouts_per_iter"), default=1)
    inferred = n_episodes - per_iter * iterations.size
    n_init = _leaf(cfg, ("exp_cfg", "exp_cfg", "ninit_rollouts"), default=inferred)
    if n_init < 0 or n_init + per_iter * iterations.size != n_episodes:
        raise RunDataError(
            f"{run_dir / 'logs.mat'}: {n_episodes} logged episodes, expected {max(n_init, 0)} "
            f"initial + {per_iter} x {iterations.size} iterations"
        )
    episodes = metrics.episodes_per_iteration(
        nrecord=_leaf(cfg, ("exp_cfg", "log_cfg", "nrecord"), default=0),
        neval=_leaf(cfg, ("exp_cfg", "log_cfg", "neval"), default=1),
        nrollouts_per_iter=per_iter,
    )
    steps = metrics.env_steps(
        iterations, task_hor=task_hor, ninit_rollouts=n_init, episodes_per_iter=episodes
    )
    mpc_steps = metrics.env_steps(
        iterations, task_hor=task_hor, ninit_rollouts=0, episodes_per_iter=episodes
    )
    return steps, mpc_steps


def _run_config(run_dir: Path) -> dict | None:
    """The run's resolved config.yaml as a dict, or None when it has none."""
    path = run_dir / CONFIG_YAML
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RunDataError(f"{path}: unreadable YAML ({err})") from err


def _leaf(cfg: dict | None, keys: tuple[str, ...], default: int | None) -> int | None:
    """A leaf of a resolved config, or ``default`` when the config or the leaf is absent."""
    node = cfg
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return int(node) if node is not None else default


def _mat_keys(logs: dict) -> list[str]:
    return [key for key in logs if not key.startswith("__")]
