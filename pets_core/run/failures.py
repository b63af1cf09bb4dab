"""How a run fails on its own (not interrupted, not bad input): torch-free, so the CLI names it."""


class Diverged(RuntimeError):
    """Training made the loss or the model's weights non-finite; the message names the iteration.

    Raised before that iteration's checkpoint, so checkpoint.pt keeps the last finite model and
    no done.json is written (pets_core.run.loop.check_finite)."""
