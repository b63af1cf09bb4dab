"""returns.csv + runs.csv + reference curves -> our best-so-far at the published points."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import pandas as pd

from pets_core.analysis import reference
from pets_core.results.files import write_text

curves = reference.load_reference(snakemake.input.reference)
tidy = pd.read_csv(snakemake.input.returns)
table = reference.comparison(tidy, curves, snakemake.params.envs)
intro, per_env = reference.blocks(
    table, curves, pd.read_csv(snakemake.input.runs), snakemake.params.settings
)
write_text(Path(snakemake.output.markdown), reference.to_markdown(intro, per_env))
write_text(Path(snakemake.output.html), reference.to_html(intro, per_env))
