# Run directories -> the tidy table and run list -> summary, configuration and fidelity tables
# (CSV / Markdown / LaTeX files; HTML for the report).
from pathlib import Path

from pets_core.analysis import settings as _settings
from pets_core.analysis.reference import REFERENCE_VARIANT
from pets_core.analysis.stats import CI_METHOD, MIN_SEEDS_FOR_BAND
from pets_core.config import flatten

INCLUDE_PARTIAL = bool(config.get("include_partial", False))


def experiment_settings():
    """Per (env, variant): the settings it runs (matrix) or ran (existing runs' config.yaml)."""
    if EXISTING_RUNS:
        return _settings.experiments(_kept_existing_runs())
    rows = []
    for env in ENVS:
        for name in VARIANTS:
            variant = parse_variant(name)
            cfg = load_config(env, _ca_pairs(variant), _override_pairs(env, variant))
            seeds = {s for e, v, s in JOBS if (e, v) == (env, name)}
            rows.append(_settings.experiment(env, name, seeds, flatten(cfg)))
    return rows


def _kept_existing_runs():
    """The existing runs that the tables will hold (partial ones only with include_partial)."""
    import warnings

    from pets_core.analysis.aggregate import RunDataError, collect_runs, find_run_dirs

    found = find_run_dirs(EXISTING_RUNS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the aggregate rule names them
            kept = collect_runs(found, include_partial=INCLUDE_PARTIAL)
    except RunDataError:
        return found  # the aggregate rule reports it
    names = set(zip(kept["env"], kept["variant"], kept["seed"]))
    return [d for d in found if (d.parts[-3], d.parts[-2], int(d.name[4:])) in names]


EXPERIMENT_SETTINGS = experiment_settings()


def settings_note():
    """One sentence for captions: every experiment's settings against the paper's."""
    return _settings.note(EXPERIMENT_SETTINGS)


def settings_by_env():
    """env -> the reference variant's settings in words (for the fidelity table)."""
    return {
        row["env"]: _settings.describe(row["differences"])
        for row in EXPERIMENT_SETTINGS
        if row["variant"] == REFERENCE_VARIANT
    }


localrules:
    aggregate,
    summarize,
    configuration,
    fidelity_table,


rule aggregate:  # partial runs: left out with a warning, or kept and marked (include_partial)
    input:
        run_inputs,
    output:
        returns="results/tables/returns.csv",
        runs="results/tables/runs.csv",
    log:
        "results/logs/aggregate.log",
    conda:
        "../../environment.yml"
    params:
        include_partial=INCLUDE_PARTIAL,
    script:
        "../scripts/aggregate.py"


rule summarize:
    input:
        returns=rules.aggregate.output.returns,
        runs=rules.aggregate.output.runs,
    output:
        csv="results/tables/final_returns.csv",
        markdown="results/tables/final_returns.md",
        latex="results/tables/final_returns.tex",
        html=report(
            "results/tables/final_returns.html",
            caption="../report/final_returns.rst",
            category="Tables",
            labels={"table": "final best-so-far and cost"},
        ),
    log:
        "results/logs/summarize.log",
    conda:
        "../../environment.yml"
    params:
        thresholds=config["figures"]["thresholds"],
        benchmarks="results/benchmarks/train",
        settings_note=settings_note(),
        ci_method=CI_METHOD,
    script:
        "../scripts/summarize.py"


rule configuration:  # what every experiment ran, against the paper's defaults
    input:
        runs=rules.aggregate.output.runs,
    output:
        markdown="results/tables/configuration.md",
        html=report(
            "results/tables/configuration.html",
            caption="../report/configuration.rst",
            category="Configuration",
            labels={"table": "resolved settings vs the paper's"},
        ),
    log:
        "results/logs/configuration.log",
    conda:
        "../../environment.yml"
    params:
        run_dirs=lambda wildcards, input: [str(Path(p).parent) for p in run_inputs(wildcards)],
    script:
        "../scripts/configuration.py"


rule fidelity_table:  # our best-so-far at the published curves' points (reference_curves)
    input:
        returns=rules.aggregate.output.returns,
        runs=rules.aggregate.output.runs,
        reference=config["figures"].get("reference_curves") or [],
    output:
        markdown="results/tables/fidelity.md",
        html=report(
            "results/tables/fidelity.html",
            caption="../report/fidelity.rst",
            category="Tables",
            labels={"table": "ours vs the original's curves"},
        ),
    log:
        "results/logs/fidelity_table.log",
    conda:
        "../../environment.yml"
    params:
        envs=ENVS,
        settings=settings_by_env(),
    script:
        "../scripts/fidelity_table.py"
