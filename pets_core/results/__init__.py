"""Run directories and what reads them: one RunDir (rundir.py: paths, artifact names,
completeness, finding runs), atomic files, logs.mat, metrics.csv, run identity, checkpoint format,
and MLflow (naming, store, tracking, ingest). Nothing here imports torch at package import."""
