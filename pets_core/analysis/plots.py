"""Paper figures from the tidy table: Figure-3 best-so-far curves, Figure-4 ablation, raw returns.

Functions take DataFrames (and the reference points from config/reference_curves.yaml) and return a
``Figure``; the workflow scripts do the file I/O. Colours per variant are stable across figures and
runs: a variant keeps its colour whichever subset of variants is plotted.

Length (~320 lines): three figure functions sharing one colour / style table.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.legend_handler import HandlerTuple

from pets_core.analysis.stats import MIN_SEEDS_FOR_BAND, curve_summary
from pets_core.config.variants import MODEL_TYPES, OPT_TYPES, PROP_TYPES

COLUMN_WIDTH_IN = 3.25  # one column of a two-column paper
TEXT_WIDTH_IN = 6.75  # full text width
PANEL_HEIGHT_IN = 2.0  # title, axes and x label of one row of panels
LEGEND_ROW_IN = 0.22  # added to the figure per legend row (the legend sits below the panels)
MAX_TRIAL_TICKS = 12  # up to this many trials, a tick at every trial
SEED_OFFSET = 0.25  # ablation: single seeds drawn this share of a cell's width right of its mean

ALL_VARIANTS = [f"{m}-{p}-{o}" for o, m, p in itertools.product(OPT_TYPES, MODEL_TYPES, PROP_TYPES)]
X_LABELS = {"iteration": "Trials", "mpc_env_steps": "Env steps (MPC trials)"}
"""Both count MPC trials only (the initial random rollout is not counted, as in the original)."""


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """seaborn paper context, ticks style, embedded TrueType fonts, no top/right spines."""
    rc = {
        "pdf.fonttype": 42,  # embed TrueType, not Type 3
        "ps.fonttype": 42,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "savefig.dpi": 200,
        "svg.hashsalt": "pets",
    }
    with sns.axes_style("ticks"), sns.plotting_context("paper"), mpl.rc_context(rc):
        yield


def variant_palette(variants: Sequence[str], fixed: Mapping[str, str] | None = None) -> dict:
    """variant -> colour; ``fixed`` (config ``figures.palette``) wins, others by canonical index.

    The 40 possible variants get 40 saturated hues, spread so that neighbours in the canonical
    order (which differ in one part of the name) do not get neighbouring hues.
    """
    hues = sns.husl_palette(len(ALL_VARIANTS), s=0.9, l=0.55)
    palette = {}
    for variant in variants:
        if fixed and variant in fixed:
            palette[variant] = fixed[variant]
        elif variant in ALL_VARIANTS:
            palette[variant] = hues[(ALL_VARIANTS.index(variant) * 17) % len(hues)]
        else:
            palette[variant] = "grey"
    return palette


def prop_palette() -> dict[str, tuple]:
    """Propagation method -> colour (Figure 4 colours bars by propagation)."""
    return dict(zip(PROP_TYPES, sns.color_palette("colorblind", len(PROP_TYPES)), strict=True))


def best_so_far_figure(
    tidy: pd.DataFrame,
    *,
    envs: Sequence[str],
    variants: Sequence[str],
    x: str = "iteration",
    reference: Mapping[str, Sequence[Mapping]] | None = None,
    palette: Mapping[str, str] | None = None,
) -> plt.Figure:
    """Figure 3: best-so-far return vs trials or MPC env steps, mean over seeds.

    With at least :data:`MIN_SEEDS_FOR_BAND` seeds: the mean and its 95% bootstrap CI band
    (:func:`stats.curve_summary`); with fewer: the mean and every seed as a thin line with points
    (a band from 3 seeds would pretend a precision it does not have). Partial runs (when included)
    are dashed. ``x``: ``iteration`` (trials) or ``mpc_env_steps`` (the initial random episode not
    counted, as in the original's curves). ``reference``: env -> points {label, trials,
    env_steps, return} (:func:`reference.load_reference`), each label a thin black line with a mark
    per point, at the same x.
    """
    data = tidy[tidy["variant"].isin(variants)]
    if "partial" not in data:
        data = data.assign(partial=False)
    present = [v for v in variants if v in set(data["variant"])]
    palette = variant_palette(present, palette)
    summary = curve_summary(data, x)
    fig, axes = _panels(len(envs))
    markers = itertools.cycle(["x", "+", "1", "*"])
    marker_of: dict[str, str] = {}
    styles: set[str] = set()
    for ax, env in zip(axes, envs, strict=True):
        env_data = data[data["env"] == env]
        for variant in present:
            runs = env_data[env_data["variant"] == variant]
            if not len(runs):
                continue
            colour = palette[variant]
            curve = summary[(summary["env"] == env) & (summary["variant"] == variant)]
            if runs["seed"].nunique() >= MIN_SEEDS_FOR_BAND:
                ax.fill_between(
                    curve[x], curve["ci_low"], curve["ci_high"], color=colour, alpha=0.2, lw=0
                )
                styles.add("band")
            else:
                for _, run in runs.groupby("seed"):
                    ax.plot(
                        run[x],
                        run["best_so_far"],
                        color=colour,
                        lw=0.6,
                        alpha=0.6,
                        ls="--" if run["partial"].any() else "-",
                        marker="o",
                        markersize=1.8,
                    )
                styles.add("seeds")
                if runs["partial"].any():
                    styles.add("partial")
            ax.plot(curve[x], curve["mean"], color=colour, lw=1.6)
        last_trial = env_data["iteration"].max() if len(env_data) else -1  # no runs: no marks
        curves: dict[str, list] = {}
        for point in (reference or {}).get(env, []):
            if point["trials"] > last_trial:  # keep the axis on the data: no marks beyond the
                continue  # last trial run (a mark read a few steps past it is that trial's)
            x_ref = point["trials" if x == "iteration" else "env_steps"]
            curves.setdefault(point["label"], []).append((x_ref, point["return"]))
        for label, points in curves.items():
            if label not in marker_of:
                marker_of[label] = next(markers)
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, **_reference_style(marker_of[label]), zorder=1.5)  # under ours
        ax.set(title=env, xlabel=X_LABELS[x], ylabel="")
        _readable_axes(ax, integer_x=x == "iteration", has_data=bool(len(env_data)))
    axes[0].set_ylabel("Best-so-far return")
    handles = [mpl.lines.Line2D([], [], color=palette[v], lw=1.6, label=v) for v in present]
    if "seeds" in styles:
        handles.append(_seed_swatch([palette[v] for v in present], marker="o"))
    if "partial" in styles:
        handles.append(mpl.lines.Line2D([], [], color="grey", lw=0.6, ls="--", label="partial run"))
    if "band" in styles:
        handles.append(mpl.patches.Patch(color="grey", alpha=0.3, label="95% CI of the mean"))
    handles += [
        mpl.lines.Line2D([], [], label=label, **_reference_style(m))
        for label, m in marker_of.items()
    ]
    _legend(fig, handles)
    return fig


def _reference_style(marker: str) -> dict:
    """A published curve: a thin black line through one mark per trial ('x' solid, then dashed)."""
    return {
        "color": "black",
        "lw": 0.6,
        "marker": marker,
        "markersize": 3.5,
        "markeredgewidth": 0.8,
        "ls": "-" if marker == "x" else "--",
    }


def _seed_swatch(colours: Sequence, marker: str | None = None) -> tuple:
    """The "single seeds" legend entry: one thin line per variant, each in its colour, side by
    side (a legend handle that is a tuple of artists; :func:`_legend` draws it)."""
    lines = tuple(
        mpl.lines.Line2D([], [], color=c, lw=0.6, alpha=0.6, marker=marker, markersize=1.8)
        for c in colours
    )
    return (lines, "single seeds")


def _readable_axes(ax: plt.Axes, *, integer_x: bool, has_data: bool = True) -> None:
    """About five y ticks; integer trials; env steps in thousands ('1.5k'); 'no runs' if empty."""
    if not has_data:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center")
        return
    ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(nbins=5))
    lo, hi = ax.dataLim.intervalx
    if integer_x and hi - lo <= MAX_TRIAL_TICKS:  # a tick at every trial
        ax.xaxis.set_major_locator(mpl.ticker.MultipleLocator(1))
    else:
        ax.xaxis.set_major_locator(
            mpl.ticker.MaxNLocator(nbins=5, integer=True, steps=[1, 2, 2.5, 5, 10])
        )
    if not integer_x:
        ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(_thousands))


def _thousands(value: float, _pos: int) -> str:
    """1500 -> '1.5k', 800 -> '800', 15000 -> '15k'."""
    if abs(value) < 1000:
        return f"{value:.0f}"
    return f"{value / 1000:.1f}".rstrip("0").rstrip(".") + "k"


def raw_returns_figure(
    tidy: pd.DataFrame,
    *,
    envs: Sequence[str],
    variants: Sequence[str],
    palette: Mapping[str, str] | None = None,
) -> plt.Figure:
    """Per-trial return (not best-so-far) vs trials: the mean and a thin line per seed."""
    data = tidy[tidy["variant"].isin(variants)]
    present = [v for v in variants if v in set(data["variant"])]
    palette = variant_palette(present, palette)
    fig, axes = _panels(len(envs))
    for ax, env in zip(axes, envs, strict=True):
        for variant in present:
            runs = data[(data["env"] == env) & (data["variant"] == variant)]
            if not len(runs):
                continue
            for _, run in runs.groupby("seed"):
                ax.plot(run["iteration"], run["return"], color=palette[variant], lw=0.6, alpha=0.5)
            mean = runs.groupby("iteration")["return"].mean()
            ax.plot(mean.index, mean.to_numpy(), color=palette[variant], lw=1.6)
        ax.set(title=env, xlabel=X_LABELS["iteration"], ylabel="")
        _readable_axes(ax, integer_x=True, has_data=bool((data["env"] == env).any()))
    axes[0].set_ylabel("Return of each trial")
    handles = [mpl.lines.Line2D([], [], color=palette[v], lw=1.6, label=v) for v in present]
    handles.append(_seed_swatch([palette[v] for v in present]))
    _legend(fig, handles)
    return fig


def ablation_figure(
    summary: pd.DataFrame,
    *,
    envs: Sequence[str],
    opt: str = "CEM",
    finals: pd.DataFrame | None = None,
) -> plt.Figure:
    """Figure 4: final best-so-far per model (x) x propagation (colour), per env.

    ``summary``: :func:`pets_core.analysis.stats.summarize_final` output (mean, ci_low, ci_high).
    Each cell is its mean as a marker (not a bar: returns are often negative, and a bar from 0
    would hang down and make the length of the bar mean nothing); a cell with at least
    :data:`MIN_SEEDS_FOR_BAND` seeds gets its 95% CI as whiskers, a cell with fewer shows every
    seed as a small point beside it (``finals``: :func:`aggregate.final_best_so_far` output).
    """
    parts = summary["variant"].str.split("-", expand=True)
    data = summary.assign(model=parts[0], prop=parts[1], opt=parts[2])
    data = data[data["opt"] == opt]
    colours = prop_palette()
    props = [p for p in PROP_TYPES if p in set(data["prop"])]
    width = 0.8 / max(len(props), 1)
    fig, axes = _panels(len(envs))
    for ax, env in zip(axes, envs, strict=True):
        env_data = data[data["env"] == env]
        models = [m for m in MODEL_TYPES if m in set(env_data["model"])]
        for j, prop in enumerate(props):
            cells = env_data[env_data["prop"] == prop].set_index("model")
            xs, heights, errors = [], [], [[], []]
            for i, model in enumerate(models):
                if model not in cells.index:
                    continue
                row = cells.loc[model]
                x_bar = i + (j - (len(props) - 1) / 2) * width
                xs.append(x_bar)
                heights.append(row["mean"])
                banded = row["seeds"] >= MIN_SEEDS_FOR_BAND or finals is None
                ok = banded and np.isfinite(row["ci_low"])
                errors[0].append(row["mean"] - row["ci_low"] if ok else 0.0)
                errors[1].append(row["ci_high"] - row["mean"] if ok else 0.0)
                if not banded:
                    seeds = finals[
                        (finals["env"] == env) & (finals["variant"] == f"{model}-{prop}-{opt}")
                    ]["final_best_so_far"]
                    ax.plot(
                        np.full(len(seeds), x_bar + SEED_OFFSET * width),
                        seeds,
                        linestyle="none",
                        marker="o",
                        markersize=2,
                        color="black",
                        zorder=3,
                    )
            ax.errorbar(
                xs,
                heights,
                yerr=errors if any(errors[0] + errors[1]) else None,  # no zero-length whiskers
                color=colours[prop],
                marker="s",
                markersize=5,
                linestyle="none",
                capsize=2,
                elinewidth=0.8,
            )
        ax.set(title=env, xlabel="Model", ylabel="")
        if not len(env_data):
            _readable_axes(ax, integer_x=True, has_data=False)
            continue
        ax.set_xticks(range(len(models)), models)
        ax.set_xlim(-0.5, len(models) - 0.5)
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    axes[0].set_ylabel("Final best-so-far return")
    handles = [
        mpl.lines.Line2D([], [], color=colours[p], marker="s", markersize=5, ls="none", label=p)
        for p in props
    ]
    if finals is not None and (data["seeds"] < MIN_SEEDS_FOR_BAND).any():
        handles.append(
            mpl.lines.Line2D(
                [], [], color="black", marker="o", markersize=2, ls="none", label="single seeds"
            )
        )
    _legend(fig, handles)
    return fig


def _panels(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(
        1,
        n,
        figsize=(max(TEXT_WIDTH_IN * n / 4, COLUMN_WIDTH_IN), PANEL_HEIGHT_IN),
        layout="constrained",
        squeeze=False,
    )
    return fig, list(axes[0])


def _legend(fig: plt.Figure, handles: list) -> None:
    """Below the panels; the figure grows by the legend's rows so the axes keep their height.
    A handle may be ``(artists, label)``: the artists drawn side by side under one label."""
    if not handles:
        return
    artists = [h[0] if isinstance(h, tuple) else h for h in handles]
    labels = [h[1] if isinstance(h, tuple) else h.get_label() for h in handles]
    ncols = min(len(handles), 2 * len(fig.axes) if len(fig.axes) < 3 else 6)
    rows = -(-len(handles) // ncols)
    fig.set_figheight(fig.get_figheight() + LEGEND_ROW_IN * rows)
    fig.legend(
        artists,
        labels,
        loc="outside lower center",
        ncols=ncols,
        frameon=False,
        handler_map={tuple: HandlerTuple(ndivide=None, pad=0.3)},
    )


def save_figure(figure: plt.Figure, paths: Sequence[str]) -> None:
    """Save to every path (format from the suffix); PDFs without a creation date, so byte-stable."""
    for path in paths:
        metadata = {"CreationDate": None} if str(path).endswith(".pdf") else None
        figure.savefig(path, bbox_inches="tight", metadata=metadata)
    plt.close(figure)
