"""`python -m pets_core.batch`, the documented entry point: calls
:func:`pets_core.cli.batch.main`."""

import sys

from pets_core.cli.batch import main

if __name__ == "__main__":
    sys.exit(main())
