"""Create and migrate the MLflow store and the per-env experiments once, before jobs fan out."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from pets_core.tracking import init_store

init_store(snakemake.params.tracking_uri, snakemake.params.experiments)
