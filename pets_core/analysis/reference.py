"""Published reference curves (config/reference_curves.yaml): one value per trial and curve.

The curves are the original TF code's and the PyTorch port's best-so-far, one value per trial,
digitized from the port's PNGs (:mod:`pets_core.analysis.digitize`; fidelity#published-curves).
Their x counts the env steps of the MPC trials only: the first point is at one task horizon and 100
trials end at 15,000 steps (reacher, pusher), so the initial random episode is not counted
(:data:`pets_core.results.metrics` ``mpc_env_steps``). A point's trial is the nearest whole trial,
``round(env_steps / task_hor)`` with the paper's task horizon of the env. The trials the fidelity
table compares at are pre-registered (:mod:`pets_core.analysis.preregistration`), not chosen here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pets_core.analysis.digitize import SOURCE as DIGITIZED_FROM
from pets_core.config import load_config

REFERENCE_VARIANT = "PE-TSinf-CEM"
"""The original code's default -ca choice, which the published curves ran."""
ORIGINAL = "original TF code"
"""The label of the original code's curve (the others: reimplementations)."""
SOURCE = (
    f"the {ORIGINAL}'s and the PyTorch port's published best-so-far curves, a single run each, "
    f"digitized trial by trial from {DIGITIZED_FROM.replace('{env}', '{cartpole,reacher,pusher}')} "
    "(config/reference_curves.yaml)"
)
"""Where the reference curves come from, for captions."""
X_CONVENTION = (
    "x counts MPC trials only: the initial random rollout is not counted, as in the original's "
    "curves (their first point is at one task horizon; 100 trials end at 15,000 steps, not 15,150)"
)


def load_reference(path: Path | str) -> dict[str, list[dict]]:
    """env -> points {label, env_steps, return, trials} (see the module docstring)."""
    raw = yaml.safe_load(Path(path).read_text())
    out = {}
    for env, curves in raw["curves"].items():
        task_hor = paper_task_hor(env)
        out[env] = [
            {"label": c["label"], "env_steps": x, "return": y, "trials": round(x / task_hor)}
            for c in (curves or [])
            for x, y in zip(c["env_steps"], c["return"], strict=True)
        ]
    return out


def paper_task_hor(env: str) -> int:
    return load_config(env).exp_cfg.sim_cfg.task_hor
