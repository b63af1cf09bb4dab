"""`python -m pets_core.mbexp`, the documented entry point: calls
:func:`pets_core.cli.mbexp.main`."""

import sys

from pets_core.cli.mbexp import main

if __name__ == "__main__":
    sys.exit(main())
