"""Where two configs differ, by dotted -o path (a resumed run's saved config vs the asked one)."""

from __future__ import annotations

from pets_core.config.codec import flatten
from pets_core.config.tree import PetsConfig


def first_difference(a: PetsConfig, b: PetsConfig) -> str | None:
    """The first leaf (sorted by path) where a and b differ, as "path: a != b"; None if equal."""
    fa, fb = flatten(a), flatten(b)
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            return f"{key}: {fa.get(key)!r} != {fb.get(key)!r}"
    return None
