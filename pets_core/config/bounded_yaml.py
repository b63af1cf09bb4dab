"""YAML read with limits: every config file this project parses goes through :func:`load_yaml`.

``yaml.safe_load`` runs no code, but an alias bomb (``a: &a [x, x]``, ``b: &b [*a, *a]``, ... ten
levels deep) is a few hundred bytes that stands for 10^8 values: loading it is cheap (aliases are
shared), but anything that walks the result (schema validation, merging, printing) hangs and
grows without bound. So, before anything is built from a document:

* its text is at most :data:`MAX_BYTES`;
* it holds at most :data:`MAX_ALIASES` aliases;
* expanded (every alias replaced by what it names), it has at most :data:`MAX_NODES` values.

Each limit is one :class:`ConfigError` line naming the file. :func:`check_size` applies the last
limit to an already-loaded object (Snakemake parses ``--configfile`` itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pets_core.config.errors import ConfigError

MAX_BYTES = 1_000_000
"""A pipeline config is a few kB; config/envs/*.yaml under 2 kB."""
MAX_ALIASES = 1_000
MAX_NODES = 100_000
"""Expanded values (scalars, lists, mappings); the paper's whole matrix config has under 1,000."""


def load_yaml(text: str, source: str | Path) -> Any:
    """Parse one YAML document within the limits; ``source`` names it in every error."""
    if len(text) > MAX_BYTES:
        raise ConfigError(
            f"{source}: {len(text):,} characters; a config may have {MAX_BYTES:,} at most"
        )
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded(node, _node_children, source)
        return loader.construct_document(node)
    except _TooBig as err:
        raise ConfigError(f"{source}: {err}; a config may have that many at most") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML ({_one_line(err)})") from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> Any:
    """:func:`load_yaml` of a file's text; an unreadable file is a ConfigError naming it."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path} ({getattr(err, 'strerror', None) or err})") from None
    return load_yaml(text, path)


def check_size(data: Any, source: str) -> None:
    """The expanded-size limit on a loaded object (shared sub-objects count once per use)."""
    _check_expanded(data, _object_children, source)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops composing after MAX_ALIASES aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooBig(f"more than {MAX_ALIASES:,} YAML aliases")
        return super().compose_node(parent, index)


class _TooBig(yaml.YAMLError):
    pass


def _node_children(node: Any) -> Iterable[Any]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return ()


def _object_children(obj: Any) -> Iterable[Any]:
    if isinstance(obj, Mapping):
        return [part for pair in obj.items() for part in pair]
    if isinstance(obj, list | tuple):
        return obj
    return ()


def _check_expanded(root: Any, children: Callable[[Any], Iterable[Any]], source: Any) -> None:
    """Count root's values as if every shared part were copied (each part's count memoised, so
    this is linear in the distinct parts); a part that contains itself is refused too."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(item: Any) -> int:
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in busy:
            raise ConfigError(f"{source}: a YAML alias refers to itself (an endless config)")
        busy.add(key)
        total = 1
        for child in children(item):
            total += size(child)
            if total > MAX_NODES:
                raise ConfigError(
                    f"{source}: expands to more than {MAX_NODES:,} values (YAML aliases of "
                    "aliases?); a config may have that many at most"
                )
        busy.discard(key)
        sizes[key] = total
        return total

    size(root)


def _one_line(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem
