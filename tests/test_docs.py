"""The documentation stays true: the site builds strictly, the README stays a front door, the
configuration reference names every key, and the numbers the docs state about the matrix are the
dry run's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.workflow import REPO, copy_workflow, job_counts, snakemake

DOCS = REPO / "docs"


def flatten(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            keys += flatten(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mkdocs build --strict` (what CI runs): a broken link, anchor or include fails it."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        "mkdocs build --strict failed (install the docs extra: pip install -e '.[docs]'):\n"
        + result.stdout[-3000:]
        + result.stderr[-3000:]
    )
    return out


def text_of(html: Path) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html.read_text()).split())


def test_site_builds_strictly_with_every_page(site: Path) -> None:
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    for entry in nav:
        (page,) = entry.values()
        built = site / ("index.html" if page == "index.md" else f"{Path(page).stem}/index.html")
        assert built.is_file(), f"{page} was not built"
        html = built.read_text()
        for directive in ("<!-- include:", "<!-- config-reference", "<!-- trial-returns"):
            assert directive not in html, f"{page}: {directive} not expanded"


def test_the_fidelity_page_shows_the_readmes_generated_table(site: Path) -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- fidelity-table: start -->", 1)[1].split("<!-- fidelity-table:")[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    page = text_of(site / "fidelity/index.html")
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert " ".join(cells) in page, row


def test_the_fidelity_page_lists_every_committed_trial_return(site: Path) -> None:
    page = text_of(site / "fidelity/index.html")
    for metrics in sorted((REPO / "results/reference/fidelity").glob("*/*/seed*/metrics.csv")):
        for line in metrics.read_text().splitlines()[1:]:
            iteration, _, ret = line.split(",")[:3]
            assert f"{float(ret):.1f}" in page, (metrics, iteration)


def test_configuration_reference_names_every_key_with_its_meaning(site: Path) -> None:
    page = (site / "configuration/index.html").read_text()
    rows = {
        m[1]: m[2]
        for m in re.finditer(r"<tr>\s*<td><code>([^<]+)</code></td>(.*?)</tr>", page, re.S)
    }
    defaults = yaml.safe_load((REPO / "config/pets/default.yaml").read_text())
    for key in flatten(defaults):
        assert key in rows, f"{key} missing from the configuration reference"
        meaning = re.findall(r"<td>(.*?)</td>", rows[key], re.S)[-1]
        assert meaning.strip(), f"{key} has no meaning: add a comment beside it in default.yaml"
    for env in ("cartpole", "reacher", "pusher", "halfcheetah"):
        per_env = yaml.safe_load((REPO / f"config/envs/{env}.yaml").read_text())
        for key in flatten(per_env):
            assert key in rows, f"{key} of config/envs/{env}.yaml missing"
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    for key, node in schema["properties"].items():
        assert key in rows, f"pipeline key {key} missing"
        assert node.get("description"), f"pipeline key {key} has no description in the schema"


def test_readme_is_a_front_door() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    dated = [line for line in readme.splitlines() if re.search(r"\b20\d\d-\d\d-\d\d\b", line)]
    assert not dated, dated  # history goes to CHANGELOG.md
    for link in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", readme):
        assert (REPO / link).is_file(), link


def test_the_matrix_size_the_docs_state_is_the_dry_runs(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "work")
    result = snakemake("-n", "--cores", "1", cwd=work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    total = job_counts(result.stdout)["train"]
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    per_env = total // len(config["envs"])
    e_runs = {
        (v, s)
        for group in config["experiments"].values()
        for v in group["variants"]
        for s in group["seeds"]
        if v.split("-")[1] == "E"
    }
    page = " ".join((DOCS / "reproducing.md").read_text().split())
    assert f"{per_env} runs per env, {total} in all" in page
    assert f"paper matrix ({per_env} runs)" in page
    assert f"counts {per_env - len(e_runs)} full-cost runs per env plus {len(e_runs)}" in page
