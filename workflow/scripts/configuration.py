"""Every run's config.yaml -> the resolved settings of each experiment vs the paper's (MD, HTML)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

from pets_core.analysis import settings
from pets_core.logs import write_text

rows = settings.experiments(Path(path).parent for path in snakemake.input)
write_text(Path(snakemake.output.markdown), settings.to_markdown(rows))
write_text(Path(snakemake.output.html), settings.to_html(rows))
