"""What a run is called and what it logs in MLflow: names, metric keys, provenance, description.

* Experiment ``pets-<env>`` (:func:`experiment_name`, the one spelling: the runner, ingest and the
  workflow's init_mlflow use it), run name ``<variant> seed<N> <settings fingerprint>``
  (:func:`run_name`); tags ``settings_fingerprint`` and run.json's ``tags`` (the workflow's
  ``experiment``: the config's name).
* Metrics: keys whose meaning never depends on the variant (:func:`mlflow_metrics`).
* Provenance tags (``mlflow.source.*``, command, git commit) from run.json, and the description
  (``mlflow.note.content``) listing the settings that differ from the paper's for that variant.
"""

from __future__ import annotations

import math
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pets_core import config as config_mod

METRIC_KEYS = (
    "return",
    "best_so_far",
    "env_steps",
    "train/nll",
    "train/mse",
    "holdout/mse",
    "plan/s_per_action",
    "time/iteration_s",
    "time/wall_s",
)
"""Every key :func:`mlflow_metrics` may log; each means the same for every variant."""
# Fail fast against a dead server instead of mlflow's default minutes of retries.

def experiment_name(env: str) -> str:
    return f"pets-{env}"


def run_name(variant: str, seed: int, settings: str) -> str:
    """``PE-TSinf-CEM seed3 a992d7366326``: variant and seed first, so that MLflow's runs table
    never cuts them off, then the settings fingerprint (:mod:`pets_core.config.fingerprint`), so
    that runs of one variant and seed in different settings (a quick and a paper run) never share
    a name."""
    return f"{variant} seed{seed} {settings}"


# ----------------------------------------------------------------------------- metrics
def mlflow_metrics(
    rows: Sequence[Mapping[str, float]], variant: str
) -> list[tuple[str, float, int]]:
    """(key, value, step = iteration) for metrics.csv-style rows, keys of one meaning each.

    * ``train/nll``: the Gaussian NLL objective, P / PE only (``train_loss`` of those rows);
    * ``train/mse``: mean((mu - y)^2) for every variant: the row's ``train_mse`` when the runner
      recorded it, else (D / DE, whose ``train_loss`` is mean((mu - y)^2) / 2) 2 x ``train_loss``;
    * ``holdout/mse`` only where there was a holdout (NaN values are never logged);
    * ``time/iteration_s`` = the row's ``wall_s``; ``time/wall_s`` its cumulative sum (x-axis);
      ``env_steps`` (cumulative, x-axis), ``return``, ``best_so_far``, ``plan/s_per_action``.
    """
    probabilistic = variant.split("-")[0] in ("P", "PE")
    out: list[tuple[str, float, int]] = []
    cumulative = 0.0
    for row in rows:
        step = int(row["iteration"])

        def get(key: str, row: Mapping[str, float] = row) -> float:
            value = row.get(key)
            return math.nan if value is None else float(value)

        cumulative += 0.0 if math.isnan(get("wall_s")) else get("wall_s")
        loss = get("train_loss")
        mse = get("train_mse")
        if math.isnan(mse) and not probabilistic:
            mse = 2.0 * loss
        values = {
            "return": get("return"),
            "best_so_far": get("best_so_far"),
            "env_steps": get("env_steps"),
            "train/nll": loss if probabilistic else math.nan,
            "train/mse": mse,
            "holdout/mse": get("holdout_mse"),
            "plan/s_per_action": get("plan_s_per_action"),
            "time/iteration_s": get("wall_s"),
            "time/wall_s": cumulative,
        }
        out += [(k, v, step) for k, v in values.items() if not math.isnan(v)]
    return out



# ----------------------------------------------------------------------------- provenance
def git_commit(path: Path | None = None) -> str | None:
    """HEAD of the git checkout holding ``path`` (default: this package), ``+dirty`` if modified."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def command_line(module: str, argv: Sequence[str]) -> str:
    """The exact command as typed, re-quoted: ``python -m pets_core.mbexp -env cartpole ...``."""
    return shlex.join(["python", "-m", module, *argv])


def provenance_tags(run_info: Mapping[str, Any]) -> dict[str, str]:
    """``mlflow.source.*`` + command from a run.json (what made the run, not what ingested it)."""
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "pets_core.mbexp"}
    if run_info.get("git_commit"):
        commit = str(run_info["git_commit"])
        tags["mlflow.source.git.commit"] = commit.removesuffix("+dirty")
        tags["git_dirty"] = str(commit.endswith("+dirty")).lower()
    if run_info.get("command"):
        tags["command"] = str(run_info["command"])
    return tags


def describe_differences(cfg, run_dir: Path | None = None) -> str:
    """Markdown run description: the settings that differ from the paper's for this variant."""
    variant = cfg.parsed_variant
    ca = [("model-type", variant.model), ("prop-type", variant.prop), ("opt-type", variant.opt)]
    paper = config_mod.flatten(config_mod.load_config(cfg.env, ca, seed=cfg.seed))
    ours = config_mod.flatten(cfg)
    lines = [
        f"**{cfg.env} {cfg.variant}, seed {cfg.seed}**" + (f" — `{run_dir}`" if run_dir else "")
    ]
    diffs = [k for k in ours if param_str(ours[k]) != param_str(paper.get(k))]
    if diffs:
        lines.append("")
        lines.append(f"Settings that differ from the paper's ({len(diffs)}):")
        lines.append("")
        lines += [
            f"- `{k}` = {param_str(ours[k])} (paper: {param_str(paper.get(k))})" for k in diffs
        ]
    else:
        lines.append("")
        lines.append("Paper settings (no overrides).")
    return "\n".join(lines)


def param_str(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
