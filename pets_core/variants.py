from pets_core.config.variants import *  # noqa: F403  (moved; re-exported until imports are rewritten)
