# Config validation, the job matrix and input functions. Every error names the config key.
import os
import shlex

import yaml
from snakemake.utils import validate

from pets_core.variants import VariantError, parse_variant


validate(config, schema="../schemas/config.schema.yaml")

ENVS = list(config["envs"])


def _check_variants():
    """Invalid MODEL-PROP-OPT combinations (e.g. D-TS1-CEM) fail here, before any job starts."""
    for group, spec in config["experiments"].items():
        for i, name in enumerate(spec["variants"]):
            try:
                parse_variant(name)
            except VariantError as err:
                raise ValueError(f"config experiments.{group}.variants[{i}]: {err}") from None


def _override_leaves():
    """Dotted paths of the runner's config tree (config/pets/default.yaml), for -o checks."""
    with open(os.path.join(workflow.basedir, "config/pets/default.yaml")) as f:
        tree = yaml.safe_load(f)

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            yield f"{prefix}{key}"

    return set(walk(tree, ""))


def _check_overrides():
    leaves = _override_leaves()
    for env, pairs in config["overrides"].items():
        if env != "all" and env not in ENVS:
            raise ValueError(f"config overrides.{env}: not one of envs {ENVS} (or 'all')")
        for path in pairs or {}:
            if path not in leaves:
                raise ValueError(
                    f"config overrides.{env}: {path!r} is not a path of config/pets/default.yaml"
                )


_check_variants()
_check_overrides()

# One job = one (env, variant, seed); the union over experiment groups (shared runs train once).
JOBS = sorted(
    {
        (env, variant, seed)
        for env in ENVS
        for spec in config["experiments"].values()
        for variant in spec["variants"]
        for seed in spec["seeds"]
    }
)
VARIANTS = sorted({variant for _, variant, _ in JOBS})
EXISTING_RUNS = config.get("existing_runs")  # figures from someone else's runs: no training
RUN_DIR = "results/runs/{env}/{variant}/seed{seed}"


wildcard_constraints:
    env="|".join(ENVS),
    variant="|".join(VARIANTS) if VARIANTS else "[^/]+",
    seed=r"\d+",


def done_markers():
    """done.json of every job: the runner writes it last, so it marks a complete run."""
    return [f"results/runs/{e}/{v}/seed{s}/done.json" for e, v, s in JOBS]


def run_inputs(wildcards):
    """What aggregation reads: done markers of the matrix, or existing logs.mat (no training)."""
    if EXISTING_RUNS:
        from pets_core.analysis.aggregate import find_run_dirs

        return [f"{d}/logs.mat" for d in find_run_dirs(EXISTING_RUNS)]
    return done_markers()


def variant_args(wildcards):
    """-ca flags of the runner for a variant name such as PE-TSinf-CEM."""
    v = parse_variant(wildcards.variant)
    return f"-ca model-type {v.model} -ca prop-type {v.prop} -ca opt-type {v.opt}"


def override_args(wildcards):
    """-o DOTTED.PATH VALUE pairs: overrides.all, then overrides.<env> (later wins)."""
    pairs = {**(config["overrides"].get("all") or {})}
    pairs.update(config["overrides"].get(wildcards.env) or {})
    return " ".join(f"-o {path} {shlex.quote(_yaml_value(v))}" for path, v in pairs.items())


def _yaml_value(value):
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def train_runtime(wildcards):
    return config["train"]["runtime"].get(wildcards.env, config["train"]["runtime"]["default"])


def final_outputs():
    """Targets of the default rule: tables and figures, plus the MLflow ingest check when training here."""
    outputs = [
        "results/tables/final_returns.md",
        "results/tables/final_returns.tex",
        *expand("results/figures/{name}.{ext}", name=FIGURES, ext=["pdf", "png"]),
    ]
    if not EXISTING_RUNS:
        outputs.append("results/mlflow.ingested")
    return outputs


FIGURES = [
    "best_so_far_trials",
    "best_so_far_steps",
    "ablation",
    "raw_returns",
]
