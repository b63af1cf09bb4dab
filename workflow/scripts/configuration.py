"""The runs in the tables (runs.csv) -> each experiment's resolved settings vs the paper's."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import pandas as pd

from pets_core.analysis import settings
from pets_core.analysis.aggregate import parse_run_dir
from pets_core.results.files import write_text

runs = pd.read_csv(snakemake.input.runs)
kept = set(zip(runs["env"], runs["variant"], runs["seed"].astype(int), strict=True))
run_dirs = [Path(d) for d in snakemake.params.run_dirs if parse_run_dir(d) in kept]
rows = settings.experiments(run_dirs)
write_text(Path(snakemake.output.markdown), settings.to_markdown(rows))
write_text(Path(snakemake.output.html), settings.to_html(rows))
