"""Published reference curves (config/reference_curves.yaml) and our values at their x points.

The curves are the original TF code's and the PyTorch port's best-so-far, one value per trial,
digitized from the port's PNGs (:mod:`pets_core.analysis.digitize`; fidelity#published-curves).
Their x counts the env steps of the MPC trials only: the first point is at one task horizon and 100
trials end at 15,000 steps (reacher, pusher), so the initial random episode is not counted
(:data:`pets_core.results.metrics` ``mpc_env_steps``). A point's trial is the nearest whole trial,
``round(env_steps / task_hor)`` with the paper's task horizon of the env; the file's ``tabulate``
names the trials the fidelity table compares at (every point is drawn).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from pets_core.analysis.stats import CI_METHOD, bootstrap_ci
from pets_core.analysis.tables import duration, html_page, html_table, with_ci
from pets_core.config import load_config

REFERENCE_VARIANT = "PE-TSinf-CEM"
"""The original code's default -ca choice, which the published curves ran."""
X_CONVENTION = (
    "x counts MPC trials only: the initial random rollout is not counted, as in the original's "
    "curves (their first point is at one task horizon; 100 trials end at 15,000 steps, not 15,150)"
)


def load_reference(path: Path | str) -> dict[str, list[dict]]:
    """env -> points {label, env_steps, return, trials, table} (see the module docstring)."""
    raw = yaml.safe_load(Path(path).read_text())
    out = {}
    for env, curves in raw["curves"].items():
        task_hor = paper_task_hor(env)
        tabulate = set(raw.get("tabulate", {}).get(env, []))
        out[env] = [
            {"label": c["label"], "env_steps": x, "return": y, "trials": round(x / task_hor)}
            for c in (curves or [])
            for x, y in zip(c["env_steps"], c["return"], strict=True)
        ]
        for point in out[env]:
            point["table"] = point["trials"] in tabulate
    return out


def paper_task_hor(env: str) -> int:
    return load_config(env).exp_cfg.sim_cfg.task_hor


def comparison(
    tidy: pd.DataFrame, reference: Mapping[str, Sequence[Mapping]], envs: Sequence[str]
) -> pd.DataFrame:
    """Per env x reference trial: our best-so-far there (mean, CI, seeds) and each reference's."""
    ours = tidy[tidy["variant"] == REFERENCE_VARIANT]
    rows = []
    for env in envs:
        points = reference.get(env, [])
        env_runs = ours[ours["env"] == env]
        at_trials = {p["trials"] for p in points if p.get("table", True)}
        if not at_trials and len(env_runs):  # no published curve: report where our runs end
            at_trials = {int(env_runs["iteration"].max())}
        for trials in sorted(at_trials):
            at = env_runs[env_runs["iteration"] == trials]
            values = at["best_so_far"].to_numpy(dtype=float)
            low, high = bootstrap_ci(values)
            row = {
                "env": env,
                "trials": trials,
                "mpc_env_steps": trials * paper_task_hor(env),
                "seeds": len(values),
                "trials_run": int(env_runs["iteration"].max()) if len(env_runs) else 0,
                "mean": float(values.mean()) if len(values) else math.nan,
                "ci_low": low,
                "ci_high": high,
            }
            read_at = set()
            for point in points:
                if point["trials"] == trials:
                    row[point["label"]] = float(point["return"])
                    read_at.add(int(point["env_steps"]))
            row["read_at"] = sorted(read_at - {row["mpc_env_steps"]})
            rows.append(row)
    return pd.DataFrame(rows)


def blocks(
    table: pd.DataFrame,
    reference: Mapping[str, Sequence[Mapping]],
    runs: pd.DataFrame,
    settings: Mapping[str, str],
) -> tuple[str, list[tuple[str, str, list[str], list[list[str]]]]]:
    """(intro, [(env, line naming seeds / settings / device / cost, header, rows)]) per env."""
    labels = list(dict.fromkeys(p["label"] for points in reference.values() for p in points))
    intro = (
        f"Best-so-far return of {REFERENCE_VARIANT}: ours as mean [95% CI] over seeds (n seeds) "
        f"beside the published curves at the trial counts of reference_curves.yaml's tabulate. "
        f"{X_CONVENTION}. CI: "
        f"{CI_METHOD}. Reference values: one curve each (a single run), digitized trial by trial "
        "from the published PNGs (pets_core.analysis.digitize; each fit's residual, under a pixel, "
        "is in reference_curves.yaml)."
    )
    header = ["Trials (env steps)", "Ours", *labels]
    out = []
    for env, group in table.groupby("env", sort=False):
        env_runs = runs[(runs["env"] == env) & (runs["variant"] == REFERENCE_VARIANT)]
        rows = []
        for row in group.to_dict("records"):
            if not len(env_runs):
                ours = "not run yet"
            elif row["seeds"] == 0:
                ours = f"not run (runs have {row['trials_run']} trials)"
            else:
                ours = f"{with_ci(row['mean'], row['ci_low'], row['ci_high'])} (n={row['seeds']})"
            read = "".join(f"; read at {s:,}" for s in row["read_at"])
            x = f"{row['trials']} ({row['mpc_env_steps']:,}{read})"
            rows.append([x, ours, *(_fmt_ref(row.get(label)) for label in labels)])
        out.append((env, _run_line(env_runs, settings.get(env, "")), header, rows))
    return intro, out


def to_markdown(intro: str, per_env: list[tuple[str, str, list[str], list[list[str]]]]) -> str:
    """One small table per env, each under a line naming seeds, settings, device and cost."""
    out = [intro, ""]
    for env, line, header, rows in per_env:
        out += [f"**{env}**: {line}", "", "| " + " | ".join(header) + " |"]
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(cells) + " |" for cells in rows]
        out.append("")
    return "\n".join(out)


def to_html(intro: str, per_env: list[tuple[str, str, list[str], list[list[str]]]]) -> str:
    body = [f"<p>{html.escape(intro)}</p>"]
    for env, line, header, rows in per_env:
        body += [f"<h4>{html.escape(env)}</h4>", f"<p>{html.escape(line)}</p>"]
        body.append(html_table(header, rows))
    return html_page(body)


def _fmt_ref(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1f}"


def _run_line(runs: pd.DataFrame, settings: str) -> str:
    if not len(runs):
        return "no runs"
    seeds = ", ".join(str(s) for s in sorted(runs["seed"]))
    devices = sorted({d if isinstance(d, str) and d else "unknown" for d in runs["device"]})
    wall = pd.to_numeric(runs["wall_s"], errors="coerce")
    cost = duration(wall.mean() / 3600) if wall.notna().any() else "unknown"
    partial = int(runs["partial"].astype(bool).sum())
    marks = f" ({partial} partial)" if partial else ""
    return (
        f"{len(runs)} seed{'s' if len(runs) != 1 else ''}{marks} ({seeds}), "
        f"{int(runs['iterations'].max())} trials, {settings}; "
        f"device {', '.join(devices)}, wall time {cost} per run"
    )
