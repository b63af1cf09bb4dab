"""Tidy table + benchmark TSVs -> final_returns.{csv,md,tex}."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import pandas as pd

from pets_core.analysis.stats import summary_table
from pets_core.analysis.tables import to_latex, to_markdown

tidy = pd.read_csv(snakemake.input.returns)
benchmarks = sorted(Path(snakemake.params.benchmarks).glob("*/*/seed*.tsv"))
table = summary_table(
    tidy, snakemake.params.thresholds, benchmarks, gpu_per_run=snakemake.params.gpu_per_run
)
table.to_csv(snakemake.output.csv, index=False)
Path(snakemake.output.markdown).write_text(to_markdown(table))
Path(snakemake.output.latex).write_text(to_latex(table))
