"""The fidelity figure: our pre-registered runs against the original's published curves.

One column per env, two rows: best-so-far return (the published curves' measure) and each trial's
own return (what best-so-far hides), both against MPC trials. The published curves are drawn thin
and black over their whole published range in both rows (the original's per-trial returns were not
published, so the lower row shows the same best-so-far curves as a bound). Ours are drawn over what
ran: every seed thin (dashed: a partial run), the mean over the seeds that reached each trial thick,
a circle where each run ends (open: partial) and a dotted line at the last trial any run reached.
Each table block (:mod:`pets_core.analysis.fidelity`) has its colour: the paper's settings in the
variant's colour, an own-settings group (the reduced half-cheetah check) in another. An env without
a published curve says so in its panel. The caption is drawn under the figure, so it travels with
the PNG.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.layout_engine import ConstrainedLayoutEngine

from pets_core.analysis.fidelity import Block, group_state
from pets_core.analysis.reference import ORIGINAL, SOURCE, X_CONVENTION
from pets_core.analysis.reference import REFERENCE_VARIANT as VARIANT

WIDTH_IN = 10.0
PANEL_HEIGHT_IN = 2.1
LEGEND_COLUMNS = 3
LEGEND_ROW_IN = 0.19
CAPTION_FONT_PT = 7.0
LINE_CHARS = int(0.98 * WIDTH_IN * 72 / (CAPTION_FONT_PT * 0.55))
"""Caption characters per line (an average character is about 0.55 em wide)."""
OWN_SETTINGS_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd")
"""Colours of own-settings blocks (the reduced check), in block order."""
ROWS = (("best_so_far", "Best-so-far return"), ("return", "Return of each trial"))


def fidelity_figure(
    blocks: Sequence[Block],
    reference: Mapping[str, Sequence[Mapping]],
    *,
    colour: str = "#d62728",
    caption_text: str = "",
) -> plt.Figure:
    """Two rows (best-so-far, per-trial return) x one column per env of ``blocks``; under them
    the legend and ``caption_text`` (:func:`caption`), so both travel with the figure."""
    envs = list(dict.fromkeys(b.env for b in blocks))
    colours = _block_colours(blocks, colour)
    paragraphs = [textwrap.fill(p, LINE_CHARS) for p in caption_text.split("\n") if p]
    caption_in = sum(p.count("\n") + 1 for p in paragraphs) * CAPTION_FONT_PT * 1.3 / 72
    labels = {p["label"] for env in envs for p in reference.get(env, [])}
    entries = len(labels) + 1 + sum(b.group is not None for b in blocks) + 2  # at most
    legend_in = -(-entries // LEGEND_COLUMNS) * LEGEND_ROW_IN
    panels_in = PANEL_HEIGHT_IN * len(ROWS)
    below = (legend_in + caption_in) / (panels_in + legend_in + caption_in)  # under the panels
    fig, axes = plt.subplots(
        len(ROWS), len(envs), figsize=(WIDTH_IN, panels_in + legend_in + caption_in),
        squeeze=False, layout=ConstrainedLayoutEngine(rect=(0, below, 1, 1 - below)),
    )  # fmt: skip
    handles: dict[str, mpl.artist.Artist] = {}
    for col, env in enumerate(envs):
        env_blocks = [b for b in blocks if b.env == env]
        points = reference.get(env, [])
        has_runs = any(b.runs for b in env_blocks)
        x_max = max([p["trials"] for p in points] + [b.registered for b in env_blocks])
        for row, (column, ylabel) in enumerate(ROWS):
            ax = axes[row][col]
            _draw_reference(ax, points, handles)
            for block in env_blocks:
                _draw_block(ax, block, column, colours[block.title], handles)
            ax.set_xlim(0, x_max + 1)
            ax.xaxis.set_major_locator(
                mpl.ticker.MaxNLocator(nbins=5, integer=True, steps=[1, 2, 2.5, 5, 10])
            )
            ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(nbins=5))
            last_row = row == len(ROWS) - 1
            ax.set(xlabel="Trials" if last_row else "", ylabel="" if col else ylabel)
            if row == 0:
                ax.set_title(env)
            notes = [] if has_runs else ["no runs yet"]
            if not points:
                notes.append("no published reference curve")
            if notes:
                ax.text(
                    0.5, 0.92, "\n".join(notes), transform=ax.transAxes, ha="center",
                    va="top", fontsize=7, style="italic", color="0.35",
                )  # fmt: skip
            if not has_runs:
                ax.set_yticks([])
    fig.align_labels()  # an empty panel's x-label level with the others'
    fig.legend(
        handles=list(handles.values()), loc="upper center", ncols=LEGEND_COLUMNS, frameon=False,
        fontsize=7, bbox_to_anchor=(0.5, below),
    )  # fmt: skip
    fig.text(
        0.01, 0.0, "\n".join(paragraphs), ha="left", va="bottom", fontsize=CAPTION_FONT_PT,
        linespacing=1.3,
    )  # fmt: skip
    return fig


def caption(blocks: Sequence[Block], reference: Mapping[str, Sequence[Mapping]]) -> str:
    """The figure's caption, one paragraph a line: what is drawn, the references' source, and
    our seeds and settings per block."""
    missing = [env for env in dict.fromkeys(b.env for b in blocks) if not reference.get(env)]
    none = f" No published reference curve exists for {', '.join(missing)}." if missing else ""
    lines = [
        f"Does it reproduce the paper? {VARIANT}, ours against the published curves. Top: "
        "best-so-far return; bottom: each trial's own return. "
        f"The {X_CONVENTION}.",
        f"Black: {SOURCE}; solid: the {ORIGINAL}, dashed: the port. They are drawn over their "
        "whole published range, and repeated in the bottom row as they are (the original's "
        f"per-trial returns were not published).{none}",
        "Colour: ours, every seed thin (dashed: partial), the mean over the seeds that reached "
        "each trial thick, a circle where each run ends (open: partial), a dotted line at our "
        "last trial. Ours (device and wall time per group):",
    ]
    lines += [
        f"{block.title} ({block.settings}): "
        + "; ".join(group_state(block, group) for group in block.groups)
        for block in blocks
    ]
    return "\n".join(lines)


def _block_colours(blocks: Sequence[Block], colour: str) -> dict[str, str]:
    own = iter(OWN_SETTINGS_COLOURS)
    return {b.title: colour if b.group is None else next(own) for b in blocks}


def _draw_reference(ax: plt.Axes, points: Sequence[Mapping], handles: dict) -> None:
    curves: dict[str, list[tuple[int, float]]] = {}
    for point in points:
        curves.setdefault(point["label"], []).append((point["trials"], point["return"]))
    for label, xy in curves.items():
        xs, ys = zip(*sorted(xy), strict=True)
        style = "-" if label == ORIGINAL else "--"
        ax.plot(xs, ys, color="black", lw=0.7, ls=style, zorder=1.5)
        name = f"{label} (single run)"
        handles.setdefault(
            label, mpl.lines.Line2D([], [], color="black", lw=0.7, ls=style, label=name)
        )


def _draw_block(ax: plt.Axes, block: Block, column: str, colour: str, handles: dict) -> None:
    if not block.runs:
        return
    for run in block.runs:
        x = run.curve["iteration"].to_numpy()  # [trials]
        y = run.curve[column].to_numpy(dtype=float)  # [trials]
        ax.plot(x, y, color=colour, lw=0.7, alpha=0.6, ls="--" if run.partial else "-")
        ax.plot(
            x[-1:], y[-1:], ls="none", marker="o", markersize=3.2, color=colour,
            markerfacecolor="white" if run.partial else colour, zorder=3,
        )  # fmt: skip
    longest = max(run.trials for run in block.runs)
    trials = np.arange(1, longest + 1)  # [longest]
    mean = [
        np.mean([run.curve[column].iloc[t - 1] for run in block.runs if run.trials >= t])
        for t in trials
    ]
    ax.plot(trials, mean, color=colour, lw=1.8, zorder=2.5)
    ax.axvline(longest, color=colour, lw=0.8, ls=":", zorder=1)
    if block.group is None:
        label = f"ours, {VARIANT} at the paper's settings: mean (thin: each seed)"
    else:
        label = f"ours, {block.group.source}: mean (thin: each seed)"
    line = mpl.lines.Line2D
    key = "paper" if block.group is None else block.title
    handles.setdefault(key, line([], [], color=colour, lw=1.8, label=label))
    end = "where each run ends (dotted: our last trial)"
    handles.setdefault("end", line([], [], color="grey", lw=0.8, ls=":", marker="o", label=end))
    if any(run.partial for run in block.runs):
        partial = "partial run (open circle: where it has stopped so far)"
        handles.setdefault(
            "partial",
            line([], [], color="grey", lw=0.7, ls="--", marker="o", mfc="white", label=partial),
        )
