# Config validation, the job matrix and input functions. Every error names the config key.
import difflib
import os
import shlex
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from snakemake.utils import validate

from pets_core.config import ConfigError, load_config
from pets_core.config.bounded_yaml import check_size, load_yaml_file
from pets_core.envs import ENV_NAMES
from pets_core.config.variants import VariantError, parse_variant
from pets_core.results.rundir import DONE_JSON, LOGS_MAT, RUN_PATH, job_label, run_path
from pets_core.run.matrix import (
    ca_pairs,
    jobs,
    override_pairs,
    run_dir_arg,
    seed_args,
    train_jobs,
)


def _validate_config():
    """The size limits of pets_core.config.bounded_yaml (an alias bomb would hang the schema
    check), then the schema check as one line naming the key and the valid choices (Snakemake's
    own validate prints the whole schema), then Snakemake's validate to fill the defaults."""
    try:
        for path in workflow.overwrite_configfiles or []:
            load_yaml_file(path)
        check_size(config, "the merged config (--configfile and --config)")
    except ConfigError as err:
        raise ValueError(f"config: {err}") from None
    schema_path = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    envs = schema["$defs"]  # the env list is defined once, in pets_core.envs
    envs["env"]["enum"] = list(ENV_NAMES)
    envs["env_or_all"]["enum"] = ["all", *ENV_NAMES]
    envs["env_or_default"]["enum"] = ["default", *ENV_NAMES]
    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        raise ValueError(_schema_message(error)) from None
    validate(config, schema="../schemas/config.schema.yaml")


def _schema_message(error):
    """jsonschema error -> 'config key experiments.x.seeds[0]: ...' (one line)."""
    where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in error.absolute_path)
    where = f"config key {where[1:]}" if where else "config"
    if error.validator == "additionalProperties":
        valid = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(valid))
        hints = [difflib.get_close_matches(key, valid, n=1) for key in unknown]
        hint = "".join(f" (did you mean {h[0]!r}?)" for h in hints if h and len(unknown) == 1)
        return (
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}{hint}; valid keys: {', '.join(valid)}"
        )
    return f"{where}: {error.message}"


_validate_config()

ENVS = list(config["envs"])
EXISTING_RUNS = config.get("existing_runs")  # figures from someone else's runs: no training


def _experiment_name():
    """config `name`, else the (last) --configfile's name without .yaml; written back into the
    config so that the report's own Snakemake run (scripts/report.py) gets the same one."""
    if not config.get("name"):
        files = workflow.overwrite_configfiles or workflow.configfiles or ["config/config.yaml"]
        config["name"] = Path(files[-1]).stem
    return config["name"]


def _relative(path):
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _existing_slug(path):
    """existing_runs as one folder name: results/reference/fidelity -> reference-fidelity."""
    parts = [
        p for p in Path(_relative(path)).parts if p not in (os.curdir, os.pardir, Path(p).anchor)
    ]
    return "-".join(parts[1:] if parts[:1] == ["results"] else parts) or "here"


EXPERIMENT = _experiment_name()
EXPERIMENT_DIR = f"results/{EXPERIMENT}"  # this experiment's runs (runs/)
OUT = (  # where its tables, figures, logs and report go (README "Layout")
    f"{EXPERIMENT_DIR}/existing/{_existing_slug(EXISTING_RUNS)}" if EXISTING_RUNS else EXPERIMENT_DIR
)


def _check_matrix():
    """Resolve every (env, variant) config as the runner will, so that an invalid combination,
    an unknown or read-only -o path or a bad value fails here, before any job starts."""
    for group, spec in config["experiments"].items():
        for i, name in enumerate(spec["variants"]):
            try:
                variant = parse_variant(name)
            except VariantError as err:
                raise ValueError(f"config experiments.{group}.variants[{i}]: {err}") from None
            for env in ENVS:
                try:
                    load_config(env, ca_pairs(variant), override_pairs(config, env, variant))
                except ConfigError as err:
                    raise ValueError(
                        f"config experiments.{group}.variants[{i}] ({name}) on env {env} "
                        f"with overrides.all / overrides.{env}: {err}"
                    ) from None


# One run = one (env, variant, seed); the union over experiment groups (shared runs train once).
JOBS = jobs(config)
VARIANTS = sorted({variant for _, variant, _ in JOBS})
RUNS_ROOT = f"{EXPERIMENT_DIR}/runs"  # where this experiment's training runs live
RUN_DIR = f"{RUNS_ROOT}/{RUN_PATH}"  # Snakemake wildcards {env}, {variant}, {seed}
try:
    TRAIN_JOBS = train_jobs(config)  # (env, variant, seeds): seeds_per_job seeds per job
except ConfigError as err:
    raise ValueError(str(err)) from None


wildcard_constraints:
    env="|".join(ENVS),
    variant="|".join(VARIANTS) if VARIANTS else "[^/]+",
    seed=r"\d+",


def done_markers():
    """done.json of every job: the runner writes it last, so it marks a complete run."""
    return [f"{RUNS_ROOT}/{run_path(*job)}/{DONE_JSON}" for job in JOBS]


def run_inputs(wildcards):
    """What aggregation reads: done markers of the matrix, or existing logs.mat (no training)."""
    if EXISTING_RUNS:
        from pets_core.analysis.aggregate import find_run_dirs

        found = [f"{d}/{LOGS_MAT}" for d in find_run_dirs(EXISTING_RUNS)]
        if not found:
            raise ValueError(
                f"config existing_runs: no {RUN_PATH}/{LOGS_MAT} under {EXISTING_RUNS}"
            )
        return found
    return done_markers()


def variant_args(wildcards):
    """-ca flags of the runner for a variant name such as PE-TSinf-CEM."""
    return " ".join(f"-ca {k} {v}" for k, v in ca_pairs(parse_variant(wildcards.variant)))


def override_args(wildcards):
    """-o DOTTED.PATH VALUE flags for the job's env."""
    pairs = override_pairs(config, wildcards.env, parse_variant(wildcards.variant))
    return " ".join(f"-o {p} {shlex.quote(v)}" for p, v in pairs)


def train_runtime(wildcards):
    """Minutes per job, as configured per env, whatever the job's number of seeds: the seeds of a
    job run in lockstep, so a job lasts about as long as its slowest seed where the device runs
    the batch in parallel (a GPU); on CPUs the planning time grows with the seeds (docs)."""
    return config["train"]["runtime"].get(wildcards.env, config["train"]["runtime"]["default"])


def final_outputs():
    """Targets of the default rule: tables, figures and (when training here) the MLflow ingest."""
    outputs = [
        f"{OUT}/tables/final_returns.md",
        f"{OUT}/tables/final_returns.tex",
        *expand(f"{OUT}/figures/{{name}}.{{ext}}", name=FIGURES, ext=["pdf", "png"]),
    ]
    if not EXISTING_RUNS:
        outputs.append(f"{OUT}/mlflow.ingested")
    return outputs


def print_summary():
    """The closing table of a workflow run (Snakefile onsuccess)."""
    from pets_core.run.progress import workflow_summary

    if EXISTING_RUNS:
        from pets_core.analysis.aggregate import find_run_dirs

        run_dirs = find_run_dirs(EXISTING_RUNS)
    else:
        run_dirs = [f"{RUNS_ROOT}/{run_path(*job)}" for job in JOBS]
    print(
        workflow_summary(
            run_dirs,
            tracking_uri=None if EXISTING_RUNS else config["mlflow"]["tracking_uri"],
            configfiles=[_relative(c) for c in workflow.overwrite_configfiles or []],
            out=OUT,
            runs_root=RUNS_ROOT if not EXISTING_RUNS else EXISTING_RUNS,
            existing_runs=EXISTING_RUNS,
        ),
        flush=True,
    )


FIGURES = [
    "best_so_far_trials",
    "best_so_far_steps",
    "ablation",
    "raw_returns",
]


_check_matrix()
