"""Results analysis: run directories -> tidy table -> statistics, tables and paper figures.

Everything here reads files (logs.mat, metrics.csv, config.yaml, Snakemake benchmark TSVs) and never
imports torch or the models, so figures can be regenerated from someone else's results directory.
"""
