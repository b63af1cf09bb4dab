"""MkDocs hooks (mkdocs.yml `hooks:`): the site shows generated numbers, never retyped ones.

Directives, each an HTML comment alone on a line of a page (invisible where the page is read on
its own, e.g. on GitHub):

* ``<!-- include: PATH -->`` - the file PATH (relative to the repository root), or
  ``<!-- include: PATH#NAME -->`` - the block of PATH between ``<!-- NAME: start -->`` and
  ``<!-- NAME: end -->`` (e.g. the README's generated fidelity table).
* ``<!-- config-reference -->`` - every leaf of ``config/pets/default.yaml`` with its value, the
  per-env values of ``config/envs/<env>.yaml`` and the meaning from the YAML's own comment; then
  every key of the pipeline schema ``workflow/schemas/config.schema.yaml``.
* ``<!-- trial-returns: ENV -->`` - the per-trial returns of each committed fidelity run of ENV
  (``results/reference/fidelity/ENV/PE-TSinf-CEM/seed*/metrics.csv``).

A directive that names a missing file or block fails the build (one line naming it).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DIRECTIVE = re.compile(r"^<!-- (include|config-reference|trial-returns)(?::\s*(\S+))? -->$", re.M)
ENVS = ("cartpole", "reacher", "pusher", "halfcheetah")  # the column order of the paper's table


class DocsError(Exception):
    """A directive that cannot be expanded (mkdocs reports it and stops)."""


def on_page_markdown(markdown: str, page, config, files) -> str:  # the mkdocs hook signature
    return DIRECTIVE.sub(lambda m: expand(m[1], m[2]), markdown)


def expand(kind: str, arg: str | None) -> str:
    if kind == "include":
        return include(arg or "")
    if kind == "config-reference":
        return config_reference()
    return trial_returns(arg or "")


# ----------------------------------------------------------------------------- include
def include(target: str) -> str:
    path, _, name = target.partition("#")
    file = ROOT / path
    if not file.is_file():
        raise DocsError(f"include: {path} does not exist")
    text = file.read_text()
    if not name:
        return text
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    if start not in text or end not in text:
        raise DocsError(f"include: {path} has no block {start} ... {end}")
    return text.split(start, 1)[1].split(end, 1)[0].strip()


# ----------------------------------------------------------------------------- config reference
def yaml_leaves(path: Path) -> list[tuple[str, str, str]]:
    """(dotted key, value as written, comment) for every key of a block-style YAML file, in file
    order; a comment continued on the following comment-only lines is joined."""
    rows: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    key_line = re.compile(r"^(\s*)([A-Za-z_][\w]*):\s*([^#]*?)\s*(?:#\s?(.*))?$")
    for line in path.read_text().splitlines():
        if (m := re.match(r"^(\s*)#\s?(.*)$", line)) and rows and m[1]:
            key, value, comment = rows[-1]  # an indented comment-only line continues the last
            rows[-1] = (key, value, f"{comment} {m[2]}".strip())
            continue
        m = key_line.match(line)
        if not m:
            continue
        indent = len(m[1])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([k for _, k in stack] + [m[2]])
        rows.append((key, m[3], (m[4] or "").strip()))
        if not m[3]:
            stack.append((indent, m[2]))
    return rows


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _cell(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"`{text}`".replace("|", "\\|")


def config_reference() -> str:
    defaults = ROOT / "config/pets/default.yaml"
    per_env = {
        env: flatten(yaml.safe_load((ROOT / f"config/envs/{env}.yaml").read_text()) or {})
        for env in ENVS
    }
    header = "| key | default | " + " | ".join(ENVS) + " | meaning |"
    lines = [header, "|" + "---|" * (len(ENVS) + 3)]
    for key, value, comment in yaml_leaves(defaults):
        if not value:  # a section: its comment, if any, as a row of its own
            if comment:
                lines.append(f"| **`{key}`** | | {' | ' * (len(ENVS) - 1)} | {comment} |")
            continue
        envs = [_cell(per_env[e][key]) if key in per_env[e] else "" for e in ENVS]
        meaning = comment.replace("|", "\\|")
        lines.append(f"| `{key}` | `{value}` | {' | '.join(envs)} | {meaning} |")
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    lines += ["", "## The pipeline's matrix", ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, node in schema_keys(schema["properties"]):
        kind = node.get("type", "")
        kind = " \\| ".join(kind) if isinstance(kind, list) else kind
        if "enum" in node:
            kind = " \\| ".join(f"`{v}`" for v in node["enum"])
        default = _cell(node["default"]) if "default" in node else ""
        meaning = " ".join(str(node.get("description", "")).split()).replace("|", "\\|")
        lines.append(f"| `{key}` | {kind} | {default} | {meaning} |")
    return "\n".join(lines)


def schema_keys(properties: dict, prefix: str = "") -> list[tuple[str, dict]]:
    rows = []
    for key, node in properties.items():
        rows.append((f"{prefix}{key}", node))
        if isinstance(node.get("properties"), dict):
            rows += schema_keys(node["properties"], f"{prefix}{key}.")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and isinstance(extra.get("properties"), dict):
            rows += schema_keys(extra["properties"], f"{prefix}{key}.<name>.")
    return rows


# ----------------------------------------------------------------------------- fidelity runs
def trial_returns(env: str) -> str:
    seeds = sorted(
        (ROOT / "results/reference/fidelity" / env / "PE-TSinf-CEM").glob("seed*/metrics.csv"),
        key=lambda p: int(p.parent.name.removeprefix("seed")),
    )
    if not seeds:
        raise DocsError(f"trial-returns: no committed fidelity run of {env}")
    returns = {}
    for path in seeds:
        with path.open() as f:
            rows = csv.DictReader(f)
            returns[path.parent.name] = {int(r["iteration"]): float(r["return"]) for r in rows}
    trials = sorted({i for r in returns.values() for i in r})
    lines = ["| trial | " + " | ".join(returns) + " |", "|---" * (len(returns) + 1) + "|"]
    for i in trials:
        cells = [f"{r[i]:.1f}" if i in r else "" for r in returns.values()]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
