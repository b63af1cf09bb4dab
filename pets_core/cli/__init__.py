"""Command lines: ``python -m pets_core.mbexp`` / ``.render`` / ``.ingest`` (thin modules at
those paths call the ``main`` of the module of the same name here)."""
