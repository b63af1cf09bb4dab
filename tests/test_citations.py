"""Every citation in the code, tests, configs and workflow leads to a heading that exists.

``§cem`` cites the heading of docs/algorithm.md whose id is ``cem`` (the original algorithm, in
this project's words); ``fidelity#published-curves`` a heading of docs/fidelity.md. Citations of
files users do not have (the unpublished spec, notes outside the repository) are refused; run
``python docs/tools/rewrite_citations.py`` to turn old ones into headings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TREES = ("pets_core", "tests", "config", "workflow", "Snakefile")
SUFFIXES = {".py", ".yaml", ".yml", ".xml", ".smk", ".rst", ".md", ""}
PAGES = ("algorithm", "fidelity", "deviations", "reproducing", "benchmarks", "configuration")
SECTION_SIGN = re.compile(r"§([a-z][a-z0-9-]*)")
PAGE_ANCHOR = re.compile(rf"\b({'|'.join(PAGES)})#([a-z0-9-]+)")
LEGACY = re.compile(
    r"\bspec(?:'s)?\s+(?:sec\.|§)\s*\d|\bsec\.\s*\d|pets-original-spec|paper-and-users|/work/shared",
    re.IGNORECASE,
)


def heading_ids(page: str) -> set[str]:
    """The ids MkDocs gives the page's headings: an explicit ``{ #id }`` or the toc's slug."""
    ids = set()
    for line in (REPO / "docs" / f"{page}.md").read_text().splitlines():
        if not line.startswith("#"):
            continue
        if m := re.search(r"\{\s*#([\w-]+)\s*\}\s*$", line):
            ids.add(m[1])
        else:
            text = re.sub(r"[^\w\s-]", "", line.lstrip("#").strip().lower())
            ids.add(re.sub(r"[\s]+", "-", text))
    return ids


def sources() -> list[Path]:
    found = []
    for tree in TREES:
        path = REPO / tree
        for p in [path] if path.is_file() else sorted(path.rglob("*")):
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts:
                found.append(p)
    return found


def citations() -> list[tuple[str, str, str]]:
    """(file:line, page, heading id) of every citation."""
    out = []
    for path in sources():
        try:
            lines = path.read_text().splitlines()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(lines, 1):
            where = f"{path.relative_to(REPO)}:{n}"
            out += [(where, "algorithm", m[1]) for m in SECTION_SIGN.finditer(line)]
            out += [(where, m[1], m[2]) for m in PAGE_ANCHOR.finditer(line)]
    return out


def test_the_code_cites_the_algorithm_page() -> None:
    cited = citations()
    assert len([c for c in cited if c[1] == "algorithm"]) >= 50  # the rewrite kept them all
    missing = [c for c in cited if c[2] not in heading_ids(c[1])]
    assert not missing, "citations of headings that do not exist:\n" + "\n".join(map(str, missing))


def test_no_citation_of_files_users_do_not_have() -> None:
    legacy = []
    for path in sources():
        if path.resolve() == Path(__file__).resolve():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if LEGACY.search(line):
                legacy.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not legacy, "run python docs/tools/rewrite_citations.py:\n" + "\n".join(legacy)


@pytest.mark.parametrize("page", PAGES)
def test_heading_ids_are_unique(page: str) -> None:
    lines = (REPO / "docs" / f"{page}.md").read_text().splitlines()
    explicit = [m[1] for line in lines if (m := re.search(r"\{\s*#([\w-]+)\s*\}\s*$", line))]
    assert len(explicit) == len(set(explicit))
