"""The pipeline's job matrix: a pipeline config (config/config.yaml, or the one --configfile
names) -> its (env, variant, seed) jobs and each job's runner arguments.

Defined once for both places that start runs: the Snakefile's ``train`` rule
(workflow/rules/common.smk) and ``python -m pets_core.batch`` (a GPU box without Snakemake).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from pets_core.config import read_only_reason
from pets_core.config.variants import Variant, parse_variant


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


def runner_args(config: Mapping[str, Any], env: str, variant: str, seed: int) -> list[str]:
    """``python -m pets_core.mbexp`` arguments of one job, without where it runs and logs."""
    parsed = parse_variant(variant)
    args = ["-env", env]
    for key, value in ca_pairs(parsed):
        args += ["-ca", key, value]
    for path, value in override_pairs(config, env, parsed):
        args += ["-o", path, value]
    return [*args, "--seed", str(seed)]
