"""Every run's logs.mat -> results/tables/returns.csv (the tidy table)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

from pets_core.analysis.aggregate import collect_runs

run_dirs = [Path(path).parent for path in snakemake.input]  # done.json or logs.mat
table = collect_runs(run_dirs)
table.to_csv(snakemake.output.returns, index=False)
print(f"{len(run_dirs)} runs, {len(table)} rows -> {snakemake.output.returns}", file=sys.stderr)
