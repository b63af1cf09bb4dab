"""Published best-so-far curves digitized from their PNGs: one value per trial, fit to the pixels.

The only curves of the original TF code are two lines in each of the PyTorch port's
``graphs/{cartpole,reacher,pusher}.png`` (quanvuong/handful-of-trials-pytorch @ 672d32f; matplotlib
default style: the port in C0 blue, the original in C1 orange). Read by eye, their steps land a
trial early or late: on reacher and pusher the original's curve jumps at trial 18 (2,700 steps), and
a reading "at 2,600 steps" takes the value after the jump for trial 17.

Here each curve is a polyline through one vertex per trial, ``(task_hor * i, y_i)``, i = 1..N, as
the port's plots draw a best-so-far series against env steps (the first vertex at one task horizon).
The axes come from the tick marks (pixel positions of the printed tick labels' values). For every
pixel column the line covers, its top and bottom edge are the polyline's values a little right and
left of the column centre (the line is non-decreasing), less half the line's thickness; all columns
together over-determine the N vertex values, found by least squares with the column half-width and
a sub-pixel x offset of the drawn line (shared by the curves of one PNG) chosen to minimise the
residual. The residual (RMS, return units) is reported per curve: about half a pixel.

``python -m pets_core.analysis.digitize --png-dir DIR [--out config/reference_curves.yaml]``, DIR
holding the three PNGs, writes the reference curves file the figures and the fidelity table read.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOURCE = "quanvuong/handful-of-trials-pytorch @ 672d32f, graphs/{env}.png"
WHITE = np.array([255.0, 255.0, 255.0])
CURVE_COLOURS = {"original TF code": (255, 127, 14), "PyTorch port": (31, 119, 180)}
"""matplotlib's C1 and C0 (the published PNGs' legends list the port first)."""


@dataclass(frozen=True)
class Source:
    task_hor: int  # the paper's, env steps per trial
    xticks: tuple[float, ...]  # values printed under the x tick marks, left to right
    yticks: tuple[float, ...]  # values printed beside the y tick marks, top to bottom


SOURCES = {
    "cartpole": Source(200, (500, 1000, 1500, 2000, 2500, 3000), tuple(range(175, -1, -25))),
    "reacher": Source(150, tuple(range(0, 14001, 2000)), tuple(range(-25, -226, -25))),
    "pusher": Source(150, tuple(range(0, 14001, 2000)), tuple(range(-60, -221, -20))),
}


@dataclass(frozen=True)
class Curve:
    label: str
    env_steps: list[int]  # task_hor * (1..N)
    returns: list[float]  # the fitted vertex values
    rms: float  # residual of the fit, return units


class DigitizeError(ValueError):
    """A PNG that does not look like the published plots (axes, ticks or curves not found)."""


def read_png(path: Path | str) -> np.ndarray:
    """RGB pixels [H, W, 3] as floats 0..255."""
    import matplotlib.image as mpimg

    image = mpimg.imread(str(path))
    if image.ndim != 3 or image.shape[2] < 3:
        raise DigitizeError(f"{path}: not an RGB(A) image")
    rgb = image[:, :, :3].astype(float)
    return rgb * 255.0 if rgb.max() <= 1.0 else rgb


def axes_calibration(rgb: np.ndarray, source: Source):
    """(frame (top, bottom, left, right) in pixels, x(col) and y(row) as linear maps)."""
    dark = rgb.max(axis=2) < 100
    rows = np.flatnonzero(dark.sum(1) >= 0.9 * dark.sum(1).max())
    cols = np.flatnonzero(dark.sum(0) >= 0.9 * dark.sum(0).max())
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    ytick = np.flatnonzero(dark[top : bottom + 1, left - 2]) + top  # outward tick marks
    xtick = np.flatnonzero(dark[bottom + 2, left : right + 1]) + left
    if len(xtick) != len(source.xticks) or len(ytick) != len(source.yticks):
        raise DigitizeError(
            f"found {len(xtick)} x and {len(ytick)} y tick marks, expected "
            f"{len(source.xticks)} and {len(source.yticks)}"
        )
    fx = np.polyfit(xtick, source.xticks, 1)
    fy = np.polyfit(ytick, source.yticks, 1)
    return (top, bottom, left, right), np.poly1d(fx), np.poly1d(fy)


def curve_masks(rgb: np.ndarray, frame) -> dict[str, np.ndarray]:
    """Per label, the pixels inside the axes (legend excluded) drawn in its colour: each pixel is
    fitted as white minus a mix of the two colours' offsets from white (anti-aliasing, and one line
    drawn over the other where they meet); a curve owns the pixels where its share is >= 0.2."""
    top, bottom, left, right = frame
    inside = np.zeros(rgb.shape[:2], bool)
    inside[top + 1 : bottom, left + 1 : right] = True
    grey = (np.ptp(rgb, axis=2) < 1) & (rgb[:, :, 0] > 190) & (rgb[:, :, 0] < 225) & inside
    if grey.any():  # the legend's frame: drop its box (it holds short lines in both colours)
        gy, gx = np.nonzero(grey)
        inside[gy.min() : gy.max() + 1, gx.min() : gx.max() + 1] = False
    directions = np.array(
        [WHITE - np.asarray(c, float) for c in CURVE_COLOURS.values()]
    ).T  # [3, 2]
    delta = (WHITE - rgb).reshape(-1, 3)  # [pixels, 3]
    shares, *_ = np.linalg.lstsq(directions, delta.T, rcond=None)  # [2, pixels]
    residual = np.linalg.norm(delta - (directions @ shares).T, axis=1)
    fits = (residual < 25).reshape(rgb.shape[:2]) & inside
    return {
        label: fits & (shares[k].reshape(rgb.shape[:2]) >= 0.2)
        for k, label in enumerate(CURVE_COLOURS)
    }


def column_edges(mask: np.ndarray, x_of, y_of):
    """Per pixel column with line pixels: (x centre, y of the top edge, y of the bottom edge)."""
    xs, tops, bottoms = [], [], []
    for col in np.flatnonzero(mask.any(axis=0)):
        rows = np.flatnonzero(mask[:, col])
        xs.append(x_of(col))
        tops.append(y_of(rows.min() - 0.5))
        bottoms.append(y_of(rows.max() + 0.5))
    return np.array(xs), np.array(tops), np.array(bottoms)


def _interp_weights(u: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """[len(u), N]: linear interpolation of the vertex values at u (clamped to the ends)."""
    u = np.clip(u, vertices[0], vertices[-1])
    j = np.clip(np.searchsorted(vertices, u) - 1, 0, len(vertices) - 2)
    frac = (u - vertices[j]) / (vertices[j + 1] - vertices[j])
    weights = np.zeros((len(u), len(vertices)))
    weights[np.arange(len(u)), j] = 1 - frac
    weights[np.arange(len(u)), j + 1] = frac
    return weights


def _solve(edges, vertices, offset, half_width, thickness):
    """Vertex values from the columns' edges; a weak pull of each vertex toward its neighbours
    (weight 1e-3) only decides vertices that no visible column sees (a line hidden by the other)."""
    xs, tops, bottoms = edges
    a = np.vstack(
        [
            _interp_weights(xs + offset + half_width, vertices),
            _interp_weights(xs + offset - half_width, vertices),
        ]
    )
    b = np.concatenate([tops - thickness, bottoms + thickness])
    smooth = 1e-3 * (np.eye(len(vertices), k=1) - np.eye(len(vertices)))[:-1]
    y, *_ = np.linalg.lstsq(np.vstack([a, smooth]), np.append(b, np.zeros(len(smooth))), rcond=None)
    return y, float(np.sqrt(np.mean((a @ y - b) ** 2)))


def digitize(rgb: np.ndarray, source: Source) -> list[Curve]:
    """The PNG's curves, one value per trial (see the module docstring)."""
    frame, x_of, y_of = axes_calibration(rgb, source)
    px = abs(x_of(1) - x_of(0))  # env steps per pixel
    edges = {}
    for label, mask in curve_masks(rgb, frame).items():
        if mask.sum() < 50:
            raise DigitizeError(f"no {label} curve ({CURVE_COLOURS[label]}) found")
        edges[label] = column_edges(mask, x_of, y_of)
    widths = np.concatenate([t - b for _, t, b in edges.values()])
    thickness = float(np.median(widths)) / 2  # most columns are flat: the line's half thickness
    n_trials = {
        label: round((xs.max() + px / 2) / source.task_hor) for label, (xs, _, _) in edges.items()
    }
    offsets = np.linspace(-1.0, 1.0, 41) * px
    half_widths = np.linspace(0.0, 1.5, 16) * px

    def fits(offset):
        out = {}
        for label, e in edges.items():
            vertices = source.task_hor * np.arange(1, n_trials[label] + 1, dtype=float)
            out[label] = min(
                (_solve(e, vertices, offset, w, thickness) for w in half_widths),
                key=lambda fit: fit[1],
            )
        return out

    best = min((fits(o) for o in offsets), key=lambda f: sum(r**2 for _, r in f.values()))
    return [
        Curve(
            label=label,
            env_steps=[source.task_hor * i for i in range(1, n_trials[label] + 1)],
            returns=[round(float(v), 1) for v in y],
            rms=round(rms, 2),
        )
        for label, (y, rms) in best.items()
    ]


def reference_yaml(curves: Mapping[str, Sequence[Curve]]) -> str:
    """The text of config/reference_curves.yaml (pets_core.analysis.reference reads it)."""
    lines = [
        "# Published best-so-far curves of PETS (fidelity#published-curves), one value per",
        f"# trial, digitized from {SOURCE} by",
        "# `python -m pets_core.analysis.digitize` (a least-squares fit of each trial's value to",
        "# the drawn line's pixels; rms: its residual in return units). Each is one curve of a",
        "# single run (apparently one seed). x: env steps of the MPC trials, task horizon x trial",
        "# (the initial random rollout is not counted: the curves start at one task horizon, 100",
        "# trials end at 15,000). The trials the fidelity table reports are pre-registered in",
        "# config/fidelity.yaml (preregistered.report_trials). Half-cheetah: no published curve.",
        "curves:",
    ]
    for env in [*curves, "halfcheetah"]:
        if not curves.get(env):
            lines.append(f"  {env}: []")
            continue
        lines.append(f"  {env}:")
        for c in curves[env]:
            lines += [
                f"    - label: {c.label}",
                f"      rms: {c.rms}",
                f"      env_steps: [{', '.join(map(str, c.env_steps))}]",
                f"      return: [{', '.join(f'{v:g}' for v in c.returns)}]",
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pets_core.analysis.digitize")
    p.add_argument("--png-dir", type=Path, required=True, help="holds cartpole/reacher/pusher.png")
    p.add_argument("--out", type=Path, default=Path("config/reference_curves.yaml"))
    args = p.parse_args(argv)
    curves = {}
    for env, source in SOURCES.items():
        path = args.png_dir / f"{env}.png"
        if not path.is_file():
            p.exit(2, f"{p.prog}: error: {path} missing; valid: a folder with {SOURCE}\n")
        try:
            curves[env] = digitize(read_png(path), source)
        except DigitizeError as err:
            p.exit(2, f"{p.prog}: error: {path}: {err}\n")
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(reference_yaml(curves))
    os.replace(tmp, args.out)
    for env, cs in curves.items():
        for c in cs:
            print(f"{env}: {c.label}: {len(c.returns)} trials, rms {c.rms}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
