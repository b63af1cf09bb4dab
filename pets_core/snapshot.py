"""`python -m pets_core.snapshot`, the documented entry point: calls
:func:`pets_core.cli.snapshot.main`."""

import sys

from pets_core.cli.snapshot import main

if __name__ == "__main__":
    sys.exit(main())
