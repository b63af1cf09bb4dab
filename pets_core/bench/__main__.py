"""`python -m pets_core.bench COMMAND [options]`: run a benchmark (COMMANDS: train, train-cohort,
plan, gpu, bf16-agreement, true-dynamics, replay)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "pets_core.bench.train",
    "train-cohort": "pets_core.bench.cohort_train",
    "plan": "pets_core.bench.plan",
    "gpu": "pets_core.bench.gpu",
    "bf16-agreement": "pets_core.bench.agreement",
    "true-dynamics": "pets_core.bench.true_dynamics",
    "replay": "pets_core.bench.replay",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(
            f"usage: python -m pets_core.bench {{{','.join(COMMANDS)}}} [options]", file=sys.stderr
        )
        return 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
