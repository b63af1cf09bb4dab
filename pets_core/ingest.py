"""`python -m pets_core.ingest`, the documented entry point: calls
:func:`pets_core.cli.ingest.main`."""

import sys

from pets_core.cli.ingest import main

if __name__ == "__main__":
    sys.exit(main())
