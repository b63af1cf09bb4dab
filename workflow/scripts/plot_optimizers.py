"""returns.csv + the runs' metrics.csv / config.yaml -> optimizers.{pdf,png,csv,md}."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import pandas as pd

from pets_core.analysis.aggregate import parse_run_dir
from pets_core.analysis.optimizers import (
    compute_per_action,
    optimizer_figure,
    optimizer_table,
    to_markdown,
)
from pets_core.analysis.plots import paper_style, save_figure

params = snakemake.params
run_dirs = {Path(p).parent for p in snakemake.input.runs}  # done.json or logs.mat
run_dirs = sorted(d for d in run_dirs if parse_run_dir(d)[1] in params.variants)
tidy = pd.read_csv(snakemake.input.returns)
compute = compute_per_action(run_dirs)
table = optimizer_table(tidy, compute, variants=params.variants)
table.to_csv(snakemake.output.csv, index=False)
Path(snakemake.output.markdown).write_text(to_markdown(table))
with paper_style():
    figure = optimizer_figure(
        tidy, compute, envs=params.envs, variants=params.variants, palette=params.palette
    )
    save_figure(figure, [snakemake.output.pdf, snakemake.output.png])
