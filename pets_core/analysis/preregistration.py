"""The fidelity runs fixed before they started, and the settings each committed one must have.

A fidelity config (config/fidelity.yaml) names its runs twice: ``experiments`` (the runs the
workflow trains: every env, their seeds) and ``preregistered`` (groups of envs x seeds with -o
overrides on top of the config's ``overrides``, and ``report_trials``, the trials every fidelity
table reports per env). :func:`read` is the one reader of that block; everything else (the fidelity
table, its figure, the workflow's refusal of a run) goes through the :class:`Preregistration` it
returns.

A run's settings are resolved as the runner resolves them (:func:`pets_core.config.load_config`:
the paper's layers, the variant, ``overrides.all`` + ``overrides.<env>``, then the group's
overrides). A committed run is accepted only at exactly those settings, the seed included; the one
exception is a partial run (no done.json), whose ``ntrain_iters`` may be shorter than its group's
(an in-progress run stopped at a session's end). Anything else is refused with one line naming the
run and the first differing key (:class:`RefusedRun`).

Where runs live: a group that changes only the number of trials keeps the paper's settings and is
committed with the other fidelity runs (the ``existing_runs`` directory,
results/reference/fidelity); a group that changes anything else would share (env, variant, seed)
with a paper-setting run, so it lives in its own directory beside them, named after the group
(results/reference/reduced).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pets_core.analysis.reference import REFERENCE_VARIANT
from pets_core.config import ConfigError, PetsConfig, build, first_difference, load_config
from pets_core.config.variants import parse_variant
from pets_core.results.rundir import CONFIG_YAML, DONE_JSON
from pets_core.run.matrix import ca_pairs, override_pairs, yaml_value

TRIALS_KEY = "exp_cfg.exp_cfg.ntrain_iters"
"""The -o path of a run's number of MPC trials (the only setting a partial run may have lower)."""


class PreregistrationError(ValueError):
    """The ``preregistered`` block is malformed; the message names the key."""


class RefusedRun(ValueError):
    """A committed run that is not a pre-registered run at its settings; one line per run."""


@dataclasses.dataclass(frozen=True)
class Group:
    """Runs fixed together: ``envs`` x ``seeds`` with ``overrides`` on the config's overrides.

    ``source`` names the group in messages: ``experiments.fidelity`` (the workflow's runs) or
    ``preregistered.jump``.
    """

    name: str
    source: str
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: Mapping[str, Any]

    @property
    def own_directory(self) -> bool:
        """Whether the group changes more than the trial count (its runs then live apart)."""
        return any(path != TRIALS_KEY for path in self.overrides)


@dataclasses.dataclass(frozen=True)
class Preregistration:
    """A fidelity config's groups and report trials (see the module docstring)."""

    config: Mapping[str, Any]
    groups: tuple[Group, ...]
    """Pre-registered groups first, then the ``experiments`` groups (the first match wins)."""
    report_trials: Mapping[str, tuple[int, ...]]
    source: str
    """The config's name for messages, e.g. config/fidelity.yaml."""

    def settings(
        self, group: Group, env: str, seed: int, *, trials: int | None = None
    ) -> PetsConfig:
        """A run's settings as the runner resolves them: the config's overrides, then the
        group's (then ``trials`` MPC trials instead of the registered number, if given)."""
        variant = parse_variant(REFERENCE_VARIANT)
        pairs = override_pairs(self.config, env, variant)
        pairs += [(path, yaml_value(value)) for path, value in group.overrides.items()]
        if trials is not None:
            pairs.append((TRIALS_KEY, str(trials)))
        return load_config(env, ca_pairs(variant), pairs, seed=seed)

    def trials(self, group: Group, env: str) -> int:
        """The number of MPC trials the group's runs of ``env`` are registered for."""
        return self.settings(group, env, 1).exp_cfg.exp_cfg.ntrain_iters

    def roots(self, fidelity_root: Path | str) -> dict[str | None, Path]:
        """Where the groups' runs are committed, given the paper-setting runs' directory:
        None -> that directory, a group's name -> the group's own directory beside it."""
        root = Path(fidelity_root)
        own = {g.name: root.parent / g.name for g in self.groups if g.own_directory}
        return {None: root, **own}

    def group_of(self, env: str, seed: int, *, own_directory: str | None = None) -> Group | None:
        """The group that registered (env, seed): among the groups committed with the
        paper-setting runs, or among those of the directory named ``own_directory``."""
        for group in self.groups:
            here = group.name == own_directory if own_directory else not group.own_directory
            if here and env in group.envs and seed in group.seeds:
                return group
        return None

    def check(self, run_dir: Path | str, group: Group | None, env: str, seed: int) -> None:
        """Refuse a run (:class:`RefusedRun`, one line) unless it is ``group``'s run of (env,
        seed) at exactly the group's settings (a partial run may have fewer trials)."""
        where = f"refused run {run_dir}"
        if group is None:
            registered = "; ".join(
                f"{g.source}: {env} seeds {seeds_text(g.seeds)}"
                for g in self.groups
                if env in g.envs
            )
            raise RefusedRun(
                f"{where}: {env} seed {seed} is not a pre-registered run here "
                f"({self.source}: {registered or f'no group runs {env}'})"
            )
        path = Path(run_dir) / CONFIG_YAML
        if not path.is_file():
            raise RefusedRun(f"{where}: no {CONFIG_YAML}, so its settings cannot be checked")
        try:
            ran = build(yaml.safe_load(path.read_text()) or {})
        except (yaml.YAMLError, ConfigError) as err:
            reason = " ".join(str(err).split())
            raise RefusedRun(f"{where}: unreadable {CONFIG_YAML} ({reason})") from None
        expected = self.settings(group, env, seed)
        partial = not (Path(run_dir) / DONE_JSON).is_file()
        ran_trials = ran.exp_cfg.exp_cfg.ntrain_iters
        if partial and ran_trials < expected.exp_cfg.exp_cfg.ntrain_iters:
            expected = self.settings(group, env, seed, trials=ran_trials)
        differs = first_difference(ran, expected)
        if differs is not None:
            raise RefusedRun(
                f"{where}: its {CONFIG_YAML} differs from {self.source} + {group.source} at "
                f"{differs} (the run's value first)"
            )


def read(config: Mapping[str, Any], source: str = "the fidelity config") -> Preregistration:
    """The ``preregistered`` block (and ``experiments``) of a fidelity config, checked: every
    group's envs, seeds and overrides must resolve as the runner would resolve them."""
    block = config.get("preregistered") or {}
    envs = tuple(config.get("envs") or ())
    groups = []
    for name, spec in block.items():
        if name == "report_trials":
            continue
        key = f"preregistered.{name}"
        if not isinstance(spec, Mapping) or set(spec) - {"envs", "seeds", "overrides"}:
            raise PreregistrationError(
                f"{source}: {key}: expected a mapping of envs, seeds and overrides"
            )
        groups.append(
            Group(
                name=name,
                source=key,
                envs=tuple(spec.get("envs") or ()),
                seeds=tuple(int(s) for s in spec.get("seeds") or ()),
                overrides=dict(spec.get("overrides") or {}),
            )
        )
    for name, spec in (config.get("experiments") or {}).items():
        if REFERENCE_VARIANT in spec.get("variants", ()):
            seeds = tuple(int(s) for s in spec.get("seeds") or ())
            groups.append(Group(name, f"experiments.{name}", envs, seeds, {}))
    names = [g.name for g in groups if g.own_directory]
    if len(set(names)) != len(names):
        raise PreregistrationError(f"{source}: two groups with their own directory share a name")
    prereg = Preregistration(
        config=config,
        groups=tuple(groups),
        report_trials={
            env: tuple(int(t) for t in trials)
            for env, trials in (block.get("report_trials") or {}).items()
        },
        source=source,
    )
    for group in prereg.groups:
        for env in group.envs:
            try:
                prereg.settings(group, env, 1)
            except ConfigError as err:
                raise PreregistrationError(f"{source}: {group.source} on {env}: {err}") from None
    return prereg


def seeds_text(seeds: Iterable[int]) -> str:
    """[1, 2, 3] -> '1, 2, 3'."""
    return ", ".join(str(s) for s in sorted(seeds))
