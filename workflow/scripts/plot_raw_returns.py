"""returns.csv -> per-trial return curves (what best-so-far hides), PDF + PNG."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from pets_core.analysis.plots import paper_style, raw_returns_figure, save_figure

params = snakemake.params
with paper_style():
    figure = raw_returns_figure(
        pd.read_csv(snakemake.input.returns),
        envs=params.envs,
        variants=params.variants,
        palette=params.palette,
    )
    save_figure(figure, snakemake.output)
