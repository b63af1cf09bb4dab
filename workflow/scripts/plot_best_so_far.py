"""returns.csv -> Figure-3 style best-so-far curves (x = trials or MPC env steps), PDF + PNG."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from pets_core.analysis.plots import best_so_far_figure, paper_style, save_figure
from pets_core.analysis.reference import load_reference

params = snakemake.params
reference = load_reference(params.reference_curves) if params.reference_curves else {}
x = {"trials": "iteration", "steps": "mpc_env_steps"}[snakemake.wildcards.x]
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
