"""Model and video files of a run directory, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from pets_core import models
from pets_core.results.files import atomic_path
from pets_core.results.rundir import MODEL_PT


def save_model(model, directory: Path) -> None:
    """model.pt (bit-exact, ours) + model.mat / model.nns (the original's format), atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / MODEL_PT) as tmp:
        models.save_model(model, tmp)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".export-") as tmp_dir:
        models.export_original(model, Path(tmp_dir))
        for produced in Path(tmp_dir).iterdir():
            os.replace(produced, directory / produced.name)


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    with atomic_path(path) as tmp:
        imageio.mimwrite(tmp, frames, fps=fps, codec="libx264", format="FFMPEG", macro_block_size=8)
