"""Pins live in one place (pyproject.toml); every other install path must agree with it."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    reqs = project["dependencies"] + [r for extra in extras for r in extra]
    return dict(_split(r) for r in reqs)


def _split(req: str) -> tuple[str, str]:
    name, version = req.split("==")
    return re.sub(r"\[.*\]", "", name).lower(), version


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.]*", req), req


def test_environment_yml_pins_equal_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = dict(_split(r) for r in pip_section if "==" in r)
    assert conda_pins == _pyproject_pins()


def test_lock_file_agrees_with_pyproject():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            lock[name.lower().replace("_", "-")] = version
    for name, version in _pyproject_pins().items():
        assert lock.get(name) == version, f"{name}: lock {lock.get(name)} != pyproject {version}"


def test_ruff_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "pets_core", "tests", "workflow"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_pets_core_and_analysis_does_not_load_torch():
    # the workflow's table and figure jobs import pets_core.analysis: no 2 s torch import there
    code = (
        "import sys, gymnasium, pets_core, pets_core.analysis.aggregate, pets_core.analysis.plots\n"
        "assert 'pets/Cartpole-v0' in gymnasium.registry\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
