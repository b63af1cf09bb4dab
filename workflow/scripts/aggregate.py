"""Every run's logs.mat -> <experiment>/tables/returns.csv (tidy table) and runs.csv (one a run).

Partial runs are left out (or, with ``--config include_partial=true``, kept and marked); each one
is named on the terminal and in the log. Runs that cannot be aggregated (missing or damaged files,
one env and variant in different settings) fail the job with one message naming them.
"""

import logging
import sys

log = open(snakemake.log[0], "w", buffering=1)
terminal = sys.__stderr__
sys.stderr = log

from pathlib import Path

from pets_core.analysis.aggregate import RunDataError, collect_runs, run_records
from pets_core.notices import LOGGER
from pets_core.results.files import write_text


class Show(logging.Handler):
    """Each notice on the terminal and in the log, with how to keep a partial run."""

    def emit(self, record):
        text = record.getMessage()
        if text.startswith("partial run") and not snakemake.params.include_partial:
            text += " (include it with --config include_partial=true)"
        for stream in (terminal, log):
            print(text, file=stream)


LOGGER.handlers = [Show()]
run_dirs = [Path(path).parent for path in snakemake.input]  # done.json or logs.mat
try:
    table = collect_runs(run_dirs, include_partial=snakemake.params.include_partial)
except RunDataError as err:  # missing or damaged runs, runs of different settings: named
    for stream in (terminal, log):
        print(f"aggregate: error: {err}", file=stream)
    sys.exit(1)
write_text(Path(snakemake.output.returns), table.to_csv(index=False))
runs = run_records(run_dirs, table)
write_text(Path(snakemake.output.runs), runs.to_csv(index=False))
print(f"{len(runs)} runs, {len(table)} rows -> {snakemake.output.returns}", file=log)
