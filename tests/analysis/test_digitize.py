"""Digitizing published best-so-far PNGs: known curves drawn the way the published ones were
(matplotlib's default style, C0 / C1, a legend in the lower right) come back to within a fraction
of a pixel, trial by trial; the committed reference curves are what the digitizer makes."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from pets_core.analysis.digitize import (
    SOURCES,
    DigitizeError,
    digitize,
    read_png,
)
from pets_core.analysis.reference import load_reference

REFERENCE_YAML = Path(__file__).parents[2] / "config/reference_curves.yaml"


def _best_so_far(rng, n, low, high):
    """A non-decreasing series with a few jumps and long plateaus, like a single seed's."""
    jumps = rng.random(n) < 0.15
    steps = np.where(jumps, rng.uniform(0, 1, n) ** 2, 0.0)
    steps[0] = 0.0
    y = np.cumsum(steps)
    return low + (high - low) * y / max(y[-1], 1e-9)


def _published_style_png(path, source, series):
    """series: label -> values per trial, drawn as the port's plots drew them."""
    with plt.style.context("default"):  # whatever style other tests set
        fig, ax = plt.subplots(figsize=(6, 4), dpi=72)
        for label in ("PyTorch port", "original TF code"):  # C0 then C1, as published
            y = series[label]
            ax.plot(source.task_hor * np.arange(1, len(y) + 1), y, label=label)
        ax.set_xticks(source.xticks)
        ax.set_yticks(source.yticks)
        ax.set(title="Pusher", xlabel="Number of timestep", ylabel="Reward")
        ax.legend(loc="lower right")
        fig.savefig(path)
        plt.close(fig)


@pytest.mark.parametrize("env", ["pusher", "cartpole"])
def test_known_curves_come_back_trial_by_trial(env, tmp_path):
    source = SOURCES[env]
    n = 100 if env == "pusher" else 15
    lo, hi = min(source.yticks), max(source.yticks)
    rng = np.random.default_rng(3)
    series = {
        "original TF code": _best_so_far(rng, n, lo + 0.05 * (hi - lo), hi - 0.1 * (hi - lo)),
        "PyTorch port": _best_so_far(rng, n, lo + 0.15 * (hi - lo), hi - 0.05 * (hi - lo)),
    }
    _published_style_png(tmp_path / "plot.png", source, series)
    curves = {c.label: c for c in digitize(read_png(tmp_path / "plot.png"), source)}
    assert set(curves) == set(series)
    unit = (hi - lo) / 190  # about one pixel of the 6 x 4 in, 72 dpi axes in return units
    for label, truth in series.items():
        curve = curves[label]
        assert curve.env_steps == [source.task_hor * i for i in range(1, n + 1)]
        err = np.abs(np.array(curve.returns) - truth)
        # where the two lines overlap, the one drawn first is hidden: those trials are not checked
        visible = np.abs(series["original TF code"] - series["PyTorch port"]) > 4 * unit
        assert err[visible].max() < 1.0 * unit, (label, err[visible].max() / unit)
        assert curve.rms < 1.0 * unit


def test_a_png_without_the_published_axes_is_refused(tmp_path):
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=72)
        ax.plot([1, 2], [3, 4])
        fig.savefig(tmp_path / "other.png")
        plt.close(fig)
    with pytest.raises(DigitizeError, match="tick marks, expected 8 and 9"):
        digitize(read_png(tmp_path / "other.png"), SOURCES["pusher"])


def test_the_committed_reference_curves_are_one_value_per_trial():
    raw = yaml.safe_load(REFERENCE_YAML.read_text())
    assert list(raw) == ["curves"]  # the reported trials are pre-registered, not kept here
    curves = load_reference(REFERENCE_YAML)
    assert curves["halfcheetah"] == []
    for env, source in SOURCES.items():
        for label in ("original TF code", "PyTorch port"):
            points = [p for p in curves[env] if p["label"] == label]
            assert [p["trials"] for p in points] == list(range(1, len(points) + 1))
            assert [p["env_steps"] for p in points] == [
                source.task_hor * p["trials"] for p in points
            ]
    # best-so-far: the curves never fall by more than about two pixels (at worst at the first
    # vertex, under the line's end cap), though the fit does not know they are non-decreasing
    for env in SOURCES:
        for label in ("original TF code", "PyTorch port"):
            y = [p["return"] for p in curves[env] if p["label"] == label]
            assert np.diff(y).min() > -2.0, (env, label)
