"""final_returns.csv -> Figure-4 style ablation bars (model x propagation, per env), PDF + PNG."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from pets_core.analysis.plots import ablation_figure, paper_style, save_figure

with paper_style():
    figure = ablation_figure(pd.read_csv(snakemake.input.summary), envs=snakemake.params.envs)
    save_figure(figure, snakemake.output)
