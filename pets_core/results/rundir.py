"""The run directory: every file name, its completeness, and finding run directories.

One PETS run writes one directory (``results/<experiment>/runs/`` + :data:`RUN_PATH` in the
workflow, ``<logdir>/<timestamp>/`` from ``python -m pets_core.mbexp``)::

    run.json        identity (pets_core.results.identity) and settings fingerprint, written once
    config.yaml     resolved config (config.txt: the original's printout)
    checkpoint.pt   resume state after the last complete iteration (pets_core.results.checkpoint)
    logs.mat        the original's logs (pets_core.results.logs); metrics.csv one row/iteration
    model.pt        the model that acted last (+ model.mat / model.nns, the original's format)
    train_iter<i>/  rollout<j>.mp4 recorded episodes, predictions.mat, model.* (save_all_models)
    done.json       the completion marker (with the settings fingerprint): written last, atomically
    .lock           the writer's lock (pets_core.results.runlock): one writer at a time

A run is *complete* when done.json exists; any run with a logs.mat has results (possibly partial).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

RUN_PATH = "{env}/{variant}/seed{seed}"
"""Where a run of the job matrix lives under a runs root: the workflow's results/<experiment>/runs/,
a batch's --work, results/reference/fidelity/. Also the Snakemake wildcard pattern of rule train."""
RUN_PATH_RE = re.compile(r"(?P<env>[^/]+)/(?P<variant>[^/]+)/seed(?P<seed>\d+)/?$")
"""A path ending in :data:`RUN_PATH` -> env, variant, seed."""


def run_path(env: str, variant: str, seed: int) -> str:
    """("cartpole", "PE-TSinf-CEM", 3) -> "cartpole/PE-TSinf-CEM/seed3"."""
    return RUN_PATH.format(env=env, variant=variant, seed=seed)


def job_label(seeds: Sequence[int] | str) -> str:
    """A training job's name within its (env, variant), for its log and benchmark files
    (``{env}/{variant}/<label>.log``): one seed is its run's folder name, seed3; a group of seeds
    run in lockstep (workflow seeds_per_job) lists them, seeds1-2-3. A string is a Snakemake
    wildcard pattern ("{seed}") and stands for one seed."""
    if isinstance(seeds, str) or len(seeds) == 1:
        return f"seed{seeds if isinstance(seeds, str) else seeds[0]}"
    return "seeds" + "-".join(map(str, seeds))


def job_seeds(label: str) -> tuple[int, ...]:
    """:func:`job_label`'s inverse: "seed3" -> (3,), "seeds1-2-3" -> (1, 2, 3)."""
    match = re.fullmatch(r"seed(\d+)|seeds(\d+(?:-\d+)+)", label)
    if match is None:
        raise ValueError(f"{label!r} is not a training job's name (seed3, seeds1-2-3)")
    return tuple(int(s) for s in (match[1] or match[2]).split("-"))


RUN_JSON = "run.json"
CONFIG_YAML = "config.yaml"
CONFIG_TXT = "config.txt"
CHECKPOINT_PT = "checkpoint.pt"
LOGS_MAT = "logs.mat"
METRICS_CSV = "metrics.csv"
MODEL_PT = "model.pt"
MODEL_MAT = "model.mat"
MODEL_NNS = "model.nns"
PREDICTIONS_MAT = "predictions.mat"
DONE_JSON = "done.json"
LOCK = ".lock"
"""Held by the one process writing the run (pets_core.results.runlock); hidden, never uploaded."""
REFERENCE_FILES = (LOGS_MAT, METRICS_CSV, CONFIG_YAML, DONE_JSON)
"""What a committed reference run keeps (results/reference/, .gitignore): no models, no checkpoints."""

ARTIFACTS = (
    LOGS_MAT,
    METRICS_CSV,
    CONFIG_YAML,
    CONFIG_TXT,
    RUN_JSON,
    DONE_JSON,
    MODEL_PT,
    MODEL_MAT,
    MODEL_NNS,
)
"""The top-level files a run shows in MLflow, in this order (not checkpoint.pt: resume state)."""
FIGURE_EXTS = ("png", "pdf", "svg")
SKIPPED_FOLDERS = ("mlartifacts", "mlruns")
"""MLflow artifact stores: they hold uploaded copies of run dirs (done.json included)."""


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths and state of one run directory (nothing is read or created on construction)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------------- files
    def iter_dir(self, iteration: int) -> Path:
        """train_iter<i>/ of MPC iteration i (1-based)."""
        return self.path / f"train_iter{iteration}"

    def video(self, iteration: int, episode: int = 0) -> Path:
        """train_iter<i>/rollout<j>.mp4: recorded episode j of iteration i (1-based)."""
        return self.iter_dir(iteration) / f"rollout{episode}.mp4"

    def videos(self) -> list[Path]:
        """Every recorded episode, in iteration order, then by name."""
        return sorted(self.path.glob("train_iter*/rollout*.mp4"), key=_iteration_order)

    def stale_temp_files(self) -> list[Path]:
        """Temp files of atomic writes that a kill interrupted (safe to delete before resuming)."""
        return [*self.path.glob(".*.tmp*"), *self.path.glob("train_iter*/.*.tmp*")]

    def artifacts(self) -> list[tuple[Path, str | None]]:
        """(file, artifact folder) of everything the run shows in MLflow, in a fixed order.

        :data:`ARTIFACTS` at the top level; figures (``*.png``/``*.pdf``/``*.svg`` of the run dir)
        under ``figures/``; recorded episodes (``train_iter<i>/*.mp4``) under
        ``videos/train_iter<i>/``. Hidden (temp) files never.
        """
        found: list[tuple[Path, str | None]] = [(self.path / n, None) for n in ARTIFACTS]
        for ext in FIGURE_EXTS:
            found += [(p, "figures") for p in sorted(self.path.glob(f"*.{ext}"))]
        for video in sorted(self.path.glob("train_iter*/*.mp4"), key=_iteration_order):
            found.append((video, f"videos/{video.parent.name}"))
        return [(p, folder) for p, folder in found if p.is_file() and not p.name.startswith(".")]

    # ------------------------------------------------------------------------- state
    @property
    def is_complete(self) -> bool:
        """done.json exists: the run finished (it is written last)."""
        return (self.path / DONE_JSON).is_file()

    @property
    def has_logs(self) -> bool:
        """logs.mat exists: at least one MPC iteration's results (complete or not)."""
        return (self.path / LOGS_MAT).is_file()

    @property
    def is_resumable(self) -> bool:
        """A run was started here (config.yaml + checkpoint.pt): same arguments resume it."""
        return (self.path / CONFIG_YAML).exists() and (self.path / CHECKPOINT_PT).exists()

    def done(self) -> dict[str, Any] | None:
        """done.json's content (env, variant, seed, iterations, final_best_so_far, wall_s, ...);
        None when absent. A damaged one raises :class:`pets_core.results.reader.DamagedFile`."""
        from pets_core.results.reader import read_done

        return read_done(self.path)


def find_run_dirs(roots: Iterable[Path | str], *, complete_only: bool) -> list[Path]:
    """Run directories under ``roots``, sorted per root, searched recursively.

    ``complete_only=True``: those holding done.json (finished runs: ingest, summaries);
    ``complete_only=False``: those holding logs.mat (any run with results, partial ones included:
    the analysis marks them). A root that is itself a run directory is returned alone; hidden
    folders and MLflow artifact stores (:data:`SKIPPED_FOLDERS`) are never searched.
    """
    marker = DONE_JSON if complete_only else LOGS_MAT
    out: list[Path] = []
    for root in roots:
        root = Path(root)
        if (root / marker).is_file():
            out.append(root)
            continue
        found = []
        for parent, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith("."))
            if marker in files:
                found.append(Path(parent))
        out += sorted(found)
    return out


def _iteration_order(path: Path) -> tuple[int, str]:
    digits = path.parent.name.removeprefix("train_iter")
    return (int(digits) if digits.isdigit() else 0, path.name)
