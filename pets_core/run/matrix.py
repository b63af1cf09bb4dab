"""The pipeline's job matrix: a pipeline config (config/config.yaml, or the one --configfile
names) -> its (env, variant, seed) runs, the training jobs that run them (``seeds_per_job`` seeds
of one (env, variant) in lockstep per job) and each job's runner arguments.

Defined once for both places that start runs: the Snakefile's training rules
(workflow/rules/train.smk) and ``python -m pets_core.batch`` (a GPU box without Snakemake).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from pets_core.config import ConfigError, read_only_reason
from pets_core.config.variants import Variant, parse_variant
from pets_core.results.rundir import run_path

Job = tuple[str, str, tuple[int, ...]]
"""One training job: (env, variant, its seeds in ascending order), one runner process."""


def jobs(config: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """Sorted (env, variant, seed) over every experiment group (a run shared by groups once)."""
    return sorted(
        {
            (env, variant, seed)
            for env in config["envs"]
            for spec in config["experiments"].values()
            for variant in spec["variants"]
            for seed in spec["seeds"]
        }
    )


def seeds_per_job(config: Mapping[str, Any]) -> int:
    """config ``seeds_per_job`` (default 1: one run per job). The schema checks the type, but
    JSON Schema counts 2.0 as an integer and the batch runner reads the file unchecked: both
    get this one line."""
    n = config.get("seeds_per_job", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"config key seeds_per_job: {n!r} is not an integer >= 1")
    return n


def seed_groups(seeds: Iterable[int], n: int) -> list[tuple[int, ...]]:
    """Ascending seeds cut into consecutive groups of ``n``; when n does not divide their
    number, the last group holds the rest: ([1, 2, 3, 4, 5], 2) -> [(1, 2), (3, 4), (5,)]."""
    ordered = sorted(set(seeds))
    return [tuple(ordered[i : i + n]) for i in range(0, len(ordered), n)]


def train_jobs(
    config: Mapping[str, Any], runs: Iterable[tuple[str, str, int]] | None = None
) -> list[Job]:
    """The training jobs of ``runs`` (default: the config's :func:`jobs`): each (env, variant)'s
    seeds grouped by :func:`seed_groups` with the config's :func:`seeds_per_job`."""
    n = seeds_per_job(config)
    by_pair: dict[tuple[str, str], list[int]] = {}
    for env, variant, seed in jobs(config) if runs is None else runs:
        by_pair.setdefault((env, variant), []).append(seed)
    return [
        (env, variant, group)
        for (env, variant), seeds in sorted(by_pair.items())
        for group in seed_groups(seeds, n)
    ]


def run_dir_arg(runs_root: str, env: str, variant: str, seeds: Sequence[int]) -> str:
    """The runner's --run-dir of a job: the run's directory, or for a group the template with
    ``{seed}`` where each seed's number goes (pets_core.mbexp --seeds)."""
    seed: int | str = seeds[0] if len(seeds) == 1 else "{seed}"
    return f"{runs_root}/{run_path(env, variant, seed)}"


def seed_args(seeds: Sequence[int]) -> list[str]:
    """--seed S for one seed (a single run, as without groups), --seeds S1,S2,... for a group."""
    if len(seeds) == 1:
        return ["--seed", str(seeds[0])]
    return ["--seeds", ",".join(map(str, seeds))]


def ca_pairs(variant: Variant) -> list[tuple[str, str]]:
    """The runner's -ca KEY VALUE pairs of a parsed variant."""
    return [("model-type", variant.model), ("prop-type", variant.prop), ("opt-type", variant.opt)]


def override_pairs(config: Mapping[str, Any], env: str, variant: Variant) -> list[tuple[str, str]]:
    """(DOTTED.PATH, VALUE) pairs: overrides.all, then overrides.<env> (later wins).

    Leaves the variant fixes itself (npart under E, num_nets for D / P, ign_var for DE-TS*) are
    left out for that variant, so one override list serves the whole matrix.
    """
    overrides = config.get("overrides") or {}
    pairs = {**(overrides.get("all") or {})}
    pairs.update(overrides.get(env) or {})
    return [
        (path, yaml_value(value))
        for path, value in pairs.items()
        if read_only_reason(path, variant) is None
    ]


def yaml_value(value: Any) -> str:
    """1e-3 -> '0.001', [200, 200] -> '[200, 200]', True -> 'true' (as -o expects them)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def runner_args(
    config: Mapping[str, Any], env: str, variant: str, seeds: Sequence[int]
) -> list[str]:
    """``python -m pets_core.mbexp`` arguments of one job, without where it runs and logs."""
    parsed = parse_variant(variant)
    args = ["-env", env]
    for key, value in ca_pairs(parsed):
        args += ["-ca", key, value]
    for path, value in override_pairs(config, env, parsed):
        args += ["-o", path, value]
    return [*args, *seed_args(seeds)]
