"""Pre-registered fidelity runs + reference curves -> the fidelity table (Markdown, HTML, CSV)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

from pets_core.analysis import fidelity
from pets_core.analysis.reference import load_reference
from pets_core.results.files import write_text

params = snakemake.params
blocks = fidelity.load(snakemake.config, params.source, params.fidelity_root, params.envs)
curves = load_reference(snakemake.input.reference)
intro, per_block = fidelity.render(blocks, curves)
write_text(Path(snakemake.output.markdown), fidelity.to_markdown(intro, per_block))
write_text(Path(snakemake.output.html), fidelity.to_html(intro, per_block))
cells = [cell for block in blocks for cell in fidelity.cells(block, curves)]
write_text(Path(snakemake.output.csv), fidelity.to_frame(cells).to_csv(index=False))
