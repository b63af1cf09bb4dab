"""A run's settings and their fingerprint: what makes two runs' per-trial results comparable.

Two runs whose :func:`settings` are equal compute the same thing, trial for trial, up to their
seed and length: a 25-trial run's first 17 trials are a 17-trial run's with the same seed (the
loop reads ``ntrain_iters`` only to stop, to skip training after its last iteration, to count
``record_iters`` from the end and to show progress; ``tests/run/test_settings_identity.py``
checks it). So the seeds of one setting aggregate into one curve whatever their trial counts, and
runs of different settings never do.

The settings are the resolved config's leaves (dotted ``-o`` paths) minus :data:`NOT_SETTINGS`,
the leaves that never change a trial's numbers. Device and threads are not config leaves (they are
runner arguments), so they are never part of it either. Left in on purpose, because they do
change the numbers: ``exp_cfg.log_cfg.neval`` (which episodes' returns are the result),
``ctrl_cfg.log_cfg.log_traj_preds`` / ``log_particles`` (their extra prediction rollout draws from
the planner's random stream), ``exp_cfg.log_cfg.nrecord`` where it exceeds
``max(neval, nrollouts_per_iter)`` (it then adds episodes to every iteration) and
``ctrl_cfg.prop_cfg.model_init_cfg.model_dir`` (which model a pretrained run loads).

:func:`fingerprint` is the first 12 hex digits of the SHA-256 of the settings that differ from
their field's default (sorted JSON), so a leaf added later with a default keeps every earlier
fingerprint. It is computed from a run's config.yaml (``from_yaml`` fills the defaults), so runs
made before fingerprints were stored have one too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from pets_core.config.diff import first_key_difference
from pets_core.config.tree import PetsConfig

NOT_SETTINGS = {
    "seed": "the run's seed (each seed is one sample of a setting)",
    "exp_cfg.exp_cfg.ntrain_iters": "the run's length: its first k trials do not depend on it",
    "exp_cfg.log_cfg.record_iters": "which iterations are filmed; filming draws no random numbers",
    "ctrl_cfg.log_cfg.save_all_models": "where model files are written",
    "ctrl_cfg.graph": "CUDA graph replay of the same computation (an execution mode, as device)",
}
"""Config leaves that are not settings, and why (module docstring)."""

NRECORD = "exp_cfg.log_cfg.nrecord"
FINGERPRINT_CHARS = 12


def settings(cfg: PetsConfig) -> dict[str, Any]:
    """Dotted path -> value of every setting of ``cfg`` (lists for tuples), in tree order."""
    out = {
        path: value for path, value in _leaves(cfg) if path not in NOT_SETTINGS and path != NRECORD
    }
    loop, elog = cfg.exp_cfg.exp_cfg, cfg.exp_cfg.log_cfg
    if elog.nrecord > max(elog.neval, loop.nrollouts_per_iter):  # filming adds episodes
        out[NRECORD] = elog.nrecord
    return out


def fingerprint(cfg: PetsConfig) -> str:
    """12 hex digits naming ``cfg``'s settings (module docstring); equal settings, equal name."""
    defaults = dict(_leaves(cfg, defaults=True))
    differing = {k: v for k, v in settings(cfg).items() if k not in defaults or defaults[k] != v}
    text = json.dumps(differing, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]


def settings_difference(a: PetsConfig, b: PetsConfig) -> str | None:
    """The first setting (sorted by path) where a and b differ, "path: a != b"; None if equal."""
    return first_key_difference(settings(a), settings(b))


def _leaves(node: Any, prefix: str = "", *, defaults: bool = False):
    """(dotted path, value) of every leaf; ``defaults=True``: the field's default instead, for
    the leaves that have one."""
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        path = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, path + ".", defaults=defaults)
        elif not defaults:
            yield path, list(value) if isinstance(value, tuple) else value
        elif field.default is not dataclasses.MISSING:
            default = field.default
            yield path, list(default) if isinstance(default, tuple) else default
        elif field.default_factory is not dataclasses.MISSING:
            yield path, list(field.default_factory())
