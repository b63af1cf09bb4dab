"""Rewrite the code's citations of the unpublished spec into headings of docs/algorithm.md.

The code, tests and configs cited sections of a reference file that is not in the repository
("spec sec. 5.2", "spec §4", "pets-original-spec.md sec. 1", "paper-and-users.md sec. 1.3").
Each becomes a citation of a heading users have: ``§cem`` is the heading of docs/algorithm.md
whose id is ``cem`` (several: ``§variants, §propagation``); ``fidelity#published-curves`` a
heading of docs/fidelity.md. tests/test_citations.py checks that every such citation resolves.

Idempotent; run from the repository root after merging branches that add old citations:

    python docs/tools/rewrite_citations.py          # rewrites in place, lists the files
    python docs/tools/rewrite_citations.py --check  # exit 1 if anything is left to rewrite
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("pets_core", "tests", "config", "workflow", "Snakefile")
SUFFIXES = {".py", ".yaml", ".yml", ".xml", ".smk", ".rst", ".md", ""}
SELF = Path(__file__).resolve()

# old section number of the spec -> heading id of docs/algorithm.md
SECTION = {
    "0": "env-base",
    "1": "envs",
    "1.1": "cartpole",
    "1.2": "reacher",
    "1.3": "pusher",
    "1.4": "halfcheetah",
    "2": "settings",
    "2.1": "settings-table",
    "2.2": "processing",
    "2.3": "costs",
    "2.4": "data",
    "3": "model",
    "3.1": "network",
    "3.2": "loss",
    "3.3": "training",
    "3.4": "predict",
    "3.5": "variants",
    "3.6": "model-files",
    "4": "propagation",
    "5": "mpc",
    "5.1": "action-selection",
    "5.2": "cem",
    "5.3": "random",
    "5.4": "ctrl-logs",
    "6": "experiment",
    "6.1": "loop",
    "6.2": "logs-mat",
    "6.3": "cli",
    "6.4": "render",
    "6.5": "plotter",
    "7": "quirks",
    "7.1": "quirks",
    **{f"7.1.{n}": f"quirk-{n}" for n in range(1, 17)},
    "7.2": "port",
    "8": "porting",
    "8.2": "pusher-object",
    "9": "checks",
}
RANGES = {"1.1-1.4": "envs", "6.1-6.5": "experiment"}  # a whole section; other ranges: each end

# citations that do not follow the pattern below (checked in this order)
LITERAL = [
    ("pets-original-spec.md sec. 0, 1, 8, 9", "§env-base, §envs, §porting, §checks"),
    (
        "Written from /work/shared/reference/pets-original-spec.md (",
        "Written from docs/algorithm.md (",
    ),
    ("paper-and-users.md sec. 1.3", "fidelity#published-curves"),
    ("paper-and-users.md sec. 1.4", "fidelity#pusher"),
    (" (STYLE sec. 6)", ""),
    ("from the\n     spec's numbers.", "from the\n     original's numbers."),
    ("from the spec's numbers.", "from the original's numbers."),
    ("the spec's reset noise", "the original's reset noise"),
    ("the spec's numbers (", "the original's numbers ("),
    ("the spec's network", "the original's network"),
    ("typed in here from the spec", "typed in here from docs/algorithm.md"),
    ("the spec quotes", "docs/algorithm.md quotes"),
    ("# spec cost of the obs", "# the original's cost of the obs"),
    ("the spec takes", "the algorithm page takes"),
]

NUM = r"\d+(?:\.\d+)*(?:-\d+(?:\.\d+)*)?"
SEP = r"(?:,\s*|\s*/\s*|\s+and\s+)"
CITATION = re.compile(
    rf"(?:\b[Ss]pec(?:'s)?\s+)?(?:sec\.|§)\s*(?P<nums>{NUM}(?:{SEP}(?:sec\.\s*|§)?{NUM})*)"
)


def anchors(nums: str) -> str:
    parts = re.split(rf"({SEP})", nums)
    out = []
    for part in parts:
        if re.fullmatch(SEP, part):
            out.append(part)
            continue
        number = re.sub(r"^(?:sec\.\s*|§)", "", part)
        if number in RANGES:
            out.append(f"§{RANGES[number]}")
        elif "-" in number:
            first, last = number.split("-")
            out.append(f"§{SECTION[first]}, §{SECTION[last]}")
        else:
            if number not in SECTION:
                raise KeyError(f"no heading for section {number}")
            out.append(f"§{SECTION[number]}")
    return "".join(out)


def rewrite(text: str) -> str:
    for old, new in LITERAL:
        text = text.replace(old, new)
    return CITATION.sub(lambda m: anchors(m["nums"]), text)


def files() -> list[Path]:
    found = []
    for tree in TREES:
        path = ROOT / tree
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        found += [
            p
            for p in candidates
            if p.is_file()
            and p.suffix in SUFFIXES
            and p.resolve() != SELF
            and "__pycache__" not in p.parts
        ]
    return found


def main(argv: list[str]) -> int:
    check = "--check" in argv
    changed = []
    for path in files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite(text)
        if new != text:
            changed.append(path.relative_to(ROOT))
            if not check:
                path.write_text(new)
    for path in changed:
        print(("left to rewrite: " if check else "rewrote ") + str(path))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
