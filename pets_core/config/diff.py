"""Where two configs differ, by dotted -o path (a resumed run's saved config vs the asked one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pets_core.config.codec import flatten
from pets_core.config.tree import PetsConfig


def first_difference(a: PetsConfig, b: PetsConfig) -> str | None:
    """The first leaf (sorted by path) where a and b differ, as "path: a != b"; None if equal."""
    return first_key_difference(flatten(a), flatten(b))


def first_key_difference(fa: Mapping[str, Any], fb: Mapping[str, Any]) -> str | None:
    """The first dotted path (sorted) whose values differ, as "path: a != b"; None if equal."""
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            return f"{key}: {fa.get(key)!r} != {fb.get(key)!r}"
    return None
