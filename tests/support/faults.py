"""Damage for tests: an alias bomb, bytes flipped or cut off a real file."""

from __future__ import annotations

from pathlib import Path

BOMB = "envs:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
"""10^9 values in 700 bytes: each level repeats the previous one ten times."""


def flip_bytes(path: Path, n: int = 64, at: float = 0.5) -> None:
    """Invert n bytes starting at fraction ``at`` of the file (the size stays)."""
    data = bytearray(Path(path).read_bytes())
    start = int(len(data) * at)
    for i in range(start, min(start + n, len(data))):
        data[i] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    """Keep the first fraction ``keep`` of the file."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
