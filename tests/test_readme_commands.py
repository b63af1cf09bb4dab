"""Every command in the README's code blocks still works: the cheap ones run, the expensive ones
are dry-run (Snakemake: `-n`; the runner: its arguments parsed and its config built, which is
where a wrong -ca / -o fails). A command this file does not know fails the test, so a new README
command must come with its check."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.workflow import REPO, copy_workflow, job_counts, snakemake

from pets_core import config as config_mod
from pets_core.cli import mbexp, render

SKIPPED = {
    "bash .ci/install": "the install itself (CI runs it before these tests)",
    ". .venv/bin/activate": "shell state",
    ".venv/bin/python -m pytest": "the test suite (this test is part of it)",
    "xdg-open": "opens a desktop browser",
}


def readme_commands() -> list[str]:
    """Each command of the README's bash blocks: continuations joined, comments dropped, `&&`
    chains split."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_its_commands() -> None:
    joined = "\n".join(COMMANDS)
    assert "snakemake --cores all --configfile config/quick.yaml" in joined
    assert ".venv/bin/python -m pytest" in joined
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command: str, tmp_path: Path) -> None:
    if any(command.startswith(prefix) for prefix in SKIPPED):
        return
    argv = shlex.split(command)
    if argv[0] == "snakemake":
        dry_run_snakemake(argv[1:], tmp_path)
    elif argv[:3] == ["python", "-m", "pets_core.mbexp"]:
        args = mbexp.build_parser().parse_args(argv[3:])  # exits 2 on a bad argument
        for seed in mbexp.parse_seeds(args):  # --seed N or --seeds N,N,...
            config_mod.load_config(args.env, args.ca, args.o, seed=seed)
    elif argv[:3] == ["python", "-m", "pets_core.render"]:
        render.build_parser().parse_args(argv[3:])
    elif argv[0].endswith("mlflow") and argv[1] == "ui":
        serve_mlflow_ui(argv[1:], tmp_path)
    else:
        pytest.fail(f"README command without a check in {Path(__file__).name}: {command}")


def dry_run_snakemake(args: list[str], tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "work")
    for name in ("results/reference",):  # committed inputs a README command reads
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).symlink_to(REPO / name)
    result = snakemake(*args, "-n", cwd=work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert job_counts(result.stdout), result.stdout[-3000:]  # it planned jobs


def serve_mlflow_ui(args: list[str], tmp_path: Path) -> None:
    """The README's `mlflow ui` on a free port: it answers, and its page is MLflow's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    (tmp_path / "results").mkdir()  # where the README's store goes after the main job
    proc = subprocess.Popen(
        [str(mlflow), *args, "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its server workers share its process group
    )
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine: migrations take a while
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert "MLflow" in page.read().decode()
                break
            except OSError:
                assert proc.poll() is None, "mlflow ui exited"
                assert time.monotonic() < deadline, "mlflow ui did not answer in 300 s"
                time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
