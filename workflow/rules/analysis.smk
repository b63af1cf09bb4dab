# Inputs and parameters of the analysis rules (aggregate.smk, figures.smk): partial runs, what each
# experiment runs against the paper's settings (for captions and tables), the analysis targets.
from pathlib import Path

from pets_core.analysis import settings as _settings
from pets_core.analysis.reference import REFERENCE_VARIANT, X_CONVENTION
from pets_core.analysis.stats import CI_METHOD, MIN_SEEDS_FOR_BAND
from pets_core.config import flatten

INCLUDE_PARTIAL = config.get("include_partial") in (True, "true")


def experiment_settings():
    """Per (env, variant): the settings it runs (matrix) or ran (existing runs' config.yaml)."""
    if EXISTING_RUNS:
        return _settings.experiments(_kept_existing_runs())
    rows = []
    for env in ENVS:
        for name in VARIANTS:
            variant = parse_variant(name)
            cfg = load_config(env, ca_pairs(variant), override_pairs(config, env, variant))
            seeds = {s for e, v, s in JOBS if (e, v) == (env, name)}
            rows.append(_settings.experiment(env, name, seeds, flatten(cfg)))
    return rows


def _kept_existing_runs():
    """The existing runs that the tables will hold (partial ones only with include_partial)."""
    from pets_core.analysis.aggregate import RunDataError, collect_runs, find_run_dirs
    from pets_core.notices import silenced

    found = find_run_dirs(EXISTING_RUNS)
    try:
        with silenced():  # the aggregate rule names them
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


def analysis_outputs():
    """Tables and figures (the report's content); the fidelity table when reference curves are set."""
    outputs = [
        *rules.summarize.output,
        *rules.configuration.output,
        *expand(f"{OUT}/figures/{{name}}.{{ext}}", name=FIGURES, ext=["pdf", "png"]),
    ]
    if config["figures"].get("reference_curves"):
        outputs += rules.fidelity_table.output
    return outputs
