# Inputs and parameters of the analysis rules (aggregate.smk, figures.smk): partial runs, what each
# experiment runs against the paper's settings (for captions and tables), the analysis targets.
from pathlib import Path

from pets_core.analysis import fidelity as _fidelity
from pets_core.analysis import preregistration as _preregistration
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


CONFIG_SOURCE = (
    _relative(workflow.overwrite_configfiles[-1])
    if workflow.overwrite_configfiles
    else "config/config.yaml"
)
"""The config's name in messages (the fidelity table's refusals)."""
FIDELITY_ROOT = EXISTING_RUNS or RUNS_ROOT
"""Where the paper-setting fidelity runs are; own-settings groups live beside it."""


def _check_fidelity_runs():
    """A fidelity config (one with a preregistered block) and its committed runs, checked before
    any job: a malformed block, or a run whose settings differ from its group's, is one line."""
    if not config.get("preregistered"):
        return False
    try:
        prereg = _preregistration.read(config, CONFIG_SOURCE)
        if EXISTING_RUNS:
            _fidelity.collect(prereg, EXISTING_RUNS)
    except (_preregistration.PreregistrationError, _preregistration.RefusedRun) as err:
        raise ValueError(str(err)) from None
    return True


FIDELITY = _check_fidelity_runs() and bool(config["figures"].get("reference_curves"))
"""Whether this config makes the fidelity table and figure."""


def fidelity_inputs(wildcards):
    """The runs the fidelity table reads: the workflow's own (or existing) runs, and the logs of
    every group committed in its own directory (results/reference/reduced)."""
    from pets_core.analysis.aggregate import find_run_dirs

    prereg = _preregistration.read(config, CONFIG_SOURCE)
    files = list(run_inputs(wildcards))
    for name, root in prereg.roots(FIDELITY_ROOT).items():
        if name is not None and Path(root).is_dir():
            files += [f"{d}/{LOGS_MAT}" for d in find_run_dirs(root)]
    return files


def analysis_outputs():
    """Tables and figures (the report's content); a fidelity config's table and figure too."""
    outputs = [
        *rules.summarize.output,
        *rules.configuration.output,
        *expand(f"{OUT}/figures/{{name}}.{{ext}}", name=FIGURES, ext=["pdf", "png"]),
    ]
    if FIDELITY:
        outputs += rules.fidelity.output
    return outputs
