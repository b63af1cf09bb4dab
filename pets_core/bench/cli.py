"""The benchmarks' command lines: bad input is one line naming the argument, exit status 2.

Same rule as the runner (pets_core.mbexp): no usage block, no traceback, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise UsageError(message)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse ``type``: an integer >= ``minimum`` (argparse prefixes the argument's name)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def int_list(minimum: int) -> Callable[[str], list[int]]:
    """argparse ``type``: comma-separated integers, each >= ``minimum`` (e.g. ``2000,10000``)."""
    one = int_at_least(minimum)

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",")]
        try:
            return [one(p) for p in parts]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated integers >= {minimum} (e.g. 2000,10000), got {text!r}"
            ) from None

    return parse


def choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """argparse ``type``: comma-separated names from ``choices``, no repeats."""

    def parse(text: str) -> list[str]:
        names = [p.strip() for p in text.split(",")]
        bad = [n for n in names if n not in choices]
        if bad or len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(
                f"must be comma-separated names from {', '.join(choices)} without repeats, "
                f"got {text!r}"
            )
        return names

    return parse


def run(prog: str, main: Callable[[], int]) -> int:
    """Call ``main``; a UsageError becomes ``prog: error: message`` on stderr and exit status 2."""
    try:
        return main()
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
