"""Pre-registered fidelity runs + reference curves -> the fidelity table (Markdown, HTML, CSV) and
figure (PDF, PNG; its caption inside). A run at other settings: one line per run, exit 1."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

from pets_core.analysis import fidelity
from pets_core.analysis.fidelity_figure import caption, fidelity_figure
from pets_core.analysis.plots import paper_style, save_figure
from pets_core.analysis.preregistration import PreregistrationError, RefusedRun
from pets_core.analysis.reference import load_reference
from pets_core.results.files import write_text

params, output = snakemake.params, snakemake.output
try:
    blocks = fidelity.load(snakemake.config, params.source, params.fidelity_root, params.envs)
except (PreregistrationError, RefusedRun) as err:  # on the terminal and in the log
    for stream in (sys.__stderr__, sys.stderr):
        print(err, file=stream)
    sys.exit(1)
curves = load_reference(snakemake.input.reference)
intro, per_block = fidelity.render(blocks, curves)
write_text(Path(output.markdown), fidelity.to_markdown(intro, per_block))
write_text(Path(output.html), fidelity.to_html(intro, per_block))
cells = [cell for block in blocks for cell in fidelity.cells(block, curves)]
write_text(Path(output.csv), fidelity.to_frame(cells).to_csv(index=False))
with paper_style():
    figure = fidelity_figure(
        blocks, curves, colour=params.colour, caption_text=caption(blocks, curves)
    )
    save_figure(figure, [output.pdf, output.png])
