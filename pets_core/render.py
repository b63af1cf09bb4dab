"""`python -m pets_core.render`, the documented entry point: calls
:func:`pets_core.cli.render.main`."""

import sys

from pets_core.cli.render import main

if __name__ == "__main__":
    sys.exit(main())
