"""Tidy table + run list + benchmark TSVs -> final_returns.{csv,md,tex,html}."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import pandas as pd

from pets_core.analysis.stats import summary_table
from pets_core.analysis.tables import to_html, to_latex, to_markdown
from pets_core.results.files import write_text

tidy = pd.read_csv(snakemake.input.returns, dtype={"settings": str})
runs = pd.read_csv(snakemake.input.runs, dtype={"settings": str})
benchmarks = sorted(Path(snakemake.params.benchmarks).glob("*/*/*.tsv"))  # the kept runs' count
table = summary_table(tidy, snakemake.params.thresholds, benchmarks, runs)
caption = (
    f"Settings: {snakemake.params.settings_note}. CI: {snakemake.params.ci_method}. "
    "IQM only where it trims a run (4 seeds or more)."
)
write_text(Path(snakemake.output.csv), table.to_csv(index=False))
write_text(Path(snakemake.output.markdown), to_markdown(table))
write_text(Path(snakemake.output.latex), to_latex(table))
write_text(Path(snakemake.output.html), to_html(table, caption))
