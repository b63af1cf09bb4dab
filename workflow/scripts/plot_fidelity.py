"""The pre-registered fidelity runs + reference curves -> the fidelity figure, caption inside."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pets_core.analysis import fidelity
from pets_core.analysis.fidelity_figure import caption, fidelity_figure
from pets_core.analysis.plots import paper_style, save_figure
from pets_core.analysis.reference import load_reference

params = snakemake.params
blocks = fidelity.load(snakemake.config, params.source, params.fidelity_root, params.envs)
curves = load_reference(snakemake.input.reference)
with paper_style():
    figure = fidelity_figure(
        blocks, curves, colour=params.colour, caption_text=caption(blocks, curves)
    )
    save_figure(figure, snakemake.output)
