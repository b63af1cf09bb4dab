"""final_returns.csv + returns.csv -> Figure-4 style ablation (model x propagation), PDF + PNG."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from pets_core.analysis.aggregate import final_best_so_far
from pets_core.analysis.plots import ablation_figure, paper_style, save_figure

finals = final_best_so_far(pd.read_csv(snakemake.input.returns))
with paper_style():
    figure = ablation_figure(
        pd.read_csv(snakemake.input.summary), envs=snakemake.params.envs, finals=finals
    )
    save_figure(figure, snakemake.output)
