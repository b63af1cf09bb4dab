"""returns.csv -> Figure-3 style best-so-far curves (x = trials or env steps), PDF + PNG."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd
import yaml

from pets_core.analysis.plots import best_so_far_figure, paper_style, save_figure

params = snakemake.params
reference = {}
if params.reference_curves:
    with open(params.reference_curves) as f:
        reference = yaml.safe_load(f)["curves"]
x = {"trials": "iteration", "steps": "env_steps"}[snakemake.wildcards.x]
with paper_style():
    figure = best_so_far_figure(
        pd.read_csv(snakemake.input.returns),
        envs=params.envs,
        variants=params.variants,
        x=x,
        reference=reference,
        palette=params.palette,
    )
    save_figure(figure, snakemake.output)
