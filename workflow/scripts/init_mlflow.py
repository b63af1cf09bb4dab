"""Create and migrate the MLflow store and the per-env experiments once, before jobs fan out."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from pets_core.results.naming import experiment_name
from pets_core.results.store import init_store

init_store(snakemake.params.tracking_uri, [experiment_name(env) for env in snakemake.params.envs])
